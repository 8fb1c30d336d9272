"""ServerInfo (the daemon's limits, asked once per client) and the shared
behaviour of clients/conformance/limits.json and behaviour.json, against the
live daemon and, where the test needs other limits, a real satcheld of its
own configured with them."""

import json
import os
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from satchel import RECEIVE_LIMIT_BYTES, SERVER_INFO_DEFAULTS, Client, MissingFileError, SatchelError, ServerInfo
from conftest import Satcheld, random_file

CONFORMANCE = Path(__file__).resolve().parents[2] / "conformance"
LIMITS = json.loads((CONFORMANCE / "limits.json").read_text(encoding="utf-8"))
SMALL_HASH_FIRST = 4096
"""The hash-first threshold of the test's own daemon (upload_monolithic_max)."""


def _limits(info: ServerInfo) -> dict:
    return {k: getattr(info, k) for k in LIMITS["server_info_defaults"]}


@pytest.fixture(scope="module")
def small_daemon(env, tmp_path_factory):
    """A second real satcheld whose config sets upload_monolithic_max, and so
    its hash_first_below, to 4 KiB; its socket is the default one for
    XDG_RUNTIME_DIR=``runtime_dir``."""
    root = tmp_path_factory.mktemp("small")
    runtime_dir = root / "xdg"
    daemon = Satcheld(
        env["SATCHELD"], root / "state", runtime_dir / "satchel" / "satcheld.sock",
        config=f"upload_monolithic_max = {SMALL_HASH_FIRST}\n",
    )
    daemon.runtime_dir = runtime_dir
    try:
        yield daemon
    finally:
        daemon.stop()


def test_the_defaults_are_limits_json():
    assert _limits(SERVER_INFO_DEFAULTS) == LIMITS["server_info_defaults"]
    assert RECEIVE_LIMIT_BYTES == LIMITS["client_receive_limit_bytes"]


def test_server_info_of_the_default_daemon_is_limits_json(client):
    # testenv's daemon runs without upload_monolithic_max: the defaults.
    info = client.server_info()
    assert _limits(info) == LIMITS["server_info_defaults"]
    assert info.version
    # Asked once, then kept.
    assert client.server_info() is info


def test_the_receive_limit_covers_the_daemons_largest_message(client):
    assert RECEIVE_LIMIT_BYTES >= client.server_info().max_message_bytes


class _TooOldDaemon:
    """Test-only fake: a gRPC server with no services at all, so every call,
    ServerInfo too, is UNIMPLEMENTED, as from a daemon older than ServerInfo."""

    def __init__(self, socket: Path):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        self.server.add_insecure_port(f"unix://{socket}")
        self.server.start()

    def stop(self):
        self.server.stop(None)


def test_a_daemon_without_server_info_means_the_defaults(tmp_path):
    old = _TooOldDaemon(tmp_path / "old.sock")
    try:
        with Client(f"unix://{tmp_path}/old.sock") as c:
            assert c.server_info(timeout=10) == SERVER_INFO_DEFAULTS
    finally:
        old.stop()


def test_hash_first_follows_the_daemons_answer(client, small_daemon, registry, tmp_path):
    small, tiny = random_file(tmp_path / "small.bin", 8192), random_file(tmp_path / "tiny.bin", 1024)
    with Client(f"unix://{small_daemon.socket}") as c:
        assert c.server_info().hash_first_below == SMALL_HASH_FIRST
        # 8 KiB is not below 4 KiB: sent unhashed, so the daemon cannot
        # know the registry has it and uploads it again.
        c.push(f"{registry}/py/hash-first:small-a", [small], plain_http=True)
        assert c.push(f"{registry}/py/hash-first:small-b", [small], plain_http=True).blobs_skipped == 0
        # 1 KiB is: hashed first, and skipped the second time.
        c.push(f"{registry}/py/hash-first:tiny-a", [tiny], plain_http=True)
        assert c.push(f"{registry}/py/hash-first:tiny-b", [tiny], plain_http=True).blobs_skipped == 1
    # The default daemon's threshold (256 MiB) has the 8 KiB file hashed.
    assert client.push(f"{registry}/py/hash-first:small-c", [small], plain_http=True).blobs_skipped == 1


def test_push_chunks_are_the_daemons_max_chunk_bytes(env, registry, tmp_path):
    f = random_file(tmp_path / "f.bin", 10_000)
    with Client(env["SATCHEL_ADDR"]) as c:
        # A seam: the client's kept answer says 4 KiB chunks; the requests
        # gRPC takes from the client are counted on their way to the daemon.
        c._info = ServerInfo(4096, SERVER_INFO_DEFAULTS.max_message_bytes, SERVER_INFO_DEFAULTS.hash_first_below)
        sizes, push = [], c._stub.Push

        def counted(requests, **kw):
            def each():
                for r in requests:
                    if r.WhichOneof("payload") == "chunk":
                        sizes.append(len(r.chunk.data))
                    yield r
            return push(each(), **kw)

        c._stub.Push = counted
        pushed = c.push(f"{registry}/py/chunks:v1", [f], plain_http=True)
    assert sizes == [4096, 4096, 10_000 - 8192]
    assert pushed.layers[0].size == 10_000


@pytest.mark.parametrize("what", ["push", "attach"])
def test_a_missing_local_file_is_invalid_argument(client, registry, tmp_path, what):
    missing = tmp_path / "no-such-file.txt"
    call = getattr(client, what)
    kw = {"artifact_type": "application/vnd.example"} if what == "attach" else {}
    with pytest.raises(SatchelError) as e:
        call(f"{registry}/py/missing-file:v1", [missing], plain_http=True, **kw)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(missing) in e.value.details
    # The language's own not-found error still catches it.
    assert isinstance(e.value, FileNotFoundError)
    assert isinstance(e.value, MissingFileError)
    assert e.value.filename == str(missing)
    # Neither a regular file nor a directory (which would be packed).
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileNotFoundError):
        call(f"{registry}/py/missing-file:v1", [tmp_path / "fifo"], plain_http=True, **kw)


def _default_addr_env(monkeypatch, small_daemon, satchel_addr):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(small_daemon.runtime_dir))
    if satchel_addr is None:
        monkeypatch.delenv("SATCHEL_ADDR", raising=False)
    else:
        monkeypatch.setenv("SATCHEL_ADDR", satchel_addr)


@pytest.mark.parametrize("addr", [None, ""], ids=["None", "empty"])
def test_an_empty_address_is_satchel_addr(env, small_daemon, monkeypatch, addr):
    _default_addr_env(monkeypatch, small_daemon, env["SATCHEL_ADDR"])
    with Client(addr) as c:
        # testenv's daemon, not the one at the default socket.
        assert c.server_info(timeout=10).hash_first_below == LIMITS["server_info_defaults"]["hash_first_below"]


@pytest.mark.parametrize("satchel_addr", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize("addr", [None, ""], ids=["None", "empty"])
def test_an_empty_address_without_satchel_addr_is_the_default_socket(small_daemon, monkeypatch, addr, satchel_addr):
    _default_addr_env(monkeypatch, small_daemon, satchel_addr)
    with Client(addr) as c:
        assert c.server_info(timeout=10).hash_first_below == SMALL_HASH_FIRST


def test_an_absolute_path_is_a_unix_socket(small_daemon, env, monkeypatch):
    monkeypatch.setenv("SATCHEL_ADDR", env["SATCHEL_ADDR"])
    assert str(small_daemon.socket).startswith("/")
    with Client(str(small_daemon.socket)) as c:
        assert c.server_info(timeout=10).hash_first_below == SMALL_HASH_FIRST
