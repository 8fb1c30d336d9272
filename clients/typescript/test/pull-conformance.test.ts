// The shared pull-stream transcripts (clients/conformance/pull_streams.json)
// fed to the client's pull state machine, pullInto, through its seam: it
// consumes any async iterable of PullResponse, here a replay of the recorded
// messages that ends with the case's status, in place of the daemon's call.
// No daemon is needed: these answers are ones a real daemon cannot be made
// to give.

import assert from "node:assert/strict";
import { lstat, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { SatchelError, status } from "../src/index";
import { pullInto } from "../src/pull";
import { PULL_STREAMS, type PullStreamCase, pullResponseFromJson } from "./pull-streams";

let work: string;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), "satchel-ts-streams-"));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A gRPC status code by its name ("NOT_FOUND"). */
function code(name: string): status {
  const value = (status as unknown as Record<string, status | undefined>)[name];
  assert.equal(typeof value, "number", `no gRPC status named ${name}`);
  return value!;
}

/**
 * Test-only replay of a recorded Pull answer: its messages parsed from the
 * protobuf JSON mapping, then its end: nothing for OK, else the status as
 * the client's pullStream throws it (a SatchelError with that code).
 */
async function* replay(c: PullStreamCase): AsyncGenerator<ReturnType<typeof pullResponseFromJson>> {
  for (const message of c.messages) yield pullResponseFromJson(message);
  if (c.end.code !== "OK") throw new SatchelError(code(c.end.code), c.end.message ?? "");
}

/**
 * Every regular file under root, by '/'-separated relative path, with its
 * content; anything else that is neither a file nor a directory (a link, a
 * socket) is listed as such, so it fails the comparison. Undefined when
 * root does not exist.
 */
async function regularFiles(root: string): Promise<Record<string, string> | undefined> {
  const rootInfo = await lstat(root).catch(() => undefined);
  if (!rootInfo) return undefined;
  assert.ok(rootInfo.isDirectory(), `${root} is not a directory`);
  const files: Record<string, string> = {};
  for (const rel of await readdir(root, { recursive: true })) {
    const info = await lstat(path.join(root, rel));
    if (info.isDirectory()) continue;
    const key = rel.split(path.sep).join("/");
    files[key] = info.isFile() ? await readFile(path.join(root, rel), "utf8") : "(not a regular file)";
  }
  return files;
}

describe("pull_streams.json through pullInto", () => {
  test("the transcripts are there", () => {
    assert.ok(PULL_STREAMS.streams.length >= 18, `only ${PULL_STREAMS.streams.length} cases`);
  });

  for (const c of PULL_STREAMS.streams) {
    test(`${c.name}: ${c.why}`, async () => {
      const out = path.join(await mkdtemp(path.join(work, "case-")), "out");
      let got = "OK";
      try {
        await pullInto(replay(c), out);
      } catch (err) {
        assert.ok(err instanceof SatchelError, `not a SatchelError: ${err}`);
        got = status[err.code]!;
      }
      assert.equal(got, c.expect.code, "the pull's code");
      const files = await regularFiles(out);
      assert.equal(files !== undefined, c.expect.dir_exists, "whether the output directory exists");
      assert.deepEqual(files ?? {}, c.expect.files, "the regular files left");
    });
  }
});
