#!/usr/bin/env python3
"""Pulls an image's newest attachment of a type CALLS times at once through
the Python client (clients/python), for bench/concurrent.sh: one Client
(one gRPC channel) to one satcheld, a thread per call, all released
together. Two rounds: the first as it comes (a fresh daemon is cold), the
second at once after it (warm).

    concurrent_pull.py --addr unix:///path/satcheld.sock --subject REG/REPO:TAG \
        --artifact-type TYPE --expect FILE --out DIR [--calls 200] \
        [--label TEXT] [--daemon-pid PID] [--proxy-log FILE] [--registry-log FILE] [--breakdown]

Every pulled file is compared with --expect. For each round it prints one
row: p50, p99 and max latency in ms (nearest rank), and the registry
requests the round made: counted in --proxy-log (bench/latency_proxy.py
--log-requests) and in --registry-log (docker-registry's access log), with
the new connections the proxy saw; and the CPU time the daemon
(--daemon-pid) and this client spent on the round. --breakdown adds the
first round's requests from the registry log, grouped by method, path and
status.
"""

import argparse
import math
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from satchel import Client

ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})')


class Log:
    """The lines a file gains from one point on."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        self.mark()

    def mark(self):
        self.offset = self.path.stat().st_size if self.path and self.path.exists() else 0

    def since(self):
        if self.path is None:
            return None
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode("utf-8", "replace").splitlines()


def cpu_ms(pid):
    """User and system CPU time of a process so far, in ms (10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 // os.sysconf("SC_CLK_TCK")


def rank(sorted_values, p):
    """The nearest-rank percentile."""
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def one_round(client, a, name, expect):
    """Runs a.calls pulls at once; returns their latencies in seconds."""
    start = threading.Barrier(a.calls)
    latencies = [None] * a.calls
    errors = []

    def call(i):
        out = Path(a.out, f"{name}-{i}")
        start.wait()
        t0 = time.perf_counter()
        try:
            got = client.pull(
                a.subject, artifact_type=a.artifact_type, output_dir=out, plain_http=True
            )
            latencies[i] = time.perf_counter() - t0
            if [f.path.read_bytes() for f in got.files] != [expect]:
                errors.append(f"call {i}: not the attached file")
        except Exception as e:  # noqa: BLE001 - reported below, the round fails
            errors.append(f"call {i}: {e}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(a.calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"{name}: {len(errors)} of {a.calls} calls failed, first: {errors[0]}")
    return latencies


def shorten(path):
    return re.sub(r"(sha256[:-][0-9a-f]{12})[0-9a-f]{52}", r"\1…", path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--artifact-type", required=True)
    p.add_argument("--expect", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--label", default="")
    p.add_argument("--daemon-pid", type=int)
    p.add_argument("--proxy-log")
    p.add_argument("--registry-log")
    p.add_argument("--breakdown", action="store_true")
    a = p.parse_args()
    expect = Path(a.expect).read_bytes()
    proxy, registry = Log(a.proxy_log), Log(a.registry_log)
    breakdown = None
    with Client(a.addr) as client:
        client.server_info()  # the channel is up before the clock starts
        for name in ("fresh daemon", "again at once"):
            proxy.mark()
            registry.mark()
            daemon = cpu_ms(a.daemon_pid) if a.daemon_pid else None
            mine = cpu_ms(os.getpid())
            latencies = sorted(one_round(client, a, name.split()[0], expect))
            mine = cpu_ms(os.getpid()) - mine
            daemon = "-" if daemon is None else str(cpu_ms(a.daemon_pid) - daemon)
            # The registry writes its access log line after the answer.
            time.sleep(0.3)
            seen = proxy.since()
            logged = [m.groups() for m in map(ACCESS.search, registry.since() or []) if m]
            if breakdown is None:
                breakdown = logged
            requests = "-" if seen is None else str(sum(not s.startswith("connect") for s in seen))
            conns = "-" if seen is None else str(sum(s.startswith("connect") for s in seen))
            print(
                f"{a.label + name:34}{rank(latencies, 50) * 1e3:8.1f}{rank(latencies, 99) * 1e3:8.1f}"
                f"{latencies[-1] * 1e3:8.1f}{requests:>10}{len(logged) if a.registry_log else '-':>10}"
                f"{conns:>7}{daemon:>8}{mine:>8}"
            )
    if a.breakdown and breakdown is not None:
        print(f"  {a.label}first round, per object (registry access log):")
        for (method, path, status), n in sorted(
            Counter(breakdown).items(), key=lambda kv: kv[0][1]
        ):
            print(f"  {n:6}  {method:5}{status:4}  {shorten(path)}")


if __name__ == "__main__":
    main()
