#!/usr/bin/env python3
"""A TCP proxy on loopback that adds network latency (the kernel's netem is
not available here).

Every segment read from one side is written to the other side half the
round trip after it was read, in order, in each direction: a request and
its answer pay one full RTT, as across a WAN; bandwidth is not limited.
Connection set-up pays one RTT too (the upstream connect is made when the
client connects, and the first bytes wait for it). End of stream is
forwarded after the same delay.

    latency_proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--rtt-ms 20]
        [--log-requests FILE]

Prints "ready HOST:PORT" on stdout once listening (PORT 0 picks one).
With --log-requests, it also reads what clients send as HTTP/1.x and appends
a line to FILE for each new connection ("connect N") and each request
("N METHOD TARGET", N the connection's number), so a benchmark can count
the requests an operation made; forwarding is unchanged.
"""

import argparse
import asyncio
import contextlib
import itertools
import socket
import sys


class RequestLog:
    """Finds the HTTP/1.x requests in one connection's client-to-server
    bytes and writes "N METHOD TARGET" for each to `out`. Bodies are
    passed over by Content-Length or chunked framing; anything it cannot
    parse (HTTP/2, TLS) ends its logging of that connection."""

    def __init__(self, out, numbers):
        self.out, self.conn = out, next(numbers)
        self.buf = b""
        self.state = "head"  # or "chunk-size", "trailer", "broken"
        self.skip = 0  # body bytes still to pass over
        self.write(f"connect {self.conn}")

    def write(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def feed(self, data):
        self.buf += data
        while self.state != "broken":
            if self.skip:
                n = min(self.skip, len(self.buf))
                self.buf, self.skip = self.buf[n:], self.skip - n
                if self.skip:
                    return
                continue
            sep = b"\r\n\r\n" if self.state == "head" else b"\r\n"
            item, found, rest = self.buf.partition(sep)
            if not found:
                if len(self.buf) > 1 << 16:
                    self.state = "broken"
                return
            self.buf = rest
            if self.state == "head":
                self.head(item.decode("latin-1").split("\r\n"))
            elif self.state == "chunk-size":
                try:
                    size = int(item.split(b";")[0], 16)
                except ValueError:
                    self.state = "broken"
                    return
                if size:
                    self.skip = size + 2  # the chunk and its CRLF
                else:
                    self.state = "trailer"
            elif not item:  # the empty line that ends the trailers
                self.state = "head"

    def head(self, lines):
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.state = "broken"
            return
        self.write(f"{self.conn} {parts[0]} {parts[1]}")
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        length = fields.get("content-length", "0")
        if "chunked" in fields.get("transfer-encoding", "").lower():
            self.state = "chunk-size"
        elif length.isdigit():
            self.skip = int(length)
        else:
            self.state = "broken"


async def pump(reader, writer, delay, log=None):
    """Copies reader to writer, each chunk `delay` seconds after its read;
    `log`, if given, sees every chunk as it is read."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read_side():
        while True:
            try:
                data = await reader.read(1 << 16)
            except (ConnectionError, OSError):
                data = b""
            if log is not None and data:
                log.feed(data)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def write_side():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return

    reading = asyncio.ensure_future(read_side())
    try:
        await write_side()
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reading


async def handle(client_reader, client_writer, upstream, delay, log):
    host, port = upstream
    # The SYN and SYN-ACK cross the "network": one RTT before any byte.
    await asyncio.sleep(2 * delay)
    try:
        up_reader, up_writer = await asyncio.open_connection(host, port)
    except OSError:
        client_writer.close()
        return
    for w in (client_writer, up_writer):
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await asyncio.gather(
            pump(client_reader, up_writer, delay, RequestLog(*log) if log else None),
            pump(up_reader, client_writer, delay),
        )
    finally:
        for w in (client_writer, up_writer):
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()


def hostport(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(a, log):
    delay = a.rtt_ms / 2000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, a.upstream, delay, log), a.listen[0], a.listen[1]
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"ready {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:0", type=hostport)
    p.add_argument("--upstream", required=True, type=hostport)
    p.add_argument("--rtt-ms", default=20.0, type=float, help="round trip to add (default 20)")
    p.add_argument("--log-requests", metavar="FILE", help="append connections and requests to FILE")
    a = p.parse_args()
    with contextlib.ExitStack() as files:
        # The log file and the connections' numbers, shared by every handler.
        log = None
        if a.log_requests:
            log = (
                files.enter_context(open(a.log_requests, "a", encoding="utf-8")),
                itertools.count(1),
            )
        asyncio.run(serve(a, log))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
    sys.exit(0)
