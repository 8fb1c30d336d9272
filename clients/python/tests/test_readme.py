"""Every ```python block of README.md, run as written, in order, by a fresh
interpreter in one empty directory, against the live daemon and registry
(through $SATCHEL_ADDR and $SATCHEL_REGISTRY, as the README says), so the
examples cannot drift from the client."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list:
    """(line of the opening fence, code) for each ```python block."""
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)
    ]


def test_readme_examples_run(env, tmp_path):
    blocks = _blocks()
    assert len(blocks) >= 2, blocks
    run_env = {**os.environ, "SATCHEL_ADDR": env["SATCHEL_ADDR"], "SATCHEL_REGISTRY": env["SATCHEL_REGISTRY"]}
    outputs = []
    for line, code in blocks:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"README.md:{line} failed:\n{done.stderr}"
        outputs.append(done.stdout)
    # What the examples say they do.
    assert "StatusCode.NOT_FOUND" in outputs[0]
    assert (tmp_path / "out" / "app.tar").read_bytes() == b"the application\n"
    # The one-step pull of the newest attachment.
    assert "['sbom/sbom.cdx.json']" in outputs[1]
    assert (tmp_path / "sbom" / "sbom.cdx.json").read_text() == '{"bomFormat": "CycloneDX"}\n'
