"""Live: a directory pushed as the ORAS CLI pushes one (a tar+gzip layer
marked for unpacking) and pulled back into the same tree, again over it,
and over a link; and what push refuses."""

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import grpc
import pytest

from satchel import SatchelError
from satchel._pack import pack

MTIME = 1_700_000_000


def make_tree(root: Path) -> Path:
    """A directory with a nested directory, an executable and links."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "run.sh").chmod(0o755)
    (root / "data" / "nested").mkdir(parents=True)
    (root / "data" / "nested" / "deep.txt").write_text("deep\n")
    (root / "data" / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "empty").mkdir()
    os.symlink("bin/run.sh", root / "run")
    os.symlink("../../bin", root / "data" / "nested" / "up")
    for p in root.rglob("*"):
        if not p.is_symlink():
            os.utime(p, (MTIME, MTIME))
    return root


def snapshot(root: Path) -> dict:
    """Everything under ``root``, links not followed: kind, content, the
    owner's execute bit and, for files, the modification time."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                seen[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                seen[rel] = ("dir",)
            else:
                seen[rel] = ("file", p.read_bytes(), bool(st.st_mode & stat.S_IXUSR), int(st.st_mtime))
    return seen


@pytest.fixture
def packing_tmp(tmp_path, monkeypatch):
    """The temporary directory the client packs into, to see it emptied."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def test_a_directory_round_trips_and_a_second_pull_replaces_it(client, registry, tmp_path, packing_tmp):
    src = make_tree(tmp_path / "src" / "tree")
    pushed = client.push(f"{registry}/py/dirs:v1", [src], plain_http=True)
    assert list(packing_tmp.iterdir()) == []  # the archive is removed
    layer = pushed.layers[0]
    assert layer.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert layer.annotations["org.opencontainers.image.title"] == "tree"
    assert layer.annotations["io.deis.oras.content.unpack"] == "true"
    assert layer.annotations["io.deis.oras.content.digest"].startswith("sha256:")

    out = tmp_path / "out"
    pulled = client.pull(pushed.reference, output_dir=out, plain_http=True)
    assert [f.path for f in pulled.files] == [out / "tree"]
    assert os.listdir(out) == ["tree"]  # no archive, no hidden name
    assert snapshot(out / "tree") == snapshot(src)

    # A second pull over the tree replaces it whole: what was added goes,
    # what was changed or removed comes back.
    (out / "tree" / "stray.txt").write_text("not in the artifact\n")
    (out / "tree" / "data" / "nested" / "deep.txt").write_text("changed\n")
    os.unlink(out / "tree" / "run")
    again = client.pull(pushed.reference, output_dir=out, plain_http=True)
    assert [f.path for f in again.files] == [out / "tree"]
    assert os.listdir(out) == ["tree"]
    assert snapshot(out / "tree") == snapshot(src)


def test_the_layer_is_the_tar_gzip_oras_makes(client, registry, tmp_path, packing_tmp):
    src = make_tree(tmp_path / "tree")
    pushed = client.push(f"{registry}/py/dirs:layer", [(src, "", "a/tree")], plain_http=True)
    layer = pushed.layers[0]
    # The same tree packs to the same bytes: what was pushed is this archive.
    packed = pack(src, "a/tree")
    try:
        assert (packed.digest, packed.size) == (layer.digest, layer.size)
        tar_bytes = gzip.decompress(packed.path.read_bytes())
    finally:
        packed.remove()
    assert list(packing_tmp.iterdir()) == []
    assert layer.annotations["io.deis.oras.content.digest"] == "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
        members = t.getmembers()
    assert [m.name for m in members] == [
        "a/tree", "a/tree/bin", "a/tree/bin/run.sh", "a/tree/data", "a/tree/data/big.bin",
        "a/tree/data/nested", "a/tree/data/nested/deep.txt", "a/tree/data/nested/up",
        "a/tree/empty", "a/tree/run",
    ]
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), m.name
    by_name = {m.name: m for m in members}
    assert by_name["a/tree/run"].issym() and by_name["a/tree/run"].linkname == "bin/run.sh"
    assert by_name["a/tree/bin/run.sh"].mode == 0o755
    assert by_name["a/tree/data/nested/deep.txt"].mtime == MTIME
    # The nested title unpacks where it says.
    out = tmp_path / "out"
    client.pull(pushed.reference, output_dir=out, plain_http=True)
    assert os.listdir(out) == ["a"] and os.listdir(out / "a") == ["tree"]
    assert snapshot(out / "a" / "tree") == snapshot(src)


def test_a_pull_swaps_out_a_link_at_the_name(client, registry, tmp_path):
    src = make_tree(tmp_path / "tree")
    pushed = client.push(f"{registry}/py/dirs:link", [src], plain_http=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("mine\n")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "tree")
    client.pull(pushed.reference, output_dir=out, plain_http=True)
    assert not (out / "tree").is_symlink()
    assert snapshot(out / "tree") == snapshot(src)
    assert os.listdir(outside) == ["victim"]
    assert (outside / "victim").read_text() == "mine\n"
    assert os.listdir(out) == ["tree"]


def test_a_fifo_inside_a_directory_is_refused_before_any_call(client, registry, tmp_path, packing_tmp):
    src = tmp_path / "tree"
    src.mkdir()
    os.mkfifo(src / "pipe")
    with pytest.raises(SatchelError) as e:
        client.push(f"{registry}/py/dirs:fifo", [src], plain_http=True)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "a FIFO" in e.value.details
    assert list(packing_tmp.iterdir()) == []
