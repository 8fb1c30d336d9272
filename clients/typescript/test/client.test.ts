// Live tests: a real docker-registry and satcheld from ../testenv.sh.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, readFileSync } from "node:fs";
import { mkdir, open, readdir, readFile, stat, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { type Progress, SatchelClient, SatchelError, safeJoin, status } from "../src/index";
import { type LiveEnv, liveEnv } from "./env";
import { rejectsWith } from "./expect";

const BEHAVIOUR = JSON.parse(
  readFileSync(path.resolve(__dirname, "..", "..", "..", "conformance", "behaviour.json"), "utf8"),
);

const SBOM = "application/vnd.example.sbom.v1";
const MiB = 1 << 20;

let live: LiveEnv;
let work: string;
let registry: string;
let registryBlobs: string;
let client: SatchelClient;
let repo: string;

// Shared between the tests, which run in order.
let subjectDigest = "";
let bigPath = "";
let bigDigest = "";
let attachedDigest = "";

before(async () => {
  live = await liveEnv("work");
  ({ work, registry, client } = live);
  assert.ok(live.address.startsWith("unix://"), `testenv printed ${JSON.stringify(live.vars)}`);
  registryBlobs = live.vars.SATCHEL_REGISTRY_BLOBS!;
  repo = `${registry}/demo/app`;
});

after(async () => {
  await live?.close();
});

/** Writes `size` random bytes in 1 MiB pieces; returns the sha256 digest. */
async function randomFile(file: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const out = createWriteStream(file);
  for (let left = size; left > 0; left -= MiB) {
    const piece = randomBytes(Math.min(MiB, left));
    hash.update(piece);
    if (!out.write(piece)) await once(out, "drain");
  }
  out.end();
  await once(out, "close");
  return `sha256:${hash.digest("hex")}`;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const piece of createReadStream(file)) hash.update(piece as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

test("push a small subject artifact tagged v1", async () => {
  const file = path.join(work, "readme.txt");
  await writeFile(file, "hello from the TypeScript client\n");
  const result = await client.push(`${repo}:v1`, [file], {
    plainHttp: true,
    annotations: { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
  });
  assert.match(result.manifest?.digest ?? "", /^sha256:[0-9a-f]{64}$/);
  assert.equal(result.reference, `${repo}@${result.manifest!.digest}`);
  assert.equal(result.layers.length, 1);
  assert.equal(result.layers[0]!.annotations["org.opencontainers.image.title"], "readme.txt");
  subjectDigest = result.manifest!.digest;
});

test("resolve the tag to the pushed digest", async () => {
  const res = await client.resolve(`${repo}:v1`, { plainHttp: true });
  assert.equal(res.manifest?.digest, subjectDigest);
  assert.equal(res.reference, `${repo}@${subjectDigest}`);
});

test("attach a 50 MiB file with an annotation", async () => {
  bigPath = path.join(work, "sbom.bin");
  bigDigest = await randomFile(bigPath, 50 * MiB);
  const progress: Progress[] = [];
  const result = await client.attach(`${repo}:v1`, [bigPath], {
    plainHttp: true,
    artifactType: SBOM,
    annotations: { "com.example.kind": "sbom" },
    onProgress: (p) => progress.push(p),
  });
  assert.equal(result.subject?.digest, subjectDigest);
  assert.equal(result.layers[0]?.digest, bigDigest);
  assert.equal(result.layers[0]?.size, BigInt(50 * MiB));
  assert.ok(progress.length > 0, "no progress events");
  assert.equal(progress.at(-1)?.done, BigInt(50 * MiB));
  attachedDigest = result.manifest!.digest;
});

test("discover lists the attachment with its type and annotation", async () => {
  const res = await client.discover(`${repo}:v1`, { plainHttp: true });
  assert.equal(res.subject?.digest, subjectDigest);
  const found = res.referrers.map((r) => r.manifest!).find((d) => d.digest === attachedDigest);
  assert.ok(found, `attachment ${attachedDigest} not among ${JSON.stringify(res.referrers.map((r) => r.manifest?.digest))}`);
  assert.equal(found.artifactType, SBOM);
  assert.equal(found.annotations["com.example.kind"], "sbom");

  const filtered = await client.discover(`${repo}:v1`, { plainHttp: true, artifactType: "application/x-none" });
  assert.equal(filtered.referrers.length, 0);
});

test("pull the attachment by digest and compare sha256", async () => {
  const out = path.join(work, "pulled");
  const progress: Progress[] = [];
  const result = await client.pull(`${repo}@${attachedDigest}`, {
    plainHttp: true,
    outputDir: out,
    onProgress: (p) => progress.push(p),
  });
  assert.equal(result.manifest.manifest?.digest, attachedDigest);
  assert.deepEqual(
    result.files.map((f) => f.name),
    ["sbom.bin"],
  );
  assert.equal(result.files[0]!.path, path.join(out, "sbom.bin"));
  assert.equal(await sha256File(path.join(out, "sbom.bin")), bigDigest);
  // Only the final file: no temporary file left behind.
  assert.deepEqual(await readdir(out), ["sbom.bin"]);
});

test("pull the newest attachment of a type from the subject", async () => {
  const out = path.join(work, "by-subject");
  const result = await client.pull(`${repo}:v1`, { plainHttp: true, outputDir: out, artifactType: SBOM });
  assert.equal(result.manifest.manifest?.digest, attachedDigest);
  assert.equal(await sha256File(path.join(out, "sbom.bin")), bigDigest);
});

test("pullAttachment needs an artifact type and makes no directory without one", async () => {
  const out = path.join(work, "no-type");
  await rejectsWith(client.pullAttachment(`${repo}:v1`, "", { plainHttp: true, outputDir: out }), status.INVALID_ARGUMENT);
  await assert.rejects(stat(out), { code: "ENOENT" });
});

test("pullStream yields the manifest, then header, chunks and done", async () => {
  const kinds: string[] = [];
  let bytes = "";
  for await (const event of client.pullStream(`${repo}:v1`, { plainHttp: true })) {
    const payload = event.payload!;
    if (kinds.at(-1) !== payload.$case) kinds.push(payload.$case);
    if (payload.$case === "chunk") bytes += payload.chunk.toString("utf8");
  }
  assert.deepEqual(
    kinds.filter((k) => k !== "progress"),
    ["manifest", "file", "chunk", "done"],
  );
  assert.equal(bytes, "hello from the TypeScript client\n");
});

test("resolve of a missing tag fails with NOT_FOUND", async () => {
  await rejectsWith(client.resolve(`${repo}:no-such-tag`, { plainHttp: true }), status.NOT_FOUND);
});

test("a malformed reference fails with INVALID_ARGUMENT", async () => {
  await rejectsWith(client.resolve("UPPER/Case:!!bad", { plainHttp: true }), status.INVALID_ARGUMENT);
});

test("pull of a missing artifact fails with NOT_FOUND and makes no output directory", async () => {
  const out = path.join(work, "missing");
  await rejectsWith(client.pull(`${repo}:no-such-tag`, { plainHttp: true, outputDir: out }), status.NOT_FOUND);
  await assert.rejects(stat(out), { code: "ENOENT" }, "the failed pull made its output directory");
});

test("push and attach of a missing file are INVALID_ARGUMENT naming the path (behaviour.json)", async () => {
  const missing = path.join(work, "nope");
  const pushed = await rejectsWith(client.push(`${repo}:v2`, [missing], { plainHttp: true }), status.INVALID_ARGUMENT);
  const attached = await rejectsWith(
    client.attach(`${repo}:v1`, [missing], { plainHttp: true, artifactType: SBOM }),
    status.INVALID_ARGUMENT,
  );
  for (const err of [pushed, attached]) {
    assert.ok(err.details.includes(missing), `the message does not name the path: ${err.details}`);
    // Node's own not-found error stays reachable.
    assert.equal((err.cause as NodeJS.ErrnoException | undefined)?.code, "ENOENT");
  }
  assert.equal(BEHAVIOUR.errors.missing_local_file.code, status[status.INVALID_ARGUMENT]);
  // Nor is a FIFO (a directory is packed: test/directories.test.ts).
  const fifo = path.join(work, "fifo");
  execFileSync("mkfifo", [fifo]);
  const refused = await rejectsWith(client.push(`${repo}:v2`, [fifo], { plainHttp: true }), status.INVALID_ARGUMENT);
  assert.ok(refused.details.includes(fifo), refused.details);
});

test("attach without an artifact type fails with INVALID_ARGUMENT", async () => {
  const file = path.join(work, "readme.txt");
  const options = { plainHttp: true } as unknown as Parameters<SatchelClient["attach"]>[2];
  await rejectsWith(client.attach(`${repo}:v1`, [file], options), status.INVALID_ARGUMENT);
});

test("a corrupted blob fails mid-file and leaves nothing", async () => {
  const size = 24 * MiB;
  const file = path.join(work, "corrupt.bin");
  await randomFile(file, size);
  const pushed = await client.push(`${registry}/typescript/corrupt:v1`, [file], { plainHttp: true });
  const hex = pushed.layers[0]!.digest.replace(/^sha256:/, "");
  // Flip one byte near the end of the registry's copy of the layer.
  const blob = await open(path.join(registryBlobs, "sha256", hex.slice(0, 2), hex, "data"), "r+");
  try {
    const byte = Buffer.alloc(1);
    await blob.read(byte, 0, 1, size - 10);
    byte[0] ^= 0xff;
    await blob.write(byte, 0, 1, size - 10);
  } finally {
    await blob.close();
  }
  const out = path.join(work, "corrupt-out");
  await mkdir(out);
  const done: bigint[] = [];
  await rejectsWith(
    client.pull(`${registry}/typescript/corrupt:v1`, {
      plainHttp: true,
      outputDir: out,
      onProgress: (p) => done.push(p.done),
    }),
    status.DATA_LOSS,
  );
  // The failure came after file bytes had been written, not before.
  assert.ok(done.some((d) => d > 0n), `progress: ${done}`);
  // Neither the final file nor the temporary one is left.
  assert.deepEqual(await readdir(out), []);
});

test("a throwing progress callback fails the push and cancels the upload", async () => {
  const file = path.join(work, "cancelled.bin");
  await randomFile(file, 20 * MiB);
  const enough = new Error("enough");
  const err = await rejectsWith(
    client.push(`${repo}:cancelled`, [file], {
      plainHttp: true,
      onProgress: () => {
        throw enough;
      },
    }),
    status.UNKNOWN,
  );
  assert.equal(err.cause, enough);
  // Cancelled, not finished behind the caller's back: 20 MiB would go up in
  // well under the 3 s this watches for the tag.
  for (let i = 0; i < 30; i++) {
    await rejectsWith(client.resolve(`${repo}:cancelled`, { plainHttp: true }), status.NOT_FOUND);
    await sleep(100);
  }
});

test("a file the repository already has is hashed first and its blob skipped", async () => {
  // The testenv daemon's default: a 1 MiB file is hashed first.
  assert.equal((await client.serverInfo()).hashFirstBelow, 256n * BigInt(MiB));
  const file = path.join(work, "skip.bin");
  const digest = await randomFile(file, MiB);
  const skipRepo = `${registry}/typescript/skip`;

  const first = await client.push(`${skipRepo}:a`, [file], { plainHttp: true });
  assert.equal(first.layers[0]?.digest, digest);
  assert.equal(first.blobsSkipped, 0, "the new repository had the blob already");

  // Same repository, another tag: the layer blob is there, so not uploaded.
  const second = await client.push(`${skipRepo}:b`, [file], { plainHttp: true });
  assert.equal(second.layers[0]?.digest, digest);
  assert.equal(second.blobsSkipped, 1, "the blob was uploaded again: was the file not hashed first?");

  // hashFirst: false sends no digest, so the daemon cannot skip it.
  const third = await client.push(`${skipRepo}:c`, [file], { plainHttp: true, hashFirst: false });
  assert.equal(third.layers[0]?.digest, digest);
  assert.equal(third.blobsSkipped, 0);
});

test("attach hashes first too (hashFirst: true) and skips a blob the repository has", async () => {
  // The 50 MiB file attached earlier: hashed first on request, then skipped.
  const result = await client.attach(`${repo}:v1`, [bigPath], {
    plainHttp: true,
    artifactType: SBOM,
    hashFirst: true,
  });
  assert.equal(result.layers[0]?.digest, bigDigest);
  assert.equal(result.blobsSkipped, 1);
});

test("an http:// address is accepted as host:port", () => {
  const tcp = new SatchelClient("http://127.0.0.1:50051");
  try {
    assert.equal(tcp.raw.getChannel().getTarget(), "dns:127.0.0.1:50051");
  } finally {
    tcp.close();
  }
});

test("safeJoin refuses names that escape the output directory", () => {
  for (const name of ["../evil", "/etc/passwd", "a\\b", "a\0b"]) {
    assert.throws(
      () => safeJoin("/tmp/out", name),
      (err: unknown) => err instanceof SatchelError && err.code === status.INVALID_ARGUMENT,
      name,
    );
  }
  assert.equal(safeJoin("/tmp/out", "docs/a.txt"), "/tmp/out/docs/a.txt");
});

test("the subject's content is unchanged by the attachment", async () => {
  const out = path.join(work, "subject");
  await client.pull(`${repo}:v1`, { plainHttp: true, outputDir: out });
  assert.equal(await readFile(path.join(out, "readme.txt"), "utf8"), "hello from the TypeScript client\n");
});
