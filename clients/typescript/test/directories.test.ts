// Live: directories pushed as the ORAS CLI pushes them (a tar+gzip layer
// marked io.deis.oras.content.unpack) and pulled back into the same tree,
// through a real docker-registry and satcheld from ../testenv.sh.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, lstat, mkdir, mkdtemp, readdir, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { gunzipSync } from "node:zlib";

import {
  DIRECTORY_MEDIA_TYPE,
  SatchelClient,
  status,
  TAR_DIGEST_ANNOTATION,
  UNPACK_ANNOTATION,
} from "../src/index";
import { type LiveEnv, liveEnv } from "./env";
import { rejectsWith } from "./expect";
import { treeOf } from "./trees";

let live: LiveEnv;
let work: string;
let registry: string;
let client: SatchelClient;

before(async () => {
  live = await liveEnv("dirs");
  ({ work, registry, client } = live);
});

after(async () => {
  await live?.close();
});

/** Runs `body` with os.tmpdir() (where pack writes its archive) pointing at a new, empty directory; returns it. */
async function withTmpdir<T>(body: () => Promise<T>): Promise<{ dir: string; result?: T; error?: unknown }> {
  const dir = await mkdtemp(path.join(work, "tmpdir-"));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return { dir, result: await body() };
  } catch (error) {
    return { dir, error };
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
}

/** The modification times (in whole seconds) of the regular files under root. */
async function mtimes(root: string): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (const rel of await readdir(root, { recursive: true })) {
    const info = await lstat(path.join(root, rel));
    if (info.isFile()) seen[rel] = Math.floor(info.mtimeMs / 1000);
  }
  return seen;
}

/** A directory with a nested directory, an executable, a long name and links. */
async function sourceTree(): Promise<string> {
  const src = path.join(await mkdtemp(path.join(work, "src-")), "tree");
  await mkdir(path.join(src, "sub", "deeper"), { recursive: true });
  await writeFile(path.join(src, "run.sh"), "#!/bin/sh\necho hi\n");
  await chmod(path.join(src, "run.sh"), 0o755);
  await writeFile(path.join(src, "sub", "b.txt"), "bee\n");
  await writeFile(path.join(src, "sub", "deeper", "c.txt"), "c".repeat(300_000));
  await writeFile(path.join(src, "n".repeat(150)), "long name\n");
  await symlink("run.sh", path.join(src, "top"));
  await symlink("../run.sh", path.join(src, "sub", "up"));
  await utimes(path.join(src, "run.sh"), 1_600_000_000, 1_600_000_000);
  await utimes(path.join(src, "sub", "b.txt"), 1_650_000_000, 1_650_000_000);
  return src;
}

let pushedRef = "";
let src = "";

test("a directory is pushed as one tar+gzip layer marked for unpacking, its archive removed after", async () => {
  src = await sourceTree();
  const pushed = await withTmpdir(() => client.push(`${registry}/typescript/dirs:v1`, [src], { plainHttp: true }));
  assert.equal(pushed.error, undefined, `${pushed.error}`);
  const result = pushed.result!;
  assert.deepEqual(await readdir(pushed.dir), [], "the packed archive was left behind");
  assert.equal(result.layers.length, 1);
  const layer = result.layers[0]!;
  assert.equal(layer.mediaType, DIRECTORY_MEDIA_TYPE);
  assert.equal(layer.annotations["org.opencontainers.image.title"], "tree");
  assert.equal(layer.annotations[UNPACK_ANNOTATION], "true");
  pushedRef = result.reference;

  // The layer's bytes: a gzip of the tar the content digest names, whose
  // entries are under the title, sorted, owned by nobody.
  const pieces: Buffer[] = [];
  for await (const event of client.pullStream(pushedRef, { plainHttp: true })) {
    if (event.payload?.$case === "chunk") pieces.push(Buffer.from(event.payload.chunk));
  }
  const tar = gunzipSync(Buffer.concat(pieces));
  assert.equal(layer.annotations[TAR_DIGEST_ANNOTATION], `sha256:${createHash("sha256").update(tar).digest("hex")}`);
  assert.deepEqual(tarListing(tar, ["-t"]), [
    "tree",
    `tree/${"n".repeat(150)}`,
    "tree/run.sh",
    "tree/sub",
    "tree/sub/b.txt",
    "tree/sub/deeper",
    "tree/sub/deeper/c.txt",
    "tree/sub/up",
    "tree/top",
  ]);
  // Owned by uid and gid 0 with no names: GNU tar's verbose listing shows 0/0.
  for (const line of tarListing(tar, ["-tv", "--numeric-owner"])) assert.match(line, /^\S+ 0\/0 /, line);
});

