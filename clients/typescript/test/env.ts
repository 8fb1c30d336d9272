// The live environment for the tests: ../testenv.sh's docker-registry and
// satcheld, and a second satcheld with a config of the test's choosing,
// found the way testenv.sh finds it.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

import { SatchelClient } from "../src/index";

const run = promisify(execFile);
// Compiled to dist/test/, so the workspace root is four levels up.
const root = path.resolve(__dirname, "..", "..", "..", "..");
export const TESTENV = path.join(root, "clients", "testenv.sh");

/** `testenv.sh up dir`: its KEY=VALUE lines. */
export async function testenvUp(dir: string): Promise<Record<string, string>> {
  const { stdout } = await run(TESTENV, ["up", dir]);
  return Object.fromEntries(
    stdout
      .trim()
      .split("\n")
      .map((line) => {
        const at = line.indexOf("=");
        return [line.slice(0, at), line.slice(at + 1)];
      }),
  );
}

export async function testenvDown(dir: string): Promise<void> {
  await run(TESTENV, ["down", dir]);
}

/** testenv.sh's registry and daemon for one test file, a work directory, a client of the daemon. */
export interface LiveEnv {
  /** testenv.sh's KEY=VALUE lines. */
  vars: Record<string, string>;
  address: string;
  registry: string;
  work: string;
  client: SatchelClient;
  /** Closes the client, stops testenv.sh's processes, removes both directories. */
  close: () => Promise<void>;
}

/** Brings testenv.sh up for a test file; its work directory is named after `name`. */
export async function liveEnv(name: string): Promise<LiveEnv> {
  const envDir = await mkdtemp(path.join(tmpdir(), "satchel-ts-env-"));
  const work = await mkdtemp(path.join(tmpdir(), `satchel-ts-${name}-`));
  const removeDirs = async () => {
    await rm(envDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  };
  let vars: Record<string, string>;
  try {
    vars = await testenvUp(envDir);
  } catch (err) {
    await testenvDown(envDir).catch(() => undefined);
    await removeDirs();
    throw err;
  }
  const client = new SatchelClient(vars.SATCHEL_ADDR!);
  const close = async () => {
    client.close();
    await testenvDown(envDir);
    await removeDirs();
  };
  return { vars, address: vars.SATCHEL_ADDR!, registry: vars.SATCHEL_REGISTRY!, work, client, close };
}

/** The newest of $SATCHELD, the workspace's debug and release builds. */
function satcheldBinary(): string {
  const candidates = [process.env.SATCHELD, path.join(root, "target/debug/satcheld"), path.join(root, "target/release/satcheld")];
  let best: string | undefined;
  for (const c of candidates) {
    if (!c || !existsSync(c)) continue;
    if (!best || statSync(c).mtimeMs > statSync(best).mtimeMs) best = c;
  }
  if (!best) throw new Error("no satcheld: run 'cargo build --bins' at the workspace root or set SATCHELD");
  return best;
}

/** A satcheld the test started: its socket, and how to stop it. */
export interface Daemon {
  socket: string;
  stop: () => Promise<void>;
}

/**
 * Starts satcheld on the Unix socket `socket` with `config` (TOML) as its
 * config file, its state under dir, and nothing from the caller's
 * SATCHELD_* environment; resolves once the socket is there.
 */
export async function startDaemon(dir: string, socket: string, config: string): Promise<Daemon> {
  const configFile = path.join(dir, "satcheld.toml");
  await writeFile(configFile, config);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SATCHELD")));
  const log = await open(path.join(dir, "satcheld.log"), "w");
  const args = ["--listen", `unix://${socket}`, "--config", configFile];
  args.push("--docker-config", path.join(dir, "docker.json"), "--cache-dir", path.join(dir, "cache"));
  args.push("--state-dir", path.join(dir, "state"));
  const child: ChildProcess = spawn(satcheldBinary(), args, {
    env: { ...env, NO_PROXY: "127.0.0.1,localhost", no_proxy: "127.0.0.1,localhost" },
    stdio: ["ignore", log.fd, log.fd],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let alive = true;
  void exited.then(() => (alive = false));
  // Readiness: the socket appears (the daemon binds before it serves),
  // within 30 s like testenv.sh.
  for (let i = 0; alive && !existsSync(socket) && i < 600; i++) await sleep(50);
  if (!alive || !existsSync(socket)) {
    if (alive) child.kill("SIGKILL");
    await exited;
    await log.close();
    throw new Error(`satcheld did not come up; see ${path.join(dir, "satcheld.log")}`);
  }
  return {
    socket,
    stop: async () => {
      if (alive) {
        child.kill("SIGTERM");
        await exited;
      }
      await log.close();
    },
  };
}
