"""What the client announces of its receive side when it connects: its
HTTP/2 SETTINGS and its connection window, read by a bare HTTP/2 peer on a
Unix socket (no daemon). grpc-core ignores channel arguments it does not
know, so only the wire shows that ``HTTP2_OPTIONS`` took effect (with BDP
probing on, grpc-core announces its own 4 MiB window and frames instead of
``STREAM_WINDOW_BYTES`` and ``MAX_FRAME_BYTES``)."""

import socket
import threading

from satchel import Client, SatchelError
from satchel.client import MAX_FRAME_BYTES, STREAM_WINDOW_BYTES

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, SETTINGS, WINDOW_UPDATE = 0x1, 0x4, 0x8
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 0x4, 0x5


def frame(kind: int, flags: int = 0) -> bytes:
    """An empty frame on stream 0."""
    return bytes([0, 0, 0, kind, flags, 0, 0, 0, 0])


def read_announced(conn: socket.socket) -> dict:
    """Reads the client's frames until its first HEADERS (the call),
    answering its SETTINGS; returns its settings and its connection window."""
    buf = b""

    def take(n: int) -> bytes:
        nonlocal buf
        while len(buf) < n:
            data = conn.recv(1 << 16)
            if not data:
                raise EOFError("the client hung up before its first call")
            buf += data
        out, buf = buf[:n], buf[n:]
        return out

    conn.sendall(frame(SETTINGS))
    assert take(len(PREFACE)) == PREFACE
    settings, window = {}, 65535
    while True:
        head = take(9)
        kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = take(int.from_bytes(head[:3], "big"))
        if kind == SETTINGS and not flags & 0x1:
            for i in range(0, len(payload) - 5, 6):
                settings[int.from_bytes(payload[i:i + 2], "big")] = int.from_bytes(payload[i + 2:i + 6], "big")
            conn.sendall(frame(SETTINGS, 0x1))
        elif kind == WINDOW_UPDATE and stream == 0:
            window += int.from_bytes(payload, "big") & 0x7FFFFFFF
        elif kind == HEADERS:
            return {"settings": settings, "connection_window": window}


def test_the_channel_announces_large_frames_and_a_fixed_large_window(tmp_path):
    path = tmp_path / "peer.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    seen: dict = {}

    def serve():
        conn, _ = server.accept()
        with conn:
            seen.update(read_announced(conn))

    peer = threading.Thread(target=serve)
    peer.start()
    try:
        with Client(str(path)) as c:
            try:
                c.server_info(timeout=5)
            except SatchelError:
                pass  # the peer hangs up; only what was announced matters
    finally:
        peer.join(10)
        server.close()
    assert seen["settings"].get(INITIAL_WINDOW_SIZE) == STREAM_WINDOW_BYTES
    assert seen["settings"].get(MAX_FRAME_SIZE) == MAX_FRAME_BYTES
    # grpc-core keeps the connection's window at the streams' windows plus
    # the initial one.
    assert seen["connection_window"] == STREAM_WINDOW_BYTES
