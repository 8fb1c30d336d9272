"""The shared pull-stream cases (clients/conformance/pull_streams.json), fed
to the client's pull state machine, ``satchel._pull.pull_stream``, through
its seam: it consumes any iterable of PullResponse, as it consumes the gRPC
call in ``Client.pull``. A real daemon never sends most of these streams."""

import json
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from satchel import SatchelError
from satchel._pull import pull_stream
from satchel.v1 import satchel_pb2 as pb

PATH = Path(__file__).resolve().parents[2] / "conformance" / "pull_streams.json"
CASES = json.loads(PATH.read_text(encoding="utf-8"))["streams"]


class _RecordedStatus(grpc.RpcError):
    """Test-only: the status a recorded stream ends with, raised the way a
    gRPC call's iterator raises the daemon's status (code() and details())."""

    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def _replay(case):
    """Test-only: the case's messages as PullResponses, then its end."""
    for m in case["messages"]:
        yield json_format.ParseDict(m, pb.PullResponse())
    end = case["end"]
    if end["code"] != "OK":
        raise _RecordedStatus(grpc.StatusCode[end["code"]], end.get("message", ""))


def _left(root: Path) -> dict:
    """Everything but directories under root, each regular file with its
    text; anything else (a link, say) shows as such."""
    found = {}
    for p in sorted(root.rglob("*")) if root.exists() else []:
        rel = p.relative_to(root).as_posix()
        if p.is_symlink() or not (p.is_dir() or p.is_file()):
            found[rel] = ("not a regular file",)
        elif p.is_file():
            found[rel] = p.read_bytes().decode("utf-8", "replace")
    return found


def test_every_case_is_here():
    assert len(CASES) == 18
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_pull_stream(case, tmp_path):
    out = tmp_path / "out"
    expect = case["expect"]
    try:
        result = pull_stream(_replay(case), out)
        code = "OK"
    except SatchelError as e:
        code, result = e.code.name, None
    assert code == expect["code"], case["why"]
    assert _left(out) == expect["files"], case["why"]
    assert out.exists() == expect["dir_exists"], case["why"]
    if result is not None:
        assert sorted(f.path.relative_to(out).as_posix() for f in result.files) == sorted(expect["files"])
