// What the client announces of its receive side when it connects: its
// HTTP/2 SETTINGS and its connection window, read by a bare HTTP/2 peer on
// a Unix socket (no daemon).

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";

import { FLOW_CONTROL_WINDOW_BYTES, SatchelClient } from "../src/index";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const SETTINGS = 0x4;
const WINDOW_UPDATE = 0x8;
const HEADERS = 0x1;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;

interface Announced {
  settings: Map<number, number>;
  connectionWindow: number;
}

/** A frame header: length, type, flags, stream. */
function frame(type: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  return Buffer.concat([head, payload]);
}

/**
 * Reads the client's frames until its first HEADERS (the call), answering
 * its SETTINGS, and resolves with what it announced.
 */
function readAnnounced(socket: Socket): Promise<Announced> {
  const seen: Announced = { settings: new Map(), connectionWindow: 65535 };
  let buf = Buffer.alloc(0);
  let prefaced = false;
  socket.write(frame(SETTINGS, 0));
  return new Promise((resolve, reject) => {
    socket.on("error", reject);
    socket.on("close", () => reject(new Error("the client closed before its first call")));
    socket.on("data", (data: Buffer) => {
      buf = Buffer.concat([buf, data]);
      if (!prefaced) {
        if (buf.length < PREFACE.length) return;
        if (!buf.subarray(0, PREFACE.length).equals(PREFACE)) {
          reject(new Error("no HTTP/2 client preface"));
          socket.destroy();
          return;
        }
        buf = buf.subarray(PREFACE.length);
        prefaced = true;
      }
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3);
        if (buf.length < 9 + length) return;
        const [type, flags] = [buf[3], buf[4]];
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + length);
        buf = buf.subarray(9 + length);
        if (type === SETTINGS && !(flags & 0x1)) {
          for (let i = 0; i + 6 <= payload.length; i += 6) {
            seen.settings.set(payload.readUInt16BE(i), payload.readUInt32BE(i + 2));
          }
          socket.write(frame(SETTINGS, 0x1));
        } else if (type === WINDOW_UPDATE && stream === 0) {
          seen.connectionWindow += payload.readUInt32BE(0) & 0x7fffffff;
        } else if (type === HEADERS) {
          resolve(seen);
          socket.destroy();
          return;
        }
      }
    });
  });
}

test("the client announces a large window per call and per connection", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "satchel-http2-"));
  const sock = path.join(dir, "peer.sock");
  let announced: Promise<Announced> | undefined;
  const server = createServer((socket) => {
    announced = readAnnounced(socket);
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  const client = new SatchelClient(`unix://${sock}`);
  try {
    // Fails when the peer hangs up; only what was announced matters.
    await client.serverInfo({ timeoutMs: 5000 }).catch(() => undefined);
    assert.ok(announced, "the client never connected");
    const seen = await announced;
    assert.equal(seen.settings.get(SETTINGS_INITIAL_WINDOW_SIZE), FLOW_CONTROL_WINDOW_BYTES);
    assert.equal(seen.connectionWindow, FLOW_CONTROL_WINDOW_BYTES);
  } finally {
    client.close();
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
