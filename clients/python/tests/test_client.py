"""The Python client against a live satcheld and docker-registry."""

import hashlib
import time
import tracemalloc
from pathlib import Path

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


def test_a_blob_the_registry_has_is_not_sent_again(client, registry, tmp_path):
    f = random_file(tmp_path / "layer.bin", MiB)
    first = client.push(f"{registry}/py/skip:a", [f], plain_http=True)
    assert first.blobs_skipped == 0
    assert first.layers[0].digest == sha256(f)
    # Hashed before sending, the file is known by digest: the daemon finds
    # the blob in the repository and does not upload it again.
    again = client.push(f"{registry}/py/skip:b", [f], plain_http=True)
    assert again.blobs_skipped == 1
    assert again.layers[0].digest == first.layers[0].digest
    # Sent without a digest, it cannot be recognised before it is read.
    unhashed = client.push(f"{registry}/py/skip:c", [f], plain_http=True, hash_first=False)
    assert unhashed.blobs_skipped == 0
    assert unhashed.layers[0].digest == first.layers[0].digest


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


def test_missing_artifact_pull_is_not_found(client, registry, tmp_path):
    with pytest.raises(SatchelError) as e:
        client.pull(f"{registry}/py/missing@sha256:" + "0" * 64, output_dir=tmp_path / "o", plain_http=True)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    # The directory is made when the first file starts: never, here.
    assert not (tmp_path / "o").exists()


def test_a_corrupted_blob_fails_mid_file_and_leaves_nothing(client, registry, env, tmp_path):
    """The registry's copy of a layer is damaged on disk: the daemon streams
    its bytes, finds the digest wrong at the end, and fails the call with
    DATA_LOSS. The half-written file must be gone."""
    f = random_file(tmp_path / "layer.bin", 24 * MiB)
    pushed = client.push(f"{registry}/py/corrupt:v1", [f], plain_http=True)
    digest = pushed.layers[0].digest
    hexdigest = digest.split(":", 1)[1]
    data = Path(env["SATCHEL_REGISTRY_BLOBS"]) / "sha256" / hexdigest[:2] / hexdigest / "data"
    with open(data, "r+b") as blob:
        blob.seek(24 * MiB - 10)
        byte = blob.read(1)
        blob.seek(24 * MiB - 10)
        blob.write(bytes([byte[0] ^ 0xFF]))
    out = tmp_path / "out"
    out.mkdir()
    seen = []
    with pytest.raises(SatchelError) as e:
        client.pull(
            f"{registry}/py/corrupt:v1", output_dir=out, plain_http=True,
            on_progress=lambda name, done, total: seen.append(done),
        )
    assert e.value.code == grpc.StatusCode.DATA_LOSS, e.value
    # The failure came after file bytes had arrived, not before.
    assert seen and max(seen) > 0, seen
    assert list(out.iterdir()) == []


def test_a_failing_progress_callback_cancels_the_upload(client, registry, tmp_path):
    f = random_file(tmp_path / "big.bin", 20 * MiB)

    class Enough(Exception):
        pass

    def stop(name, done, total):
        raise Enough()

    try:
        client.push(f"{registry}/py/cancelled:v1", [f], plain_http=True, on_progress=stop)
        pytest.fail("the push ignored its callback's exception")
    except Enough as e:
        # Held, as a caller's handler may hold it: its traceback keeps the
        # call object alive, so only an explicit cancel stops the upload.
        held = e
    # The push was cancelled, not finished behind the caller's back: 20 MiB
    # would go up in well under the 3 s this watches for it.
    for _ in range(30):
        with pytest.raises(SatchelError) as e:
            client.resolve(f"{registry}/py/cancelled:v1", plain_http=True)
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        time.sleep(0.1)
    del held
