// Live: verify and the verified pull, against an SBOM the real cosign
// signed (../testenv.sh makes it).

import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import * as path from "node:path";
import { after, before, test } from "node:test";

import { type SatchelClient, status } from "../src/index";
import { type LiveEnv, liveEnv } from "./env";
import { rejectsWith } from "./expect";

const SBOM = "application/vnd.cyclonedx+json";

let live: LiveEnv;
let client: SatchelClient;

before(async () => {
  live = await liveEnv("verify");
  client = live.client;
});

after(async () => {
  await live?.close();
});

test("a cosign signature verifies under its key, and under no other", async () => {
  const v = live.vars;
  const ok = await client.verify(v.SATCHEL_SIGNED_SBOM!, { plainHttp: true, keys: [v.SATCHEL_SIGNING_KEY!] });
  assert.equal(ok.reference, v.SATCHEL_SIGNED_SBOM);
  assert.equal(ok.signature?.form, "sigstore-bundle-v0.3");
  assert.match(ok.signature?.keyFingerprint ?? "", /^sha256:[0-9a-f]{64}$/);
  await rejectsWith(
    client.verify(v.SATCHEL_SIGNED_SBOM!, { plainHttp: true, keys: [v.SATCHEL_OTHER_KEY!] }),
    status.PERMISSION_DENIED,
  );
  await rejectsWith(
    client.verify(v.SATCHEL_SIGNED_SUBJECT!, { plainHttp: true, keys: [v.SATCHEL_SIGNING_KEY!] }),
    status.FAILED_PRECONDITION,
  );
});

test("the verified pull names its signature, and writes nothing when none verifies", async () => {
  const v = live.vars;
  const pem = await readFile(v.SATCHEL_SIGNING_KEY!);
  const out = path.join(live.work, "ok");
  const pulled = await client.pullAttachment(v.SATCHEL_SIGNED_SUBJECT!, SBOM, {
    plainHttp: true,
    outputDir: out,
    verifyKeys: [pem],
  });
  assert.equal(pulled.manifest.reference, v.SATCHEL_SIGNED_SBOM);
  assert.equal(pulled.manifest.signature?.form, "sigstore-bundle-v0.3");
  await stat(path.join(out, "sbom.cdx.json"));
  const refused = path.join(live.work, "refused");
  await rejectsWith(
    client.pullAttachment(v.SATCHEL_SIGNED_SUBJECT!, SBOM, {
      plainHttp: true,
      outputDir: refused,
      verifyKeys: [v.SATCHEL_OTHER_KEY!],
    }),
    status.PERMISSION_DENIED,
  );
  await assert.rejects(stat(refused), { code: "ENOENT" });
});
