"""Live: pulls into directories with planted links (the shared
clients/conformance vectors), and deadlines."""

import os
import socket
import threading
from pathlib import Path

import grpc
import pytest

from satchel import Client, SatchelError
from vectors import VECTORS


def _snapshot(root: Path) -> dict:
    """Everything under root, links not followed: kind and content."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                seen[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                seen[rel] = ("dir", None)
            else:
                seen[rel] = ("file", p.read_bytes())
    return seen


def _partials(root: Path) -> list:
    return [
        os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs if n.endswith(".partial")
    ]


@pytest.mark.parametrize(
    "index, vector", list(enumerate(VECTORS["planted_links"])), ids=[v["name"] for v in VECTORS["planted_links"]]
)
def test_planted_links(client, registry, tmp_path, index, vector):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"the victim's own bytes\n")
    out = tmp_path / "out"
    out.mkdir()
    for d in vector.get("dirs", []):
        (out / d).mkdir(parents=True)
    for link in vector.get("links", []):
        os.symlink(link["to"].replace("OUTSIDE", str(outside)), out / link["path"])
    before = _snapshot(outside)

    layer = tmp_path / "layer.bin"
    data = f"pulled bytes for {vector['name']}\n".encode()
    layer.write_bytes(data)
    title = vector["title"]
    pushed = client.push(
        f"{registry}/py/planted:{index}", [(layer, "application/octet-stream", title)], plain_http=True
    )
    assert pushed.layers[0].annotations["org.opencontainers.image.title"] == title

    if vector["expect"] == "replaced":
        result = client.pull(pushed.reference, output_dir=out, plain_http=True)
        final = out / title
        assert [f.path for f in result.files] == [final]
        assert not final.is_symlink()
        assert final.is_file()
        assert final.read_bytes() == data
    else:
        assert vector["expect"] == "refused", vector
        with pytest.raises(SatchelError) as e:
            client.pull(pushed.reference, output_dir=out, plain_http=True)
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION, e.value
    assert _snapshot(outside) == before
    assert _partials(out) == []
    assert _partials(outside) == []


class _SilentRegistry:
    """A test-only hostile registry: a TCP listener on loopback that accepts
    connections and never answers, so a call can only end by its deadline."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def silent():
    s = _SilentRegistry()
    yield s
    s.close()


def test_pull_timeout_is_deadline_exceeded_and_writes_nothing(client, silent, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SatchelError) as e:
        client.pull(f"{silent.addr}/repo:tag", output_dir=out, plain_http=True, timeout=1.0)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
    # No file started, so not even the directory was made.
    assert not out.exists()


def test_client_default_timeout_applies_to_every_call(env, silent, tmp_path):
    with Client(env["SATCHEL_ADDR"], timeout=1.0) as c:
        with pytest.raises(SatchelError) as e:
            c.resolve(f"{silent.addr}/repo:tag", plain_http=True)
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
        with pytest.raises(SatchelError) as e:
            c.discover(f"{silent.addr}/repo:tag", plain_http=True)
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
        f = tmp_path / "a.txt"
        f.write_text("a")
        with pytest.raises(SatchelError) as e:
            c.push(f"{silent.addr}/repo:tag", [f], plain_http=True)
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
        # A call's own timeout overrides the default.
        out = tmp_path / "out"
        with pytest.raises(SatchelError) as e:
            c.pull(f"{silent.addr}/repo:tag", output_dir=out, plain_http=True, timeout=0.5)
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
        assert not out.exists()