/** GNU tar's listing of a tar (names without a trailing slash). */
function tarListing(tar: Buffer, args: string[]): string[] {
  const out = execFileSync("tar", [...args, "-f", "-"], { input: tar, encoding: "utf8" });
  return out.trim().split("\n").map((line) => line.replace(/\/$/, ""));
}

test("the pulled directory is the pushed tree, modes and times kept", async () => {
  const out = path.join(work, "pulled");
  const result = await client.pull(pushedRef, { plainHttp: true, outputDir: out });
  assert.deepEqual(result.files.map((f) => [f.name, f.path]), [["tree", path.join(out, "tree")]]);
  assert.deepEqual(await treeOf(path.join(out, "tree")), await treeOf(src));
  assert.deepEqual(await mtimes(path.join(out, "tree")), await mtimes(src));
  // Neither the archive nor a temporary tree is left beside it.
  assert.deepEqual(await readdir(out), ["tree"]);
});

test("a second pull over an existing tree replaces it whole", async () => {
  const out = path.join(work, "pulled");
  const tree = path.join(out, "tree");
  await writeFile(path.join(tree, "stale.txt"), "from before\n");
  await writeFile(path.join(tree, "run.sh"), "changed\n");
  await mkdir(path.join(tree, "sub", "extra"));
  await client.pull(pushedRef, { plainHttp: true, outputDir: out });
  assert.deepEqual(await treeOf(tree), await treeOf(src));
  assert.deepEqual(await readdir(out), ["tree"]);
});

test("a socket inside a directory is refused, and no archive is left", async () => {
  const dir = path.join(await mkdtemp(path.join(work, "sock-")), "with-socket");
  await mkdir(dir);
  await writeFile(path.join(dir, "a.txt"), "a");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path.join(dir, "s.sock"), resolve));
  try {
    const pushed = await withTmpdir(() => client.push(`${registry}/typescript/dirs:sock`, [dir], { plainHttp: true }));
    assert.ok(pushed.error, "the push succeeded");
    await rejectsWith(Promise.reject(pushed.error), status.INVALID_ARGUMENT);
    assert.match(String(pushed.error), /s\.sock.*a socket/);
    assert.deepEqual(await readdir(pushed.dir), []);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("a directory layer whose content digest is wrong is DATA_LOSS and leaves nothing", async () => {
  const vectors = JSON.parse(
    readFileSync(path.resolve(__dirname, "..", "..", "..", "conformance", "archives.json"), "utf8"),
  ) as { cases: { name: string; archive: string; tar_digest: string }[] };
  const c = vectors.cases.find((x) => x.name === "a wrong content digest")!;
  const file = path.join(await mkdtemp(path.join(work, "wrong-")), "layer.tar.gz");
  await writeFile(file, Buffer.from(c.archive, "base64"));
  // Pushed as a plain file carrying the directory annotations by hand.
  const annotations = { [UNPACK_ANNOTATION]: "true", [TAR_DIGEST_ANNOTATION]: c.tar_digest };
  const pushed = await client.push(`${registry}/typescript/dirs:wrong`, [{ path: file, name: "d", annotations }], {
    plainHttp: true,
  });
  const out = path.join(work, "wrong-out");
  await rejectsWith(client.pull(pushed.reference, { plainHttp: true, outputDir: out }), status.DATA_LOSS);
  assert.deepEqual(await readdir(out), []);
  // The same bytes with the right content digest unpack.
  const right = `sha256:${createHash("sha256").update(gunzipSync(Buffer.from(c.archive, "base64"))).digest("hex")}`;
  const fixed = await client.push(
    `${registry}/typescript/dirs:right`,
    [{ path: file, name: "d", annotations: { ...annotations, [TAR_DIGEST_ANNOTATION]: right } }],
    { plainHttp: true },
  );
  await client.pull(fixed.reference, { plainHttp: true, outputDir: out });
  assert.deepEqual(await treeOf(path.join(out, "d")), { x: { file: "x", exec: false } });
  assert.ok((await stat(path.join(out, "d"))).isDirectory());
  assert.deepEqual(await readdir(out), ["d"]);
});
