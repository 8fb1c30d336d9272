// The unpack rules against the shared archive vectors
// (clients/conformance/archives.json), and the tar reader on the formats
// the vectors do not cover (GNU long names, the ustar prefix). No daemon.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";

import {
  SatchelError,
  status,
  TAR_DIGEST_ANNOTATION,
  unpack,
  UNPACK_ANNOTATION,
  UNPACK_LIMITS,
  type UnpackLimits,
} from "../src/index";
import { checkLinkTarget } from "../src/unpack";
import { treeOf } from "./trees";

interface ArchiveCase {
  name: string;
  title: string;
  archive: string;
  tar_digest?: string;
  limits?: { max_bytes?: number; max_entries?: number };
  expect: { code: string; tree?: Record<string, unknown> };
}

const ARCHIVES: { cases: ArchiveCase[] } = JSON.parse(
  readFileSync(path.resolve(__dirname, "..", "..", "..", "conformance", "archives.json"), "utf8"),
);

let work: string;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), "satchel-ts-archives-"));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Unpacks `archive` (gzip bytes) as `title` into a new output directory; returns the code and that directory. */
async function run(
  title: string,
  archive: Buffer,
  annotations: Record<string, string>,
  limits: UnpackLimits = UNPACK_LIMITS,
): Promise<{ code: string; out: string; root?: string; error?: unknown }> {
  const base = await mkdtemp(path.join(work, "case-"));
  const file = path.join(base, "layer.tar.gz");
  await writeFile(file, archive);
  const out = path.join(base, "out");
  await mkdir(out);
  try {
    const root = await unpack(file, out, title, { annotations: { [UNPACK_ANNOTATION]: "true", ...annotations } }, limits);
    return { code: "OK", out, root };
  } catch (err) {
    assert.ok(err instanceof SatchelError, `not a SatchelError: ${err}`);
    return { code: status[err.code], out, error: err };
  }
}

describe("the shared archive vectors", () => {
  for (const c of ARCHIVES.cases) {
    test(c.name, async () => {
      const limits = {
        maxBytes: c.limits?.max_bytes ?? UNPACK_LIMITS.maxBytes,
        maxEntries: c.limits?.max_entries ?? UNPACK_LIMITS.maxEntries,
      };
      const annotations: Record<string, string> = c.tar_digest ? { [TAR_DIGEST_ANNOTATION]: c.tar_digest } : {};
      const result = await run(c.title, Buffer.from(c.archive, "base64"), annotations, limits);
      assert.equal(result.code, c.expect.code, `${result.error}`);
      if (result.code !== "OK") {
        assert.deepEqual(await readdir(result.out), [], "a failed unpack left something in the output directory");
        return;
      }
      assert.equal(result.root, path.join(result.out, ...c.title.split("/")));
      assert.deepEqual(await treeOf(result.root!), c.expect.tree);
      // Only the tree: no temporary name beside it.
      assert.deepEqual(await readdir(path.dirname(result.root!)), [path.basename(result.root!)]);
    });
  }
});

test("files keep their modification time and mode", async () => {
  const c = ARCHIVES.cases[0]!;
  const result = await run(c.title, Buffer.from(c.archive, "base64"), { [TAR_DIGEST_ANNOTATION]: c.tar_digest! });
  assert.equal(result.code, "OK", `${result.error}`);
  const info = await stat(path.join(result.root!, "run.sh"));
  // make_archives.py writes every entry with mtime 1,700,000,000.
  assert.equal(info.mtimeMs, 1_700_000_000_000);
  assert.equal(info.mode & 0o777, 0o755 & ~process.umask());
});

test("an unknown content digest algorithm is not checked", async () => {
  const c = ARCHIVES.cases.find((x) => x.name === "a wrong content digest")!;
  const result = await run(c.title, Buffer.from(c.archive, "base64"), { [TAR_DIGEST_ANNOTATION]: "md5:0123" });
  assert.equal(result.code, "OK", `${result.error}`);
});

test("a sha512 content digest is checked", async () => {
  const c = ARCHIVES.cases.find((x) => x.name === "no content digest to check")!;
  const archive = Buffer.from(c.archive, "base64");
  const right = `sha512:${createHash("sha512").update(gunzipSync(archive)).digest("hex")}`;
  assert.equal((await run(c.title, archive, { [TAR_DIGEST_ANNOTATION]: right })).code, "OK");
  const wrong = `sha512:${createHash("sha512").update("other").digest("hex")}`;
  assert.equal((await run(c.title, archive, { [TAR_DIGEST_ANNOTATION]: wrong })).code, "DATA_LOSS");
});

test("link targets may climb only at their start and within the tree", () => {
  const ok = (rel: string, target: string) => {
    try {
      checkLinkTarget("d", rel, target);
      return true;
    } catch (err) {
      assert.ok(err instanceof SatchelError && err.code === status.INVALID_ARGUMENT);
      return false;
    }
  };
  assert.ok(ok("a", "b"));
  assert.ok(ok("s/a", "../b"));
  assert.ok(ok("s/t/a", "../../b/c"));
  assert.ok(!ok("a", "../b"));
  assert.ok(!ok("s/a", "../../b"));
  assert.ok(!ok("s/a", "b/../c"));
  assert.ok(!ok("s/a", "./b"));
  assert.ok(!ok("a", "/b"));
  assert.ok(!ok("a", ""));
});

