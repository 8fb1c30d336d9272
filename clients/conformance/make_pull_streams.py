#!/usr/bin/env python3
"""Writes pull_streams.json: Pull answers as the daemon might send them, and
what a client must make of each. Run it after changing a case:

    python3 clients/conformance/make_pull_streams.py

Every message is a satchel.v1.PullResponse in protobuf's JSON mapping, so
each client parses it with its own protobuf JSON parser.
"""
import base64
import hashlib
import json
import os

REPO = "registry.test/conformance/pull"
ARTIFACT = "application/vnd.satchel.conformance"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def layer(title: str, data: bytes, media_type="text/plain"):
    return {
        "mediaType": media_type,
        "digest": digest(data),
        "size": str(len(data)),
        "annotations": {"org.opencontainers.image.title": title},
    }


def manifest(*layers):
    """The first message: a manifest naming `layers` (title, data)."""
    empty = b"{}"
    content = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": ARTIFACT,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": digest(empty),
                "size": len(empty),
                "data": b64(empty),
            },
            "layers": [
                {**layer(t, d), "size": len(d)} for t, d in layers
            ],
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest(content),
        "size": str(len(content)),
        "artifactType": ARTIFACT,
    }
    return {
        "manifest": {
            "reference": f"{REPO}@{desc['digest']}",
            "manifest": desc,
            "content": b64(content),
        }
    }


def file(title, data):
    return {"file": {"name": title, "layer": layer(title, data)}}


def chunk(data):
    return {"chunk": b64(data)}


def done(data):
    return {"done": {"digest": digest(data)}}


def progress(title, done_bytes, total):
    return {"progress": {"name": title, "done": str(done_bytes), "total": str(total)}}


