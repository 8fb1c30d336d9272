"""WatchReferrers from Python while the real ORAS CLI attaches and deletes,
through a satcheld of the test's own that polls every 0.2 s."""

import concurrent.futures
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from satchel import Client
from conftest import Satcheld

SBOM = "application/vnd.example.sbom.v1"


def oras() -> str:
    """The ORAS CLI bench/peers.sh built ($SATCHEL_ORAS), else on PATH or in
    the Go bin directory."""
    found = os.environ.get("SATCHEL_ORAS") or shutil.which("oras")
    go_bin = Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin" / "oras"
    found = found or (str(go_bin) if go_bin.is_file() else None)
    if not found:
        pytest.fail("the ORAS CLI is missing: run `eval \"$(bench/peers.sh)\"`")
    return found


@pytest.fixture
def watching_daemon(env, tmp_path):
    daemon = Satcheld(
        env["SATCHELD"], tmp_path / "state", tmp_path / "run" / "satcheld.sock",
        config="watch_poll_secs = 0.2\n",
    )
    try:
        yield daemon
    finally:
        daemon.stop()


def test_a_python_watcher_sees_what_the_oras_cli_attaches_and_deletes(
    watching_daemon, registry, tmp_path
):
    subject_file = tmp_path / "app.txt"
    subject_file.write_text("the watched subject\n")
    reference = f"{registry}/py/watched:v1"
    with Client(f"unix://{watching_daemon.socket}") as client:
        client.push(reference, [subject_file], artifact_type="application/vnd.example.app",
                    plain_http=True)
        events = client.watch_referrers(reference, artifact_type=SBOM, plain_http=True)
        pool = concurrent.futures.ThreadPoolExecutor(1)

        def next_event():
            return pool.submit(next, events).result(timeout=20)

        try:
            first = next_event()
            assert (first.kind, first.referrers, first.resync) == ("current", (), False)
            (tmp_path / "sbom.json").write_text('{"bomFormat": "CycloneDX"}')
            # Something of another type is no event for this watcher.
            (tmp_path / "sig.txt").write_text("signature")
            for name, kind in (("sig.txt", "application/vnd.example.sig"), ("sbom.json", SBOM)):
                out = subprocess.run(
                    [oras(), "attach", "--plain-http", "--artifact-type", kind, reference, name],
                    cwd=tmp_path, check=True, capture_output=True, text=True,
                ).stdout
            digest = re.search(r"^Digest: (\S+)", out, re.M).group(1)
            appeared = next_event()
            assert appeared.kind == "appeared", appeared
            assert [d.digest for d in appeared.referrers] == [digest]
            assert appeared.referrers[0].artifact_type == SBOM
            subprocess.run(
                [oras(), "manifest", "delete", "--plain-http", "--force",
                 f"{registry}/py/watched@{digest}"],
                check=True, capture_output=True,
            )
            gone = next_event()
            assert (gone.kind, [d.digest for d in gone.referrers]) == ("disappeared", [digest])
        finally:
            events.close()
            pool.shutdown()