/** A test-only tar header block written byte for byte (as make_archives.py's raw()). */
function header(name: string, type: string, size: number, opts: { link?: string; magic?: string; prefix?: string } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "latin1");
  h.write("0000644\0", 100, "latin1");
  h.write("0000000\0", 108, "latin1");
  h.write("0000000\0", 116, "latin1");
  h.write(size.toString(8).padStart(11, "0") + "\0", 124, "latin1");
  h.write((1_700_000_000).toString(8).padStart(11, "0") + "\0", 136, "latin1");
  h.write(type, 156, "latin1");
  h.write(opts.link ?? "", 157, 100, "latin1");
  h.write(opts.magic ?? "ustar\x0000", 257, "latin1");
  h.write(opts.prefix ?? "", 345, 155, "latin1");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return h;
}

function entry(name: string, type: string, data = "", opts: Parameters<typeof header>[3] = {}): Buffer {
  const body = Buffer.from(data);
  return Buffer.concat([header(name, type, body.length, opts), body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

test("GNU long names and long link names (L, K) and the ustar prefix", async () => {
  const long = "d/" + "x".repeat(120);
  const target = "y".repeat(130);
  const gnu = "ustar  \0";
  const tar = Buffer.concat([
    entry("d", "5"),
    entry("././@LongLink", "L", long + "\0", { magic: gnu }),
    entry(long.slice(0, 100), "0", "long\n", { magic: gnu }),
    entry("././@LongLink", "K", target + "\0", { magic: gnu }),
    entry("d/l", "2", "", { magic: gnu }),
    entry("f", "0", "prefixed\n", { prefix: "d/sub" }),
    Buffer.alloc(1024),
  ]);
  const digest = `sha256:${createHash("sha256").update(tar).digest("hex")}`;
  const result = await run("d", gzipSync(tar), { [TAR_DIGEST_ANNOTATION]: digest });
  assert.equal(result.code, "OK", `${result.error}`);
  const tree = await treeOf(result.root!);
  assert.deepEqual(tree["x".repeat(120)], { file: "long\n", exec: false });
  assert.deepEqual(tree["sub/f"], { file: "prefixed\n", exec: false });
  assert.equal(await readlink(path.join(result.root!, "l")), target);
});

test("headers alone count against the byte limit", async () => {
  // 2,000 directories: a megabyte of headers, no file data.
  const dirs = Array.from({ length: 2000 }, (_, i) => entry(`d/${i}`, "5"));
  const tar = Buffer.concat([entry("d", "5"), ...dirs, Buffer.alloc(1024)]);
  const result = await run("d", gzipSync(tar), {}, { maxBytes: 512 << 10, maxEntries: UNPACK_LIMITS.maxEntries });
  assert.equal(result.code, "RESOURCE_EXHAUSTED", `${result.error}`);
  assert.deepEqual(await readdir(result.out), []);
});

test("a file declaring more than the byte limit is refused before its bytes", async () => {
  // The header says 1 GiB; the stream ends right after it.
  const big = header("d/big", "0", 1 << 30);
  const result = await run("d", gzipSync(Buffer.concat([entry("d", "5"), big])), {}, {
    maxBytes: 512 << 10,
    maxEntries: UNPACK_LIMITS.maxEntries,
  });
  assert.equal(result.code, "RESOURCE_EXHAUSTED", `${result.error}`);
});

test("a header with a wrong checksum is a broken archive", async () => {
  const bad = entry("d", "5");
  bad[0] = "e".charCodeAt(0);
  const result = await run("d", gzipSync(Buffer.concat([bad, Buffer.alloc(1024)])), {});
  assert.equal(result.code, "DATA_LOSS");
  assert.deepEqual(await readdir(result.out), []);
});

test("gzip members one after another are one stream", async () => {
  const tar = Buffer.concat([entry("d", "5"), entry("d/x", "0", "x"), Buffer.alloc(1024)]);
  const digest = `sha256:${createHash("sha256").update(tar).digest("hex")}`;
  const archive = Buffer.concat([gzipSync(tar.subarray(0, 700)), gzipSync(tar.subarray(700))]);
  const result = await run("d", archive, { [TAR_DIGEST_ANNOTATION]: digest });
  assert.equal(result.code, "OK", `${result.error}`);
  assert.deepEqual(await treeOf(result.root!), { x: { file: "x", exec: false } });
});

test("an unpack over an existing tree replaces it whole", async () => {
  const c = ARCHIVES.cases.find((x) => x.name === "no content digest to check")!;
  const first = await run(c.title, Buffer.from(c.archive, "base64"), {});
  assert.equal(first.code, "OK");
  await writeFile(path.join(first.root!, "stale"), "from before\n");
  const file = path.join(path.dirname(first.out), "layer.tar.gz");
  await unpack(file, first.out, c.title, { annotations: { [UNPACK_ANNOTATION]: "true" } });
  assert.deepEqual(await treeOf(first.root!), { x: { file: "x", exec: false } });
  assert.deepEqual(await readdir(first.out), ["d"]);
});
