// Live: a watch of a subject's referrers sees the current (empty) set, then
// a referrer attached through the same client (testenv's daemon polls
// twice a second).

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import * as path from "node:path";
import { after, before, test } from "node:test";

import type { SatchelClient } from "../src/index";
import { type LiveEnv, liveEnv } from "./env";

const SBOM = "application/vnd.example.sbom.v1";

let live: LiveEnv;
let client: SatchelClient;

before(async () => {
  live = await liveEnv("watch");
  client = live.client;
});

after(async () => {
  await live?.close();
});

test("a watch sees the current set, then an attach", async () => {
  const file = path.join(live.work, "app.txt");
  await writeFile(file, "watched from TypeScript\n");
  const subject = `${live.registry}/ts/watched:v1`;
  await client.push(subject, [file], { plainHttp: true, artifactType: "application/vnd.example.app" });
  const events = client.watchReferrers(subject, {
    plainHttp: true,
    artifactType: SBOM,
    deadline: Date.now() + 30_000,
  });
  const first = (await events.next()).value?.event;
  assert.equal(first?.$case, "current");
  assert.equal(first.$case === "current" && first.current.referrers.length, 0);
  const attached = await client.attach(subject, [file], { plainHttp: true, artifactType: SBOM });
  const next = (await events.next()).value?.event;
  assert.equal(next?.$case, "appeared");
  assert.equal(next.$case === "appeared" && next.appeared.digest, attached.manifest?.digest);
  await events.return(undefined);
});
