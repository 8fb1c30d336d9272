"""The shared directory-layer cases, clients/conformance/archives.json,
against this client's unpack (no daemon needed): what each archive makes,
or the code it fails with, leaving nothing behind in the output directory;
then what this client's unpack adds to them, and a directory layer through
the pull's state machine."""

import base64
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

import satchel._files
from satchel import SatchelError
from satchel._files import OutputDir, _renameat2
from satchel._pull import pull_stream
from satchel._unpack import TAR_DIGEST_ANNOTATION, UNPACK_ANNOTATION, Limits, unpack
from satchel.v1 import satchel_pb2 as pb

PATH = Path(__file__).resolve().parents[2] / "conformance" / "archives.json"
CASES = json.loads(PATH.read_text(encoding="utf-8"))["cases"]


def tree(root: Path) -> dict:
    """Everything under ``root``, links not followed, as archives.json
    writes a tree."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                seen[rel] = {"link": os.readlink(p)}
            elif stat.S_ISDIR(st.st_mode):
                seen[rel] = {"dir": True}
            else:
                seen[rel] = {"file": p.read_text(), "exec": bool(st.st_mode & stat.S_IXUSR)}
    return seen


def everything(root: Path) -> list:
    return sorted(str(Path(d, n).relative_to(root)) for d, ds, fs in os.walk(root) for n in ds + fs)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_archive_case(tmp_path, case):
    archive = tmp_path / "layer.tar.gz"
    archive.write_bytes(base64.b64decode(case["archive"]))
    annotations = {UNPACK_ANNOTATION: "true"}
    if "tar_digest" in case:
        annotations[TAR_DIGEST_ANNOTATION] = case["tar_digest"]
    limits = Limits(**case.get("limits", {}))
    root = tmp_path / "out"
    out = OutputDir(root)
    try:
        with open(archive, "rb") as f:
            if case["expect"]["code"] == "OK":
                path = unpack(f, out, case["title"], annotations, limits)
                assert path == root / case["title"]
                assert tree(path) == case["expect"]["tree"]
                # Nothing but the tree: no hidden name left beside it.
                top = case["title"].split("/")
                assert everything(root) == sorted(
                    ["/".join(top[: i + 1]) for i in range(len(top))]
                    + [f"{case['title']}/{rel}" for rel in case["expect"]["tree"]]
                )
            else:
                with pytest.raises(SatchelError) as e:
                    unpack(f, out, case["title"], annotations, limits)
                assert e.value.code.name == case["expect"]["code"], e.value
                assert everything(root) == []
    finally:
        out.close()


def test_the_default_limits():
    assert Limits() == Limits(max_bytes=64 << 30, max_entries=1_000_000)


def _tar(*members) -> bytes:
    """A tar of (TarInfo, data) pairs, PAX headers where needed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.DIRTYPE, size: int = 0, **pax) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.pax_headers = kind, size, 1_700_000_000, pax
    return info


def _unpack_bytes(tmp_path: Path, tar: bytes, limits: Limits = Limits()) -> SatchelError:
    """Unpacks ``tar`` (gzip'd, no content digest) as ``d``, expecting a
    failure that leaves nothing behind; returns it."""
    root = tmp_path / "out"
    out = OutputDir(root)
    try:
        with pytest.raises(SatchelError) as e:
            unpack(io.BytesIO(gzip.compress(tar)), out, "d", {UNPACK_ANNOTATION: "true"}, limits)
    finally:
        out.close()
    assert everything(root) == []
    return e.value


def test_headers_count_against_the_byte_limit(tmp_path):
    # No file bytes at all, but the stream itself is past the limit.
    tar = _tar(*[(_info(f"d/{i}"), None) for i in range(20)])
    e = _unpack_bytes(tmp_path, tar, Limits(max_bytes=8192))
    assert e.code.name == "RESOURCE_EXHAUSTED", e


def test_a_declared_size_past_the_limit_is_refused_before_reading(tmp_path):
    # The header says 1 GiB and the archive ends there: the limit, not the
    # cut, is what it reports.
    header = _info("d/big", tarfile.REGTYPE, 1 << 30).tobuf(tarfile.USTAR_FORMAT)
    e = _unpack_bytes(tmp_path, _tar((_info("d"), None))[:512] + header, Limits(max_bytes=1 << 20))
    assert e.code.name == "RESOURCE_EXHAUSTED", e