def whole(title, data, pieces=1):
    """A file sent in `pieces` chunks, with progress and its FileDone."""
    step = max(1, -(-len(data) // pieces))
    out = [file(title, data)]
    out += [chunk(data[i : i + step]) for i in range(0, len(data), step)]
    out += [progress(title, len(data), len(data)), done(data)]
    return out


A, B = b"hello, conformance\n", b'{"bomFormat":"CycloneDX"}\n'
OK = {"code": "OK"}


def status(code, message):
    return {"code": code, "message": message}


def expect(code, files=None, dir_exists=True):
    return {
        "code": code,
        "files": {k: v.decode() for k, v in (files or {}).items()},
        "dir_exists": dir_exists,
    }


CASES = [
    {
        "name": "two_files",
        "why": "a good pull: each file under its title, the second in a subdirectory",
        "messages": [manifest(("a.txt", A), ("sbom/b.json", B))]
        + whole("a.txt", A, pieces=3)
        + whole("sbom/b.json", B),
        "end": OK,
        "expect": expect("OK", {"a.txt": A, "sbom/b.json": B}),
    },
    {
        "name": "empty_file",
        "why": "a layer of no bytes: no chunks, still a file",
        "messages": [manifest(("empty.txt", b"")), file("empty.txt", b""), done(b"")],
        "end": OK,
        "expect": expect("OK", {"empty.txt": b""}),
    },
    {
        "name": "no_files",
        "why": "a manifest without titled layers writes nothing and makes no directory",
        "messages": [manifest()],
        "end": OK,
        "expect": expect("OK", dir_exists=False),
    },
    {
        "name": "error_before_any_file",
        "why": "a missing tag: the daemon's code, and no output directory made",
        "messages": [],
        "end": status("NOT_FOUND", "manifest unknown"),
        "expect": expect("NOT_FOUND", dir_exists=False),
    },
    {
        "name": "unsafe_title_in_manifest",
        "why": "titles are checked when the manifest arrives, before anything is made",
        "messages": [manifest(("../escape.txt", A))],
        "end": OK,
        "expect": expect("INVALID_ARGUMENT", dir_exists=False),
    },
    {
        "name": "ends_inside_a_file",
        "why": "the stream closed (OK) before the file's FileDone: no partial stays",
        "messages": [manifest(("a.txt", A)), file("a.txt", A), chunk(A[:5])],
        "end": OK,
        "expect": expect("INTERNAL"),
    },
    {
        "name": "first_kept_second_truncated",
        "why": "a finished file stays; the unfinished one leaves nothing",
        "messages": [manifest(("a.txt", A), ("b.json", B))]
        + whole("a.txt", A)
        + [file("b.json", B), chunk(B[:4])],
        "end": OK,
        "expect": expect("INTERNAL", {"a.txt": A}),
    },
    {
        "name": "error_inside_a_file",
        "why": "the daemon's error mid-file is the answer, and no partial stays",
        "messages": [manifest(("a.txt", A)), file("a.txt", A), chunk(A[:5])],
        "end": status("UNAVAILABLE", "the registry went away"),
        "expect": expect("UNAVAILABLE"),
    },
    {
        "name": "done_names_another_digest",
        "why": "the digest the daemon verified is not the layer's",
        "messages": [manifest(("a.txt", A)), file("a.txt", A), chunk(A), done(B)],
        "end": OK,
        "expect": expect("DATA_LOSS"),
    },
    {
        "name": "short_file",
        "why": "fewer bytes than the layer's size",
        "messages": [manifest(("a.txt", A)), file("a.txt", A), chunk(A[:-1]), done(A)],
        "end": OK,
        "expect": expect("DATA_LOSS"),
    },
    {
        "name": "long_file",
        "why": "more bytes than the layer's size",
        "messages": [manifest(("a.txt", A)), file("a.txt", A), chunk(A + b"!"), done(A)],
        "end": OK,
        "expect": expect("DATA_LOSS"),
    },
    {
        "name": "wrong_bytes",
        "why": "the right size, other bytes: the client hashes what it writes",
        "messages": [
            manifest(("a.txt", A)),
            file("a.txt", A),
            chunk(bytes(reversed(A))),
            done(A),
        ],
        "end": OK,
        "expect": expect("DATA_LOSS"),
    },
    {
        "name": "file_the_manifest_does_not_name",
        "why": "a header for a title the manifest lacks is the daemon breaking the protocol",
        "messages": [manifest(("a.txt", A)), file("other.txt", A), chunk(A), done(A)],
        "end": OK,
        "expect": expect("INTERNAL"),
    },
    {
        "name": "file_sent_twice",
        "why": "one title, two headers",
        "messages": [manifest(("a.txt", A))] + whole("a.txt", A) + whole("a.txt", A),
        "end": OK,
        "expect": expect("INTERNAL", {"a.txt": A}),
    },
    {
        "name": "file_before_manifest",
        "why": "the manifest comes first",
        "messages": whole("a.txt", A),
        "end": OK,
        "expect": expect("INTERNAL", dir_exists=False),
    },
    {
        "name": "chunk_outside_a_file",
        "why": "bytes with no file header before them",
        "messages": [manifest(("a.txt", A)), chunk(A)],
        "end": OK,
        "expect": expect("INTERNAL", dir_exists=False),
    },
    {
        "name": "done_without_a_file",
        "why": "a FileDone with no file open",
        "messages": [manifest(("a.txt", A)), done(A)],
        "end": OK,
        "expect": expect("INTERNAL", dir_exists=False),
    },
    {
        "name": "file_inside_a_file",
        "why": "a second header before the first file's FileDone",
        "messages": [manifest(("a.txt", A), ("b.json", B)), file("a.txt", A), chunk(A)]
        + whole("b.json", B),
        "end": OK,
        "expect": expect("INTERNAL"),
    },
]

DOC = {
    "about": (
        "Pull answers and what a client's pull must do with each; see "
        "clients/conformance/README.md. Generated by make_pull_streams.py."
    ),
    "streams": CASES,
}

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "pull_streams.json"), "w") as f:
        json.dump(DOC, f, indent=2)
        f.write("\n")
