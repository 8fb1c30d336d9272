// Live: the daemon's ServerInfo read and used (clients/conformance/limits.json)
// and the addresses an empty one falls back to (behaviour.json). The
// testenv.sh daemon runs the default config; a second satcheld, started
// here, hashes first only below 2 MiB, so a decision that follows the
// daemon's answer and one that follows a copy of the default differ.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { Server, ServerCredentials } from "@grpc/grpc-js";

import {
  CLIENT_RECEIVE_LIMIT_BYTES,
  defaultAddress,
  SatchelClient,
  SERVER_INFO_DEFAULTS,
  status,
} from "../src/index";
import { type Daemon, type LiveEnv, liveEnv, startDaemon } from "./env";

const conformance = path.resolve(__dirname, "..", "..", "..", "conformance");
const LIMITS = JSON.parse(readFileSync(path.join(conformance, "limits.json"), "utf8"));
const BEHAVIOUR = JSON.parse(readFileSync(path.join(conformance, "behaviour.json"), "utf8"));

const MiB = 1 << 20;
/** The second daemon's upload_monolithic_max, so its hashFirstBelow. */
const SMALL_HASH_FIRST = 2 * MiB;

let live: LiveEnv;
let work: string;
let address: string;
let registry: string;
let client: SatchelClient;
/** The second daemon, on the default socket under `runtime`. */
let small: Daemon;
let runtime: string;

before(async () => {
  live = await liveEnv("info");
  ({ work, address, registry, client } = live);
  runtime = path.join(work, "run");
  await mkdir(path.join(runtime, "satchel"), { recursive: true });
  const socket = path.join(runtime, "satchel", "satcheld.sock");
  small = await startDaemon(work, socket, `upload_monolithic_max = ${SMALL_HASH_FIRST}\n`);
});

after(async () => {
  await small?.stop();
  await live?.close();
});

/** The three numbers limits.json names, from a ServerInfo answer. */
function numbers(info: { maxChunkBytes: number; maxMessageBytes: number; hashFirstBelow: bigint }) {
  return {
    max_chunk_bytes: info.maxChunkBytes,
    max_message_bytes: info.maxMessageBytes,
    hash_first_below: Number(info.hashFirstBelow),
  };
}

describe("ServerInfo", () => {
  test("the client's defaults are limits.json's", () => {
    assert.deepEqual(numbers(SERVER_INFO_DEFAULTS), LIMITS.server_info_defaults);
    assert.equal(CLIENT_RECEIVE_LIMIT_BYTES, LIMITS.client_receive_limit_bytes);
  });

  test("serverInfo() of the default daemon equals the defaults, and is its own answer", async () => {
    const info = await client.serverInfo();
    assert.deepEqual(numbers(info), LIMITS.server_info_defaults);
    assert.match(info.version, /^\d+\.\d+\.\d+/, "no version: the fallback, not the daemon's answer");
  });

  test("the receive limit is at least the daemon's maxMessageBytes", async () => {
    const info = await client.serverInfo();
    assert.ok(
      CLIENT_RECEIVE_LIMIT_BYTES >= info.maxMessageBytes,
      `receive limit ${CLIENT_RECEIVE_LIMIT_BYTES} < the daemon's ${info.maxMessageBytes}`,
    );
  });

  test("serverInfo() is asked once per client and cached", async () => {
    const fresh = new SatchelClient(address);
    try {
      const first = fresh.serverInfo();
      assert.equal(fresh.serverInfo(), first, "a second ServerInfo call while the first is under way");
      assert.equal(await fresh.serverInfo(), await first);
    } finally {
      fresh.close();
    }
  });

  test("the hash-first decision follows the daemon's hashFirstBelow", async () => {
    const other = new SatchelClient(small.socket);
    try {
      assert.equal((await other.serverInfo()).hashFirstBelow, BigInt(SMALL_HASH_FIRST));
      const repo = `${registry}/typescript/hash-first`;
      const under = path.join(work, "under.bin");
      const over = path.join(work, "over.bin");
      await writeFile(under, randomBytes(SMALL_HASH_FIRST - 1));
      await writeFile(over, randomBytes(SMALL_HASH_FIRST + 1));
      for (const tag of ["a", "b"]) await other.push(`${repo}:${tag}`, [under, over], { plainHttp: true });
      // Only the file under 2 MiB was hashed first, so only its blob was
      // found and skipped the second time.
      const again = await other.push(`${repo}:c`, [under, over], { plainHttp: true });
      assert.equal(again.blobsSkipped, 1, "the daemon's 2 MiB threshold was not followed");
      // The default daemon hashes both (256 MiB), so both are skipped.
      const byDefault = await client.push(`${repo}:d`, [under, over], { plainHttp: true });
      assert.equal(byDefault.blobsSkipped, 2, "the default daemon's 256 MiB threshold was not followed");
    } finally {
      other.close();
    }
  });

  test("a daemon without ServerInfo (UNIMPLEMENTED) is taken to have the defaults", async () => {
    // A test-only fake: a gRPC server with no services, as a daemon older
    // than ServerInfo answers that RPC.
    const server = new Server();
    const socket = path.join(work, "old.sock");
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    const old = new SatchelClient(`unix://${socket}`);
    try {
      const check = await new Promise<number>((resolve) =>
        old.raw.serverInfo({}, (err) => resolve(err?.code ?? status.OK)),
      );
      assert.equal(check, status.UNIMPLEMENTED, "the fake answers ServerInfo");
      const info = await old.serverInfo();
      assert.deepEqual(numbers(info), LIMITS.server_info_defaults);
      assert.equal(info.version, "");
    } finally {
      old.close();
      server.forceShutdown();
    }
  });
});

describe("addresses (behaviour.json)", () => {
  const saved = { SATCHEL_ADDR: process.env.SATCHEL_ADDR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
  after(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  /** Which daemon an address reaches: by its hashFirstBelow. */
  async function reaches(addr: string | undefined): Promise<"default" | "small"> {
    const c = new SatchelClient(addr, { timeoutMs: 10_000 });
    try {
      const below = (await c.serverInfo()).hashFirstBelow;
      return below === BigInt(SMALL_HASH_FIRST) ? "small" : "default";
    } finally {
      c.close();
    }
  }

  test("an empty or missing address is $SATCHEL_ADDR when set and not empty", async () => {
    assert.deepEqual(BEHAVIOUR.addresses.empty_uses, ["SATCHEL_ADDR", "default_socket"]);
    process.env.SATCHEL_ADDR = address;
    process.env.XDG_RUNTIME_DIR = runtime;
    assert.equal(await reaches(""), "default");
    assert.equal(await reaches(undefined), "default");
  });

  test("else the default socket ($XDG_RUNTIME_DIR/satchel/satcheld.sock)", async () => {
    process.env.XDG_RUNTIME_DIR = runtime;
    process.env.SATCHEL_ADDR = "";
    assert.equal(await reaches(""), "small");
    delete process.env.SATCHEL_ADDR;
    assert.equal(await reaches(undefined), "small");
  });

  test("without XDG_RUNTIME_DIR the default socket is <tmpdir>/satchel-<uid>/satcheld.sock", () => {
    delete process.env.XDG_RUNTIME_DIR;
    assert.equal(defaultAddress(), `unix://${path.join(tmpdir(), `satchel-${process.geteuid!()}`, "satcheld.sock")}`);
  });

  test("a bare absolute path is a Unix socket", async () => {
    assert.equal(BEHAVIOUR.addresses.bare_path_is_unix_socket, true);
    assert.equal(await reaches(small.socket), "small");
  });
});
