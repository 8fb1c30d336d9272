// What the client assumes about a daemon that cannot tell it
// (clients/conformance/limits.json), and where it finds the daemon when the
// caller names no address (clients/conformance/behaviour.json).

import { tmpdir } from "node:os";
import * as path from "node:path";

import type { ServerInfoResponse } from "./gen/satchel/v1/satchel";

/**
 * What a daemon with the default config answers to ServerInfo, and what the
 * client assumes from a daemon too old to have it (UNIMPLEMENTED): 1 MiB
 * chunks, 8 MiB messages, files under 256 MiB hashed before a push. The
 * client otherwise uses the daemon's own answer (SatchelClient.serverInfo).
 */
export const SERVER_INFO_DEFAULTS: Readonly<
  Pick<ServerInfoResponse, "maxChunkBytes" | "maxMessageBytes" | "hashFirstBelow">
> = Object.freeze({
  maxChunkBytes: 1 << 20,
  maxMessageBytes: 8 << 20,
  hashFirstBelow: 256n << 20n,
});

/**
 * The largest message the client accepts (8 MiB): at least the daemon's
 * maxMessageBytes, which bounds every message it sends.
 */
export const CLIENT_RECEIVE_LIMIT_BYTES = 8 << 20;

/**
 * The HTTP/2 flow-control window the client announces, per call and for
 * the connection (grpc-js's `grpc-node.flow_control_window` sets both; it
 * has no separate connection window, no BDP probing and no option for the
 * frame size, which stays HTTP/2's 16 KiB). HTTP/2's default 64 KiB window
 * would make the daemon wait for an acknowledgement every 64 KiB of a pull.
 */
export const FLOW_CONTROL_WINDOW_BYTES = 8 << 20;

/**
 * The daemon's default socket, as satcheld computes it:
 * `unix://$XDG_RUNTIME_DIR/satchel/satcheld.sock` when XDG_RUNTIME_DIR is set
 * and not empty, else `unix://<tmpdir>/satchel-<uid>/satcheld.sock`.
 */
export function defaultAddress(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (runtime) return `unix://${path.join(runtime, "satchel", "satcheld.sock")}`;
  // satcheld takes the uid from the owner of /proc/self: the effective one.
  const uid = process.geteuid?.() ?? 0;
  return `unix://${path.join(tmpdir(), `satchel-${uid}`, "satcheld.sock")}`;
}

/**
 * The grpc-js target for an address: empty (or undefined) means
 * $SATCHEL_ADDR when set and not empty, else the default socket; a bare
 * absolute path is a Unix socket; `http://host:port` is `host:port`.
 */
export function grpcTarget(address: string | undefined): string {
  let target = address || process.env.SATCHEL_ADDR || defaultAddress();
  if (target.startsWith("/")) target = `unix://${target}`;
  // grpc-js wants a bare host:port; the daemon's own listen syntax and the
  // other clients also accept http://host:port.
  if (target.startsWith("http://")) target = target.slice("http://".length);
  return target;
}
