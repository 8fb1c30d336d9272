#!/usr/bin/env python3
"""Writes an image and a tree of referrers below it straight over a
registry's HTTP API (plain HTTP, no auth), for bench/deep_discover.sh.

    referrer_tree.py --registry HOST:PORT --repo bench/deep --tag v1 \
        --fanout 10,10,9 [--tag-schema]

--fanout 10,10,9 puts 10 referrers on the image, 10 on each of those and 9
on each of those (10 + 100 + 900). Every manifest is an ORAS-style artifact
manifest (the empty config `{}`, one tiny layer shared by all, `subject`,
`artifactType`, an annotation that makes it unique), pushed by digest, a
level at a time. With --tag-schema (a registry without the referrers API)
it also PUTs, for each subject with referrers, the tag-schema index
`sha256-<hex>` listing them, in the bytes ORAS writes (Go's json.Marshal of
an OCI index). Prints the image's digest and the number of referrers.
"""

import argparse
import hashlib
import http.client
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
LAYER = "application/vnd.bench.layer"
CREATED = "2025-01-01T00:00:00Z"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(obj):
    """JSON as Go's json.Marshal writes it for these documents."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Registry:
    """One connection per thread to a plain-HTTP registry."""

    def __init__(self, addr, repo):
        self.addr, self.repo = addr, repo
        self.local = threading.local()

    def request(self, method, path, body=None, headers=None):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.addr, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
        return resp

    def blob(self, data):
        d = digest(data)
        resp = self.request("POST", f"/v2/{self.repo}/blobs/uploads/")
        loc = resp.getheader("Location")
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        sep = "&" if "?" in loc else "?"
        headers = {"Content-Type": "application/octet-stream"}
        self.request("PUT", f"{loc}{sep}digest={d}", data, headers)
        return {"mediaType": LAYER, "digest": d, "size": len(data)}

    def manifest(self, reference, data, media_type):
        self.request(
            "PUT", f"/v2/{self.repo}/manifests/{reference}", data, {"Content-Type": media_type}
        )


def artifact(layer, artifact_type, name, subject):
    """An artifact manifest in the field order ORAS (oras-go) writes."""
    m = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY, "digest": digest(b"{}"), "size": 2, "data": "e30="},
        "layers": [dict(layer, annotations={"org.opencontainers.image.title": "node.txt"})],
    }
    if subject is not None:
        m["subject"] = {"mediaType": MANIFEST, "digest": subject["digest"], "size": subject["size"]}
    m["annotations"] = {"bench.node": name, "org.opencontainers.image.created": CREATED}
    data = compact(m)
    desc = {
        "mediaType": MANIFEST,
        "digest": digest(data),
        "size": len(data),
        "annotations": m["annotations"],
        "artifactType": artifact_type,
    }
    return desc, data


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--registry", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--tag", default="v1")
    p.add_argument("--fanout", default="10,10,9")
    p.add_argument("--tag-schema", action="store_true")
    p.add_argument("--threads", type=int, default=8)
    a = p.parse_args()
    fanout = [int(x) for x in a.fanout.split(",")]
    reg = Registry(a.registry, a.repo)

    layer = reg.blob(b"bench node\n")
    reg.blob(b"{}")
    image, data = artifact(layer, "application/vnd.bench.image", "image", None)
    reg.manifest(a.tag, data, MANIFEST)

    children = {}  # subject digest -> its referrers' descriptors, in order
    level = [("", image)]
    total = 0
    with ThreadPoolExecutor(a.threads) as pool:
        for depth, n in enumerate(fanout, 1):
            made = []
            for name, subject in level:
                for i in range(n):
                    child = f"{name}.{i}" if name else str(i)
                    desc, data = artifact(
                        layer, f"application/vnd.bench.level{depth}", child, subject
                    )
                    made.append((child, desc, data))
                    children.setdefault(subject["digest"], []).append(desc)
            list(pool.map(lambda m: reg.manifest(m[1]["digest"], m[2], MANIFEST), made))
            total += len(made)
            level = [(child, desc) for child, desc, _ in made]
        if a.tag_schema:

            def put_index(item):
                subject, descs = item
                body = compact({"schemaVersion": 2, "mediaType": INDEX, "manifests": descs})
                reg.manifest(subject.replace(":", "-"), body, INDEX)

            list(pool.map(put_index, children.items()))
    print(image["digest"], total)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        sys.exit(f"referrer_tree.py: {e}")
