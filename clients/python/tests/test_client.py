"""The Python client against a live satcheld and docker-registry."""

import hashlib
import tracemalloc

import grpc
import pytest

from satchel import SatchelError
from conftest import random_file

SBOM = "application/vnd.example.sbom.v1"
MiB = 1 << 20


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def test_attach_discover_pull_50_mib(client, registry, tmp_path):
    subject_file = tmp_path / "readme.txt"
    subject_file.write_text("the subject\n")
    subject = client.push(
        f"{registry}/py/app:v1", [subject_file], artifact_type="application/vnd.example.app.v1",
        plain_http=True,
    )
    assert subject.tags == ("v1",)
    assert client.resolve(f"{registry}/py/app:v1", plain_http=True).digest == subject.manifest.digest

    big = random_file(tmp_path / "sbom.bin", 50 * MiB)
    progress = []
    tracemalloc.start()
    attached = client.attach(
        f"{registry}/py/app:v1", [(big, "application/octet-stream")], artifact_type=SBOM,
        annotations={"com.example.build": "42"}, plain_http=True,
        on_progress=lambda name, done, total: progress.append((name, done, total)),
    )
    _, peak_up = tracemalloc.get_traced_memory()
    assert attached.subject is not None
    assert attached.subject.digest == subject.manifest.digest
    assert attached.layers[0].digest == sha256(big)
    assert attached.layers[0].size == 50 * MiB
    assert progress and progress[-1] == ("sbom.bin", 50 * MiB, 50 * MiB)

    referrers = client.discover(f"{registry}/py/app:v1", plain_http=True)
    assert [r.digest for r in referrers] == [attached.manifest.digest]
    assert referrers[0].artifact_type == SBOM
    assert referrers[0].annotations["com.example.build"] == "42"
    assert client.discover(f"{registry}/py/app:v1", artifact_type="other/type", plain_http=True) == []

    out = tmp_path / "out"
    tracemalloc.reset_peak()
    pulled = client.pull(attached.reference, output_dir=out, plain_http=True)
    _, peak_down = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert pulled.manifest.digest == attached.manifest.digest
    assert [f.path for f in pulled.files] == [out / "sbom.bin"]
    assert sha256(out / "sbom.bin") == sha256(big)
    # No temp file is left beside the final one.
    assert sorted(p.name for p in out.iterdir()) == ["sbom.bin"]
    # Streaming, not buffering: Python-side allocations stay far below the
    # file's 50 MiB in both directions.
    assert peak_up < 16 * MiB, peak_up
    assert peak_down < 16 * MiB, peak_down

    # The newest attachment of a type, found from the subject.
    again = tmp_path / "again"
    by_subject = client.pull(f"{registry}/py/app:v1", artifact_type=SBOM, output_dir=again, plain_http=True)
    assert by_subject.manifest.digest == attached.manifest.digest
    assert sha256(again / "sbom.bin") == sha256(big)


def test_missing_tag_is_not_found(client, registry):
    with pytest.raises(SatchelError) as e:
        client.resolve(f"{registry}/py/missing:nope", plain_http=True)
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_malformed_reference_is_invalid_argument(client, tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("a")
    with pytest.raises(SatchelError) as e:
        client.push("Not A Reference!!", [f])
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "reference" in e.value.details.lower()


def test_failed_pull_leaves_no_file(client, registry, tmp_path):
    with pytest.raises(SatchelError) as e:
        client.pull(f"{registry}/py/missing@sha256:" + "0" * 64, output_dir=tmp_path / "o", plain_http=True)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []
