"""Which file names a pull may write: the rules of
``clients/conformance/titles.json``, shared by every Satchel client and the
daemon.

A title is the ``org.opencontainers.image.title`` annotation of a layer. It
becomes a path under the directory the caller named, so it must be relative,
``/``-separated, free of ``.``, ``..`` and empty components, backslashes and
control characters, and within the usual file system limits. The titles of
one artifact must not collide: two layers may not write one file, and no
title may be a directory of another.
"""

from __future__ import annotations

import json
from typing import Iterable

import grpc

from satchel.errors import SatchelError

COMPONENT_MAX_BYTES = 255
"""The longest path component, in UTF-8 bytes (NAME_MAX)."""

TOTAL_MAX_BYTES = 4096
"""The longest title, in UTF-8 bytes (PATH_MAX)."""

TITLE_ANNOTATION = "org.opencontainers.image.title"


def _refuse(title: str, why: str) -> SatchelError:
    # repr() escapes control characters, so a hostile title cannot drive a
    # terminal through the message.
    shown = repr(title if len(title) <= 200 else title[:200] + "...")
    return SatchelError(grpc.StatusCode.INVALID_ARGUMENT, f"refusing file name {shown}: {why}")


def check_title(title: str) -> list[str]:
    """Checks one title on its own; returns its components. Raises
    ``SatchelError`` with INVALID_ARGUMENT for a title that must not be
    written."""
    if not isinstance(title, str):
        raise _refuse(str(title), "not a string")
    try:
        encoded = title.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(title, "not valid UTF-8") from None
    if not title:
        raise _refuse(title, "empty")
    if len(encoded) > TOTAL_MAX_BYTES:
        raise _refuse(title, f"longer than {TOTAL_MAX_BYTES} bytes")
    if title.startswith("/"):
        raise _refuse(title, "absolute")
    if "\\" in title:
        raise _refuse(title, "contains a backslash")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in title):
        raise _refuse(title, "contains a control character")
    parts = title.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise _refuse(title, "has an empty, '.' or '..' component")
        if len(part.encode("utf-8")) > COMPONENT_MAX_BYTES:
            raise _refuse(title, f"has a component longer than {COMPONENT_MAX_BYTES} bytes")
    return parts


def check_titles(titles: Iterable[str]) -> None:
    """Checks every title of one artifact, each on its own and against the
    others: no two may name one file, and none may be a directory of
    another. Raises ``SatchelError`` with INVALID_ARGUMENT."""
    files: set[str] = set()
    dirs: set[str] = set()
    for title in titles:
        parts = check_title(title)
        if title in files:
            raise _refuse(title, "two layers write this file")
        if title in dirs:
            raise _refuse(title, "another title makes it a directory")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in files:
                raise _refuse(title, f"{parent!r} is a file of this artifact")
            dirs.add(parent)
        files.add(title)


def manifest_layers(content: bytes) -> list[tuple[str, str]]:
    """The (title, digest) of each layer an image manifest's JSON names, in
    order; layers without a title are not pulled. Raises ``SatchelError``
    with INTERNAL for content that is not a manifest."""
    try:
        manifest = json.loads(content)
        layers = manifest.get("layers") or []
        return [
            (layer["annotations"][TITLE_ANNOTATION], layer["digest"])
            for layer in layers
            if TITLE_ANNOTATION in (layer.get("annotations") or {})
        ]
    except (ValueError, AttributeError, TypeError, KeyError) as e:
        raise SatchelError(grpc.StatusCode.INTERNAL, f"the pulled manifest is malformed: {e!r}") from None
