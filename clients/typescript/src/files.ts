// Writing pulled files without following links the pull did not create.
//
// Node has no openat(), so directories are checked by path: every component
// below the output directory (which the caller named; a link there is
// followed) is lstat'ed, created when missing, and refused when it is a
// link or not a directory. The file is created with O_CREAT|O_EXCL|O_NOFOLLOW
// under a random hidden name in its final directory, the chain is checked
// again, and the file is renamed onto its final name: a link there is
// replaced, never written through.

import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { type FileHandle, lstat, mkdir, open, rename, rm } from "node:fs/promises";
import * as path from "node:path";

import { status } from "@grpc/grpc-js";

import { isNodeError, SatchelError } from "./errors";

const PARTIAL_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY;

function precondition(name: string, why: string): SatchelError {
  return new SatchelError(status.FAILED_PRECONDITION, `cannot write ${JSON.stringify(name)}: ${why}`);
}

async function lstatOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await lstat(file);
  } catch (err) {
    if (isNodeError(err) && err.code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * The directory `parts` under outputDir, each component checked not to be a
 * link (FAILED_PRECONDITION) and, with `create`, made when missing.
 */
async function directory(outputDir: string, parts: string[], create: boolean): Promise<string> {
  let dir = outputDir;
  for (let i = 0; i < parts.length; i++) {
    dir = path.join(dir, parts[i]!);
    const where = parts.slice(0, i + 1).join("/");
    let info = await lstatOrUndefined(dir);
    if (!info && create) {
      await mkdir(dir).catch((err) => {
        if (!(isNodeError(err) && err.code === "EEXIST")) throw err;
      });
      info = await lstatOrUndefined(dir);
    }
    if (!info) throw precondition(where, "the directory vanished");
    if (info.isSymbolicLink()) throw precondition(where, "it is a symbolic link; a pull does not follow links");
    if (!info.isDirectory()) throw precondition(where, "it is not a directory");
  }
  return dir;
}

/** A pulled file being written under a random hidden name beside its final name. */
export class PartialFile {
  private constructor(
    readonly name: string,
    readonly finalPath: string,
    private readonly outputDir: string,
    private readonly parts: string[],
    private readonly tempPath: string,
    readonly handle: FileHandle,
  ) {}

  /** Creates the file for title `parts` under outputDir (see the module comment). */
  static async create(outputDir: string, parts: string[]): Promise<PartialFile> {
    const name = parts.join("/");
    const dir = await directory(outputDir, parts.slice(0, -1), true);
    const finalPath = path.join(dir, parts.at(-1)!);
    await refuseDirectory(name, finalPath);
    const tempPath = path.join(dir, `.satchel-${randomBytes(16).toString("hex")}.partial`);
    const handle = await open(tempPath, PARTIAL_FLAGS, 0o666);
    return new PartialFile(name, finalPath, outputDir, parts, tempPath, handle);
  }

  /** Appends bytes; a write error (ENOSPC...) rejects. */
  async write(data: Uint8Array): Promise<void> {
    for (let offset = 0; offset < data.length; ) {
      const { bytesWritten } = await this.handle.write(data, offset, data.length - offset);
      offset += bytesWritten;
    }
  }

  /** Moves the finished file onto its final name; on failure removes it. */
  async commit(): Promise<void> {
    try {
      await this.handle.close();
      // The chain again, as close to the rename as Node allows.
      await directory(this.outputDir, this.parts.slice(0, -1), false);
      await refuseDirectory(this.name, this.finalPath);
      await rename(this.tempPath, this.finalPath).catch((err) => {
        if (isNodeError(err) && (err.code === "EISDIR" || err.code === "ENOTEMPTY" || err.code === "EEXIST")) {
          throw precondition(this.name, "a directory stands at that name");
        }
        throw err;
      });
    } catch (err) {
      await this.discard();
      throw err;
    }
  }

  /** Closes (if still open) and removes the temporary file. */
  async discard(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await rm(this.tempPath, { force: true });
  }
}

async function refuseDirectory(name: string, finalPath: string): Promise<void> {
  if ((await lstatOrUndefined(finalPath))?.isDirectory()) {
    throw precondition(name, "a directory stands at that name");
  }
}
