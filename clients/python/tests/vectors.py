"""The shared title vectors, clients/conformance/titles.json, read by a path
relative to this file."""

import json
from pathlib import Path

PATH = Path(__file__).resolve().parent / ".." / ".." / "conformance" / "titles.json"
VECTORS = json.loads(PATH.read_text(encoding="utf-8"))


def title(v: dict) -> str:
    """A vector's title: prefix + title * repeat + suffix."""
    return v.get("prefix", "") + v["title"] * v.get("repeat", 1) + v.get("suffix", "")


def case_id(v: dict) -> str:
    """A short, printable test id for a vector."""
    if "name" in v:
        return v["name"]
    shown = repr(title(v)) if "title" in v else repr(v["titles"])
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{shown} ({v['why']})" if "why" in v else shown
