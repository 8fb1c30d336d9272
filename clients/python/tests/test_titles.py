"""The title rules against the shared vectors (clients/conformance), and
the pull's use of them on streams the daemon would never send."""

import hashlib
import json

import grpc
import pytest

from satchel import SatchelError, check_title, check_titles
from satchel.client import _pull
from satchel.v1 import satchel_pb2 as pb
from vectors import VECTORS, case_id, title

TITLE = "org.opencontainers.image.title"


def test_limits_are_the_vectors():
    from satchel import titles

    assert titles.COMPONENT_MAX_BYTES == VECTORS["limits"]["component_max_bytes"]
    assert titles.TOTAL_MAX_BYTES == VECTORS["limits"]["total_max_bytes"]


@pytest.mark.parametrize("vector", VECTORS["accept"], ids=case_id)
def test_accepted_title(vector):
    check_title(title(vector))
    check_titles([title(vector)])


@pytest.mark.parametrize("vector", VECTORS["refuse"], ids=case_id)
def test_refused_title(vector):
    with pytest.raises(SatchelError) as e:
        check_title(title(vector))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(SatchelError) as e:
        check_titles(["fine.txt", title(vector)])
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("vector", VECTORS["conflicts"], ids=case_id)
def test_conflicting_titles(vector):
    for t in vector["titles"]:
        check_title(t)
    with pytest.raises(SatchelError) as e:
        check_titles(vector["titles"])
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("vector", VECTORS["compatible"], ids=case_id)
def test_compatible_titles(vector):
    check_titles(vector["titles"])


# A pull stream as the daemon would send it, fed to the client's pull loop
# directly: the daemon refuses such artifacts itself, so only this way does
# the client's own check get exercised.


class _Stream:
    def __init__(self, messages):
        self.messages = messages

    def __iter__(self):
        return iter(self.messages)

    def cancel(self):
        pass


def _manifest(titles_and_bytes):
    layers = [
        {
            "mediaType": "application/octet-stream",
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "annotations": {TITLE: t},
        }
        for t, data in titles_and_bytes
    ]
    content = json.dumps({"schemaVersion": 2, "layers": layers}).encode()
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    return pb.PullResponse(
        manifest=pb.PulledManifest(
            manifest=pb.Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=digest),
            content=content,
            reference="r@" + digest,
        )
    ), layers


def _file(name, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    return [
        pb.PullResponse(file=pb.FileHeader(name=name, layer=pb.Descriptor(digest=d, size=len(data)))),
        pb.PullResponse(chunk=data),
        pb.PullResponse(done=pb.FileDone(digest=d)),
    ]


def _everything(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("vector", VECTORS["conflicts"], ids=case_id)
def test_pull_refuses_conflicting_manifest_before_writing(vector, tmp_path):
    files = [(t, t.encode()) for t in vector["titles"]]
    manifest, _ = _manifest(files)
    stream = [manifest] + [m for t, data in files for m in _file(t, data)]
    with pytest.raises(SatchelError) as e:
        _pull(_Stream(stream), tmp_path / "out", None)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert _everything(tmp_path / "out") == []


def test_pull_refuses_a_bad_title_in_the_manifest_before_writing(tmp_path):
    manifest, _ = _manifest([("ok.txt", b"ok"), ("../escape", b"no")])
    stream = [manifest, *_file("ok.txt", b"ok")]
    with pytest.raises(SatchelError) as e:
        _pull(_Stream(stream), tmp_path / "out", None)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert _everything(tmp_path / "out") == []


def test_pull_refuses_a_file_the_manifest_does_not_name(tmp_path):
    manifest, _ = _manifest([("named.txt", b"a")])
    stream = [manifest, *_file("other.txt", b"a")]
    with pytest.raises(SatchelError) as e:
        _pull(_Stream(stream), tmp_path / "out", None)
    assert e.value.code == grpc.StatusCode.INTERNAL
    assert _everything(tmp_path / "out") == []


def test_pull_refuses_a_file_sent_twice(tmp_path):
    manifest, _ = _manifest([("once.txt", b"a")])
    stream = [manifest, *_file("once.txt", b"a"), *_file("once.txt", b"a")]
    with pytest.raises(SatchelError) as e:
        _pull(_Stream(stream), tmp_path / "out", None)
    assert e.value.code == grpc.StatusCode.INTERNAL
    assert _everything(tmp_path / "out") == ["once.txt"]


def test_pull_writes_what_the_manifest_names(tmp_path):
    files = [("d/a", b"1"), ("d/e/f", b"22")]
    manifest, _ = _manifest(files)
    stream = [manifest] + [m for t, data in files for m in _file(t, data)]
    result = _pull(_Stream(stream), tmp_path / "out", None)
    assert [f.path for f in result.files] == [tmp_path / "out" / "d" / "a", tmp_path / "out" / "d" / "e" / "f"]
    assert (tmp_path / "out" / "d" / "e" / "f").read_bytes() == b"22"
    assert _everything(tmp_path / "out") == ["d", "d/a", "d/e", "d/e/f"]


def test_pull_refuses_a_directory_at_the_final_name(tmp_path):
    out = tmp_path / "out"
    (out / "f.txt").mkdir(parents=True)
    manifest, _ = _manifest([("f.txt", b"x")])
    with pytest.raises(SatchelError) as e:
        _pull(_Stream([manifest, *_file("f.txt", b"x")]), out, None)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert _everything(out) == ["f.txt"]


def test_pull_refuses_a_file_where_a_directory_must_be(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_bytes(b"mine")
    manifest, _ = _manifest([("a/b", b"x")])
    with pytest.raises(SatchelError) as e:
        _pull(_Stream([manifest, *_file("a/b", b"x")]), out, None)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert _everything(out) == ["a"]
    assert (out / "a").read_bytes() == b"mine"


def test_push_refuses_a_bad_name_before_calling_the_daemon(tmp_path):
    from satchel import Client

    f = tmp_path / "a.txt"
    f.write_text("a")
    # No daemon listens there: the refusal must come before any call.
    with Client(f"unix://{tmp_path}/nobody.sock") as c:
        for bad in ["../a.txt", "a\x1b[2Jb", "x" * 256]:
            with pytest.raises(SatchelError) as e:
                c.push("localhost:5000/r:t", [(f, "text/plain", bad)], timeout=5)
            assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT, bad


class _Ended(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_the_daemons_own_deadline_end_is_deadline_exceeded():
    import time

    from satchel.client import _error

    # satcheld (tonic) answers a deadline it saw pass with CANCELLED.
    ended = _Ended(grpc.StatusCode.CANCELLED, "Timeout expired")
    assert _error(ended, time.monotonic() + 60).code == grpc.StatusCode.DEADLINE_EXCEEDED
    # Without a deadline, or cancelled otherwise before it, CANCELLED stays.
    assert _error(ended, None).code == grpc.StatusCode.CANCELLED
    other = _Ended(grpc.StatusCode.CANCELLED, "Cancelled")
    assert _error(other, time.monotonic() + 60).code == grpc.StatusCode.CANCELLED
    assert _error(other, time.monotonic() - 1).code == grpc.StatusCode.DEADLINE_EXCEEDED
