#!/usr/bin/env python3
"""Writes archives.json: directory layers (tar+gzip, as the ORAS CLI packs a
directory) and what a client's unpack must make of each. See README.md.

Run it again after changing a case; the output is deterministic.
"""

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def raw(entries):
    """A tar written byte for byte: (name, typeflag, data, link, mode)."""
    out = bytearray()
    for name, kind, data, link, mode in entries:
        h = bytearray(512)
        h[0 : len(name)] = name.encode()
        h[100:107] = b"%07o" % mode
        h[108:115] = b"0000000"
        h[116:123] = b"0000000"
        h[124:135] = b"%011o" % len(data)
        h[136:147] = b"%011o" % 1_700_000_000
        h[156:157] = kind
        h[157 : 157 + len(link)] = link.encode()
        h[257:263] = b"ustar\0"
        h[263:265] = b"00"
        h[148:156] = b"        "
        h[148:155] = b"%06o\0" % sum(h)
        out += h + data
        out += bytes(-len(out) % 512)
    return bytes(out + bytes(1024))


def d(name):
    return (name, b"5", b"", "", 0o755)


def f(name, data, mode=0o644):
    return (name, b"0", data, "", mode)


def sym(name, target):
    return (name, b"2", b"", target, 0o777)


def hard(name, target):
    return (name, b"1", b"", target, 0o644)


def pax_tar():
    """A tar the way Go's archive/tar writes long names: PAX headers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in [("d", None), ("d/" + "n" * 150, b"long name\n")]:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def case(name, title, tar, expect, digest="right", limits=None, cut=False):
    archive = gzip.compress(tar, mtime=0)
    if cut:
        archive = archive[: len(archive) // 2]
    c = {"name": name, "title": title, "archive": base64.b64encode(archive).decode()}
    if digest == "right":
        c["tar_digest"] = sha256(tar)
    elif digest is not None:
        c["tar_digest"] = digest
    if limits:
        c["limits"] = limits
    c["expect"] = expect
    return c


def refused(code):
    return {"code": code}


TREE = {
    "run.sh": {"file": "#!/bin/sh\n", "exec": True},
    "sub": {"dir": True},
    "sub/b.txt": {"file": "bee\n", "exec": False},
    "top": {"link": "run.sh"},
    "sub/up": {"link": "../run.sh"},
    "copy": {"file": "bee\n", "exec": False},
}

GOOD = raw(
    [
        d("d"),
        f("d/run.sh", b"#!/bin/sh\n", 0o755),
        d("d/sub"),
        f("d/sub/b.txt", b"bee\n"),
        sym("d/top", "run.sh"),
        sym("d/sub/up", "../run.sh"),
        hard("d/copy", "d/sub/b.txt"),
    ]
)

CASES = [
    case("a directory with files, links and a hard link", "d", GOOD, {"code": "OK", "tree": TREE}),
    case(
        "entries named with ./ in front and / behind",
        "d",
        raw([d("./d/"), d("./d/s/"), f("./d/s/x", b"x")]),
        {"code": "OK", "tree": {"s": {"dir": True}, "s/x": {"file": "x", "exec": False}}},
    ),
    case(
        "a nested title",
        "a/b",
        raw([d("a/b"), f("a/b/x", b"x")]),
        {"code": "OK", "tree": {"x": {"file": "x", "exec": False}}},
    ),
    case(
        "long names in PAX headers",
        "d",
        pax_tar(),
        {"code": "OK", "tree": {"n" * 150: {"file": "long name\n", "exec": False}}},
    ),
    case(
        "no content digest to check",
        "d",
        raw([d("d"), f("d/x", b"x")]),
        {"code": "OK", "tree": {"x": {"file": "x", "exec": False}}},
        digest=None,
    ),
    case("an entry outside the title", "d", raw([d("d"), f("other/x", b"x")]), refused("INVALID_ARGUMENT")),
    case("an entry climbing out", "d", raw([d("d"), f("d/../x", b"x")]), refused("INVALID_ARGUMENT")),
    case("an absolute entry", "d", raw([d("d"), f("/tmp/x", b"x")]), refused("INVALID_ARGUMENT")),
    case("a link to an absolute path", "d", raw([d("d"), sym("d/l", "/etc/passwd")]), refused("INVALID_ARGUMENT")),
    case("a link climbing out", "d", raw([d("d"), sym("d/l", "../x")]), refused("INVALID_ARGUMENT")),
    case(
        "a link climbing after a name",
        "d",
        raw([d("d"), d("d/s"), sym("d/s/l", "x/../../..")]),
        refused("INVALID_ARGUMENT"),
    ),
    case(
        "a write through an earlier link",
        "d",
        raw([d("d"), d("d/real"), sym("d/l", "real"), f("d/l/x", b"x")]),
        refused("INVALID_ARGUMENT"),
    ),
    case("a hard link outside", "d", raw([d("d"), hard("d/h", "other/x")]), refused("INVALID_ARGUMENT")),
    case(
        "a hard link to nothing earlier",
        "d",
        raw([d("d"), hard("d/h", "d/later"), f("d/later", b"x")]),
        refused("INVALID_ARGUMENT"),
    ),
    case("a character device", "d", raw([d("d"), ("d/tty", b"3", b"", "", 0o644)]), refused("INVALID_ARGUMENT")),
    case("a FIFO", "d", raw([d("d"), ("d/fifo", b"6", b"", "", 0o644)]), refused("INVALID_ARGUMENT")),
    case("a file at the top", "d", raw([f("d", b"x")]), refused("INVALID_ARGUMENT")),
    case(
        "a wrong content digest",
        "d",
        raw([d("d"), f("d/x", b"x")]),
        refused("DATA_LOSS"),
        digest=sha256(b"something else"),
    ),
    case("a cut archive", "d", GOOD, refused("DATA_LOSS"), cut=True),
    case(
        "more bytes than the limit",
        "d",
        raw([d("d"), f("d/zeros", bytes(1 << 20))]),
        refused("RESOURCE_EXHAUSTED"),
        limits={"max_bytes": 512 << 10},
    ),
    case(
        "more entries than the limit",
        "d",
        raw([d("d"), f("d/a", b"a"), f("d/b", b"b")]),
        refused("RESOURCE_EXHAUSTED"),
        limits={"max_entries": 2},
    ),
]

if __name__ == "__main__":
    with open(os.path.join(HERE, "archives.json"), "w") as out:
        json.dump({"cases": CASES}, out, indent=1)
        out.write("\n")
