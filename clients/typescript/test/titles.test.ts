// The title rules against the shared vectors (clients/conformance), and the
// pull's use of them on streams the daemon would never send.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  checkTitle,
  checkTitles,
  COMPONENT_MAX_BYTES,
  SatchelClient,
  SatchelError,
  status,
  TOTAL_MAX_BYTES,
} from "../src/index";
import type { PullResponse } from "../src/gen/satchel/v1/satchel";
import { pullInto } from "../src/pull";
import { caseName, title, VECTORS } from "./vectors";

function isCode(code: status) {
  return (err: unknown) => {
    assert.ok(err instanceof SatchelError, `expected a SatchelError, got ${err}`);
    assert.equal(err.code, code, `expected ${status[code]}, got ${status[err.code]}: ${err.message}`);
    return true;
  };
}

test("the limits are the vectors'", () => {
  assert.equal(COMPONENT_MAX_BYTES, VECTORS.limits.component_max_bytes);
  assert.equal(TOTAL_MAX_BYTES, VECTORS.limits.total_max_bytes);
});

describe("accepted titles", () => {
  for (const v of VECTORS.accept) {
    test(caseName(v), () => {
      checkTitle(title(v));
      checkTitles([title(v)]);
    });
  }
});

describe("refused titles", () => {
  for (const v of VECTORS.refuse) {
    test(caseName(v), () => {
      assert.throws(() => checkTitle(title(v)), isCode(status.INVALID_ARGUMENT));
      assert.throws(() => checkTitles(["fine.txt", title(v)]), isCode(status.INVALID_ARGUMENT));
    });
  }
});

describe("conflicting titles", () => {
  for (const v of VECTORS.conflicts) {
    test(caseName(v), () => {
      for (const t of v.titles) checkTitle(t);
      assert.throws(() => checkTitles(v.titles), isCode(status.INVALID_ARGUMENT));
    });
  }
});

describe("compatible titles", () => {
  for (const v of VECTORS.compatible) {
    test(caseName(v), () => checkTitles(v.titles));
  }
});

// Pull streams as the daemon would send them, fed to the pull loop directly:
// the daemon refuses such artifacts itself, so only this way is the client's
// own check exercised.

const sha256 = (data: Uint8Array) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

function manifest(files: [string, Buffer][]): PullResponse {
  const layers = files.map(([t, data]) => ({
    mediaType: "application/octet-stream",
    digest: sha256(data),
    size: data.length,
    annotations: { "org.opencontainers.image.title": t },
  }));
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, layers }));
  const descriptor = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: sha256(content),
    size: BigInt(content.length),
    annotations: {},
    artifactType: "",
  };
  const reference = `r@${descriptor.digest}`;
  return { payload: { $case: "manifest", manifest: { manifest: descriptor, content, reference, localTicket: Buffer.alloc(0) } } };
}

function file(name: string, data: Buffer): PullResponse[] {
  const layer = {
    mediaType: "application/octet-stream",
    digest: sha256(data),
    size: BigInt(data.length),
    annotations: {},
    artifactType: "",
  };
  return [
    { payload: { $case: "file", file: { name, layer } } },
    { payload: { $case: "chunk", chunk: data } },
    { payload: { $case: "done", done: { digest: layer.digest } } },
  ];
}

async function* stream(events: PullResponse[]): AsyncGenerator<PullResponse> {
  yield* events;
}

/** Everything under root, recursively, as sorted relative paths. */
async function everything(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).sort();
}

