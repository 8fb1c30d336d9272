"""Starts the live environment (clients/testenv.sh): a real docker-registry
and a real satcheld, once for the test session."""

import os
import subprocess
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
