// Live: the `ts` code blocks of README.md, extracted, compiled with tsc as a
// user's project would compile them (importing "@satchel-oci/client", which
// resolves to this package's built dist/), and run in order in one working
// directory against ../testenv.sh's daemon and registry. So the README's
// examples cannot drift from the client.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import { testenvDown, testenvUp } from "./env";

const run = promisify(execFile);
// Compiled to dist/test/, so the package root is two levels up.
const pkg = path.resolve(__dirname, "..", "..");
const README = path.join(pkg, "README.md");

/** The bodies of README.md's ```ts blocks, in order. */
export function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

let envDir: string;
let project: string;
let env: Record<string, string>;

before(async () => {
  envDir = await mkdtemp(path.join(tmpdir(), "satchel-ts-env-"));
  project = await mkdtemp(path.join(tmpdir(), "satchel-ts-readme-"));
  env = await testenvUp(envDir);
});

after(async () => {
  if (envDir) await testenvDown(envDir);
  await rm(envDir, { recursive: true, force: true });
  await rm(project, { recursive: true, force: true });
});

test("README.md's TypeScript examples compile and run", async () => {
  const blocks = tsBlocks(readFileSync(README, "utf8"));
  // The usage example and the one-step pullAttachment.
  assert.equal(blocks.length, 2, "README.md's ts blocks changed: update this test's checks");
  assert.ok(blocks[1]!.includes("pullAttachment("), "the second example is not the one-step pull");

  // A project of its own, with the package where npm would install it.
  await mkdir(path.join(project, "node_modules", "@satchel-oci"), { recursive: true });
  await symlink(pkg, path.join(project, "node_modules", "@satchel-oci", "client"));
  await writeFile(path.join(project, "package.json"), JSON.stringify({ private: true, type: "commonjs" }));
  const compilerOptions = {
    target: "ES2022",
    module: "node16",
    moduleResolution: "node16",
    strict: true,
    outDir: "dist",
    types: ["node"],
    typeRoots: [path.join(pkg, "node_modules", "@types")],
  };
  const files = blocks.map((_, i) => `example-${i + 1}.ts`);
  await writeFile(path.join(project, "tsconfig.json"), JSON.stringify({ compilerOptions, files }));
  for (const [i, block] of blocks.entries()) await writeFile(path.join(project, files[i]!), block);

  const tsc = path.join(pkg, "node_modules", "typescript", "bin", "tsc");
  await run(process.execPath, [tsc, "-p", project]).catch((err) => {
    assert.fail(`the README's examples do not compile:\n${err.stdout}${err.stderr}`);
  });

  const runEnv = { ...process.env, SATCHEL_ADDR: env.SATCHEL_ADDR!, SATCHEL_REGISTRY: env.SATCHEL_REGISTRY! };
  const outputs: string[] = [];
  for (const file of files) {
    const js = path.join(project, "dist", file.replace(/\.ts$/, ".js"));
    const { stdout } = await run(process.execPath, [js], { cwd: project, env: runEnv }).catch((err) => {
      assert.fail(`${file} failed (exit ${err.code}):\n${err.stdout}${err.stderr}`);
    });
    outputs.push(stdout);
  }

  // What the examples claim to do, done.
  assert.match(outputs[0]!, /^no such tag$/m, "the usage example did not reach its NOT_FOUND");
  assert.equal(await readFile(path.join(project, "out", "sbom.json"), "utf8"), '{"bomFormat":"CycloneDX"}\n');
  assert.ok((await lstat(path.join(project, "sbom", "sbom.json"))).isFile(), "pullAttachment wrote no sbom/sbom.json");
  assert.match(outputs[1]!, /@sha256:[0-9a-f]{64}/, "pullAttachment printed no manifest reference");
});
