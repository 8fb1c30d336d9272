"""Starts the live environment (clients/testenv.sh): a real docker-registry
and a real satcheld, once for the test session; and, for tests that need a
daemon configured otherwise, another real satcheld (``Satcheld``)."""

import os
import subprocess
import time
from pathlib import Path

import pytest

TESTENV = Path(__file__).resolve().parents[2] / "testenv.sh"


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("testenv")
    out = subprocess.run(
        [str(TESTENV), "up", str(state)], check=True, capture_output=True, text=True
    ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    # The daemon binary testenv chose, for tests that start one of their own.
    pid = (state / "satcheld.pid").read_text().strip()
    values["SATCHELD"] = os.readlink(f"/proc/{pid}/exe")
    try:
        yield values
    finally:
        subprocess.run([str(TESTENV), "down", str(state)], check=False)


@pytest.fixture
def client(env):
    from satchel import Client

    with Client(env["SATCHEL_ADDR"]) as c:
        yield c


@pytest.fixture
def registry(env):
    return env["SATCHEL_REGISTRY"]


def random_file(path: Path, size: int) -> Path:
    """Writes ``size`` random bytes to ``path`` a MiB at a time."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


class Satcheld:
    """A real satcheld of a test's own, the binary testenv runs, listening on
    the Unix socket ``socket`` with ``config`` (TOML) as its config file and
    its state under ``state``. Its settings come from these alone, never from
    the caller's environment."""

    def __init__(self, exe: str, state: Path, socket: Path, config: str = ""):
        state.mkdir(parents=True, exist_ok=True)
        socket.parent.mkdir(parents=True, exist_ok=True)
        (state / "satcheld.toml").write_text(config)
        self.socket = socket
        env = {k: v for k, v in os.environ.items() if not k.startswith("SATCHELD_")}
        env["DOCKER_CONFIG"] = str(state / "docker")
        self.log = open(state / "satcheld.log", "wb")
        self.proc = subprocess.Popen(
            [exe, "--listen", f"unix://{socket}", "--config", str(state / "satcheld.toml"),
             "--docker-config", str(state / "docker" / "config.json"), "--cache-dir", str(state / "cache"),
             "--state-dir", str(state / "state")],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_for_socket(state)

    def _wait_for_socket(self, state: Path) -> None:
        # The socket appears once the daemon listens; the caller's first RPC
        # (with gRPC's wait_for_ready where it matters) does the rest.
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"satcheld exited: {(state / 'satcheld.log').read_text()[-2000:]}")
            if self.socket.is_socket():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"satcheld did not listen within 30 s; log in {state}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
