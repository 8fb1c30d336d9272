// What a directory holds, as clients/conformance/archives.json writes an
// unpacked tree: by path relative to it, {file, exec}, {dir} or {link}.

import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import * as path from "node:path";

export type Node = { file: string; exec: boolean } | { dir: true } | { link: string };

/** Everything under root (links not followed), by relative path. */
export async function treeOf(root: string): Promise<Record<string, Node>> {
  const found: Record<string, Node> = {};
  for (const rel of await readdir(root, { recursive: true })) {
    const p = path.join(root, rel);
    const info = await lstat(p);
    if (info.isSymbolicLink()) found[rel] = { link: await readlink(p) };
    else if (info.isDirectory()) found[rel] = { dir: true };
    else found[rel] = { file: await readFile(p, "utf8"), exec: (info.mode & 0o100) !== 0 };
  }
  return found;
}