def test_a_damaged_header_after_the_first_is_a_broken_archive(tmp_path):
    # tarfile alone would take the bad checksum for the end of the archive
    # and unpack a partial tree.
    tar = bytearray(_tar((_info("d"), None), (_info("d/a", tarfile.REGTYPE, 1), b"a"), (_info("d/b"), None)))
    third = tar.index(b"d/b/\0")
    assert third % 512 == 0
    tar[third + 148] ^= 1  # its checksum
    e = _unpack_bytes(tmp_path, bytes(tar))
    assert e.code.name == "DATA_LOSS", e
    assert "broken" in e.details


def test_a_huge_pax_header_is_not_read(tmp_path):
    tar = _tar((_info("d"), None), (_info("d/x", comment="c" * (2 << 20)), None))
    e = _unpack_bytes(tmp_path, tar)
    assert e.code.name == "RESOURCE_EXHAUSTED", e


def _pull_directory(root: Path, archive: bytes, tar_digest: str):
    """Feeds the pull's state machine a one-layer artifact: the directory
    ``d`` as ``archive``, its content digest annotated ``tar_digest``."""
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    annotations = {
        "org.opencontainers.image.title": "d",
        UNPACK_ANNOTATION: "true",
        TAR_DIGEST_ANNOTATION: tar_digest,
    }
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest,
             "size": len(archive), "annotations": annotations}
    content = json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [layer]}).encode()
    manifest = pb.Descriptor(media_type=layer["mediaType"], digest="sha256:" + hashlib.sha256(content).hexdigest(),
                             size=len(content))
    desc = pb.Descriptor(media_type=layer["mediaType"], digest=digest, size=len(archive), annotations=annotations)
    return pull_stream([
        pb.PullResponse(manifest=pb.PulledManifest(reference="r", manifest=manifest, content=content)),
        pb.PullResponse(file=pb.FileHeader(name="d", layer=desc)),
        pb.PullResponse(chunk=archive),
        pb.PullResponse(done=pb.FileDone(digest=digest)),
    ], root)


GOOD = next(c for c in CASES if c["expect"]["code"] == "OK" and c["title"] == "d")


def test_a_pulled_directory_is_unpacked_and_its_archive_removed(tmp_path):
    root = tmp_path / "out"
    result = _pull_directory(root, base64.b64decode(GOOD["archive"]), GOOD["tar_digest"])
    assert [f.path for f in result.files] == [root / "d"]
    assert tree(root / "d") == GOOD["expect"]["tree"]
    assert os.listdir(root) == ["d"]


def test_a_pulled_directory_that_fails_to_unpack_leaves_nothing(tmp_path):
    root = tmp_path / "out"
    (root / "d").mkdir(parents=True)
    (root / "d" / "old.txt").write_text("an older tree\n")
    with pytest.raises(SatchelError) as e:
        _pull_directory(root, base64.b64decode(GOOD["archive"]), "sha256:" + "0" * 64)
    assert e.value.code.name == "DATA_LOSS", e.value
    # The older tree as it was; no archive, no half-made tree beside it.
    assert everything(root) == ["d", "d/old.txt"]


def test_renameat2_is_what_places_a_tree_here():
    assert _renameat2() is not None


def test_without_renameat2_the_old_tree_is_moved_aside(tmp_path, monkeypatch):
    monkeypatch.setattr(satchel._files, "_renameat2", lambda: None)
    root = tmp_path / "out"
    for _ in range(2):
        result = _pull_directory(root, base64.b64decode(GOOD["archive"]), GOOD["tar_digest"])
        (root / "d" / "stray").write_text("goes\n")
    assert [f.path for f in result.files] == [root / "d"]
    os.unlink(root / "d" / "stray")
    assert tree(root / "d") == GOOD["expect"]["tree"]
    assert os.listdir(root) == ["d"]


def test_a_global_pax_header_is_skipped(tmp_path):
    # As git archive writes one first, named pax_global_header: it names
    # nothing, and is not refused as outside the directory.
    records = b"20 comment=a commit\n"
    info = _info("pax_global_header", tarfile.XGLTYPE, len(records))
    header = info.tobuf(tarfile.USTAR_FORMAT) + records + bytes(-len(records) % 512)
    tar = header + _tar((_info("d"), None), (_info("d/x", tarfile.REGTYPE, 1), b"x"))
    root = tmp_path / "out"
    out = OutputDir(root)
    try:
        path = unpack(io.BytesIO(gzip.compress(tar)), out, "d", {UNPACK_ANNOTATION: "true"})
    finally:
        out.close()
    assert everything(path) == ["x"]