describe("pull checks titles before writing", () => {
  let work: string;
  let n = 0;
  const fresh = async () => {
    const out = path.join(work, `out-${++n}`);
    await mkdir(out);
    return out;
  };
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), "satchel-ts-titles-"));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  for (const v of VECTORS.conflicts) {
    test(`a manifest with conflicting titles is refused: ${caseName(v)}`, async () => {
      const out = await fresh();
      const files = v.titles.map((t) => [t, Buffer.from(t)] as [string, Buffer]);
      const events = [manifest(files), ...files.flatMap(([t, d]) => file(t, d))];
      await assert.rejects(pullInto(stream(events), out), isCode(status.INVALID_ARGUMENT));
      assert.deepEqual(await everything(out), []);
    });
  }

  test("a bad title anywhere in the manifest is refused before the first file", async () => {
    const out = await fresh();
    const ok = Buffer.from("ok");
    const events = [manifest([["ok.txt", ok], ["../escape", Buffer.from("no")]]), ...file("ok.txt", ok)];
    await assert.rejects(pullInto(stream(events), out), isCode(status.INVALID_ARGUMENT));
    assert.deepEqual(await everything(out), []);
  });

  test("a file the manifest does not name is refused", async () => {
    const out = await fresh();
    const events = [manifest([["named.txt", Buffer.from("a")]]), ...file("other.txt", Buffer.from("a"))];
    await assert.rejects(pullInto(stream(events), out), isCode(status.INTERNAL));
    assert.deepEqual(await everything(out), []);
  });

  test("a file sent twice is refused the second time", async () => {
    const out = await fresh();
    const a = Buffer.from("a");
    const events = [manifest([["once.txt", a]]), ...file("once.txt", a), ...file("once.txt", a)];
    await assert.rejects(pullInto(stream(events), out), isCode(status.INTERNAL));
    assert.deepEqual(await everything(out), ["once.txt"]);
  });

  test("a directory at a file's name is FAILED_PRECONDITION", async () => {
    const out = await fresh();
    await mkdir(path.join(out, "f.txt"));
    const x = Buffer.from("x");
    const events = [manifest([["f.txt", x]]), ...file("f.txt", x)];
    await assert.rejects(pullInto(stream(events), out), isCode(status.FAILED_PRECONDITION));
    assert.deepEqual(await everything(out), ["f.txt"]);
  });

  test("a file where a directory must be is FAILED_PRECONDITION", async () => {
    const out = await fresh();
    await writeFile(path.join(out, "a"), "mine");
    const x = Buffer.from("x");
    const events = [manifest([["a/b", x]]), ...file("a/b", x)];
    await assert.rejects(pullInto(stream(events), out), isCode(status.FAILED_PRECONDITION));
    assert.deepEqual(await everything(out), ["a"]);
    assert.equal(await readFile(path.join(out, "a"), "utf8"), "mine");
  });

  test("the files the manifest names are written", async () => {
    const out = await fresh();
    const files: [string, Buffer][] = [["d/a", Buffer.from("1")], ["d/e/f", Buffer.from("22")]];
    const result = await pullInto(stream([manifest(files), ...files.flatMap(([t, d]) => file(t, d))]), out);
    const paths = result.files.map((f) => f.path);
    assert.deepEqual(paths, [path.join(out, "d", "a"), path.join(out, "d", "e", "f")]);
    assert.equal(await readFile(path.join(out, "d", "e", "f"), "utf8"), "22");
    assert.deepEqual(await everything(out), ["d", "d/a", "d/e", "d/e/f"]);
  });
});

test("the daemon's own end of a deadline (CANCELLED \"Timeout expired\") is DEADLINE_EXCEEDED", () => {
  const ended = (details: string) =>
    Object.assign(new Error(details), { code: status.CANCELLED, details, metadata: undefined });
  const later = Date.now() + 60_000;
  assert.equal(SatchelError.fromCall(ended("Timeout expired"), later).code, status.DEADLINE_EXCEEDED);
  assert.equal(SatchelError.fromCall(ended("Timeout expired"), undefined).code, status.CANCELLED);
  assert.equal(SatchelError.fromCall(ended("Cancelled on client"), later).code, status.CANCELLED);
  assert.equal(SatchelError.fromCall(ended("Cancelled on client"), Date.now() - 1).code, status.DEADLINE_EXCEEDED);
});

test("push refuses a bad name before calling the daemon", async () => {
  const work = await mkdtemp(path.join(tmpdir(), "satchel-ts-push-"));
  // No daemon listens there: the refusal must come before any call.
  const nobody = new SatchelClient(`unix://${work}/nobody.sock`, { timeoutMs: 5000 });
  try {
    const file = path.join(work, "a.txt");
    await writeFile(file, "a");
    for (const bad of ["../a.txt", "a\u001b[2Jb", "x".repeat(256)]) {
      const push = nobody.push("localhost:5000/r:t", [{ path: file, name: bad }]);
      await assert.rejects(push, isCode(status.INVALID_ARGUMENT));
    }
  } finally {
    nobody.close();
    await rm(work, { recursive: true, force: true });
  }
});
