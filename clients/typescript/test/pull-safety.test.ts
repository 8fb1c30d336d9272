// Live: pulls into directories with planted links (the shared
// clients/conformance vectors), and deadlines. A real docker-registry and
// satcheld from ../testenv.sh.

import assert from "node:assert/strict";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { SatchelClient, status } from "../src/index";
import { type LiveEnv, liveEnv } from "./env";
import { rejectsWith } from "./expect";
import { VECTORS } from "./vectors";

let live: LiveEnv;
let work: string;
let registry: string;
let address: string;
let client: SatchelClient;

before(async () => {
  live = await liveEnv("safety");
  ({ work, registry, address, client } = live);
});

after(async () => {
  await live?.close();
});

/** Everything under root, links not followed: kind and content by relative path. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const seen: Record<string, string> = {};
  for (const rel of await readdir(root, { recursive: true })) {
    const p = path.join(root, rel);
    const info = await lstat(p);
    if (info.isSymbolicLink()) seen[rel] = `link ${await readlink(p)}`;
    else if (info.isDirectory()) seen[rel] = "dir";
    else seen[rel] = `file ${(await readFile(p)).toString("hex")}`;
  }
  return seen;
}

/** Partial files anywhere under root (readdir does not follow links). */
async function partials(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).filter((rel) => rel.endsWith(".partial"));
}

describe("planted links", () => {
  VECTORS.planted_links.forEach((v, index) => {
    test(v.name, async () => {
      const base = await mkdtemp(path.join(work, "planted-"));
      const outside = path.join(base, "outside");
      const out = path.join(base, "out");
      await mkdir(outside);
      await writeFile(path.join(outside, "victim"), "the victim's own bytes\n");
      await mkdir(out);
      for (const d of v.dirs ?? []) await mkdir(path.join(out, d), { recursive: true });
      for (const link of v.links) await symlink(link.to.replace("OUTSIDE", outside), path.join(out, link.path));
      const before = await snapshot(outside);

      const layer = path.join(base, "layer.bin");
      const data = `pulled bytes for ${v.name}\n`;
      await writeFile(layer, data);
      const pushed = await client.push(`${registry}/typescript/planted:${index}`, [{ path: layer, name: v.title }], {
        plainHttp: true,
      });
      assert.equal(pushed.layers[0]?.annotations["org.opencontainers.image.title"], v.title);

      if (v.expect === "replaced") {
        const result = await client.pull(pushed.reference, { plainHttp: true, outputDir: out });
        const final = path.join(out, v.title);
        assert.deepEqual(result.files.map((f) => f.path), [final]);
        const info = await lstat(final);
        assert.ok(info.isFile() && !info.isSymbolicLink(), "the final name is not a regular file");
        assert.equal(await readFile(final, "utf8"), data);
      } else {
        assert.equal(v.expect, "refused");
        const pull = client.pull(pushed.reference, { plainHttp: true, outputDir: out });
        await rejectsWith(pull, status.FAILED_PRECONDITION);
      }
      assert.deepEqual(await snapshot(outside), before);
      assert.deepEqual(await partials(out), []);
      assert.deepEqual(await partials(outside), []);
    });
  });
});

/**
 * A test-only hostile registry: a loopback TCP listener that accepts
 * connections and never answers, so a call can only end by its deadline.
 */
async function silentRegistry(): Promise<{ addr: string; close: () => Promise<void> }> {
  const held: Socket[] = [];
  const server: Server = createServer((socket) => {
    held.push(socket);
  });
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    addr: `127.0.0.1:${port}`,
    close: async () => {
      for (const s of held) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("deadlines", () => {
  test("a pull past its timeoutMs is DEADLINE_EXCEEDED and writes nothing", async () => {
    const silent = await silentRegistry();
    try {
      const out = path.join(work, "deadline-pull");
      await rejectsWith(
        client.pull(`${silent.addr}/repo:tag`, { plainHttp: true, outputDir: out, timeoutMs: 1000 }),
        status.DEADLINE_EXCEEDED,
      );
      await assert.rejects(lstat(out), { code: "ENOENT" }, "the failed pull made its output directory");
    } finally {
      await silent.close();
    }
  });

  test("a deadline as a Date works the same", async () => {
    const silent = await silentRegistry();
    try {
      const deadline = new Date(Date.now() + 1000);
      await rejectsWith(client.resolve(`${silent.addr}/repo:tag`, { plainHttp: true, deadline }), status.DEADLINE_EXCEEDED);
    } finally {
      await silent.close();
    }
  });

  test("the client's default timeoutMs applies to every call", async () => {
    const silent = await silentRegistry();
    const timed = new SatchelClient(address, { timeoutMs: 1000 });
    try {
      const ref = `${silent.addr}/repo:tag`;
      await rejectsWith(timed.resolve(ref, { plainHttp: true }), status.DEADLINE_EXCEEDED);
      await rejectsWith(timed.discover(ref, { plainHttp: true }), status.DEADLINE_EXCEEDED);
      const file = path.join(work, "deadline.txt");
      await writeFile(file, "a");
      await rejectsWith(timed.push(ref, [file], { plainHttp: true }), status.DEADLINE_EXCEEDED);
      // A call's own timeout overrides the default.
      const out = path.join(work, "deadline-default");
      const pull = timed.pull(ref, { plainHttp: true, outputDir: out, timeoutMs: 500 });
      await rejectsWith(pull, status.DEADLINE_EXCEEDED);
      await assert.rejects(lstat(out), { code: "ENOENT" }, "the failed pull made its output directory");
    } finally {
      timed.close();
      await silent.close();
    }
  });
});
