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

Prints "ready HOST:PORT" on stdout once listening (PORT 0 picks one).
"""

import argparse
import asyncio
import contextlib
import socket
import sys


async def pump(reader, writer, delay):
    """Copies reader to writer, each chunk `delay` seconds after its read."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read_side():
        while True:
            try:
                data = await reader.read(1 << 16)
            except (ConnectionError, OSError):
                data = b""
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


async def handle(client_reader, client_writer, upstream, delay):
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
            pump(client_reader, up_writer, delay),
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


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:0", type=hostport)
    p.add_argument("--upstream", required=True, type=hostport)
    p.add_argument("--rtt-ms", default=20.0, type=float, help="round trip to add (default 20)")
    a = p.parse_args()
    delay = a.rtt_ms / 2000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, a.upstream, delay), a.listen[0], a.listen[1]
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"ready {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    sys.exit(0)
