// Writing pulled files without following links the pull did not create.
//
// Node has no openat(), so directories are checked by path: every component
// below the output directory (which the caller named; a link there is
// followed) is lstat'ed, created when missing, and refused when it is a
// link or not a directory. The file is created with O_CREAT|O_EXCL|O_NOFOLLOW
// under a random hidden name in its final directory, the chain is checked
// again, and the file is renamed onto its final name: a link there is
// replaced, never written through. Links (an unpacked directory's) are made
// the same way: under a random name, then renamed onto theirs.
//
// A directory layer's tree (TreePlacement) is built under a random hidden
// name beside its final one and renamed onto it when whole. Node has no
// renameat2(RENAME_EXCHANGE), so replacing an older tree takes two
// renames, not one atomic swap: the old one is moved aside to another
// random name, the new one renamed in, and the old one then removed. In
// between, for a moment, nothing stands at the final name.

import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { type FileHandle, link, lstat, mkdir, open, rename, rm, symlink } from "node:fs/promises";
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

/** A random hidden name for a file, link or tree on its way. */
function tempName(): string {
  return `.satchel-${randomBytes(16).toString("hex")}.partial`;
}

/** How PartialFile.create makes the file. */
export interface CreateOptions {
  /** The new file's mode (less the umask); default 0o666. */
  mode?: number;
  /**
   * A file that will never take its final name (a directory layer's
   * archive, unpacked and removed): a directory standing at that name is
   * no obstacle.
   */
  scratch?: boolean;
}

/** A pulled file being written under a random hidden name beside its final name. */
export class PartialFile {
  private constructor(
    readonly name: string,
    readonly finalPath: string,
    private readonly outputDir: string,
    private readonly parts: string[],
    /** Where the bytes are until commit. */
    readonly tempPath: string,
    readonly handle: FileHandle,
  ) {}

  /** Creates the file for title `parts` under outputDir (see the module comment). */
  static async create(outputDir: string, parts: string[], options: CreateOptions = {}): Promise<PartialFile> {
    const name = parts.join("/");
    const dir = await directory(outputDir, parts.slice(0, -1), true);
    const finalPath = path.join(dir, parts.at(-1)!);
    if (!options.scratch) await refuseDirectory(name, finalPath);
    const tempPath = path.join(dir, tempName());
    const handle = await open(tempPath, PARTIAL_FLAGS, (options.mode ?? 0o666) & 0o777);
    return new PartialFile(name, finalPath, outputDir, parts, tempPath, handle);
  }

  /** Closes the file, leaving it under its temporary name (a scratch file, to read back). */
  async close(): Promise<void> {
    await this.handle.close();
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
      await renameOnto(this.name, this.tempPath, this.finalPath);
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

/** Renames `from` onto `to` (a file or link there is replaced); a directory there is FAILED_PRECONDITION. */
async function renameOnto(name: string, from: string, to: string): Promise<void> {
  await rename(from, to).catch((err) => {
    if (isNodeError(err) && (err.code === "EISDIR" || err.code === "ENOTEMPTY" || err.code === "EEXIST")) {
      throw precondition(name, "a directory stands at that name");
    }
    throw err;
  });
}

/**
 * Makes the directory `parts` under root and those on the way, checked as
 * PartialFile.create checks them (a link among them is FAILED_PRECONDITION).
 */
export async function makeDirectories(root: string, parts: string[]): Promise<void> {
  await directory(root, parts, true);
}

/**
 * Makes a symbolic link `parts` under root pointing at `target` (which the
 * caller checked): made under a random name, then renamed onto its own,
 * replacing a file or link there.
 */
export async function placeSymlink(root: string, parts: string[], target: string): Promise<void> {
  const name = parts.join("/");
  const dir = await directory(root, parts.slice(0, -1), true);
  const temp = path.join(dir, tempName());
  await symlink(target, temp);
  try {
    await directory(root, parts.slice(0, -1), false);
    await renameOnto(name, temp, path.join(dir, parts.at(-1)!));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * Makes `parts` under root a hard link to the regular file `existing`
 * under root (a link or anything else there is FAILED_PRECONDITION), made
 * as placeSymlink makes a link.
 */
export async function placeHardLink(root: string, existing: string[], parts: string[]): Promise<void> {
  const from = path.join(await directory(root, existing.slice(0, -1), false), existing.at(-1)!);
  const info = await lstatOrUndefined(from);
  if (!info?.isFile()) throw precondition(existing.join("/"), "a hard link must name a regular file");
  const name = parts.join("/");
  const dir = await directory(root, parts.slice(0, -1), true);
  const temp = path.join(dir, tempName());
  // link() does not follow a link at `from` (linkat without AT_SYMLINK_FOLLOW).
  await link(from, temp);
  try {
    await directory(root, parts.slice(0, -1), false);
    await renameOnto(name, temp, path.join(dir, parts.at(-1)!));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * A directory tree built under a random hidden name beside its final name
 * (see the module comment), waiting for commit or discard.
 */
export class TreePlacement {
  private constructor(
    private readonly outputDir: string,
    private readonly parts: string[],
    readonly finalPath: string,
    /** The tree's root until commit: build it here. */
    readonly tempPath: string,
  ) {}

  /** Makes the empty tree for title `parts` under outputDir, the directories on the way checked and made. */
  static async create(outputDir: string, parts: string[]): Promise<TreePlacement> {
    const dir = await directory(outputDir, parts.slice(0, -1), true);
    const tempPath = path.join(dir, tempName());
    await mkdir(tempPath, 0o777);
    return new TreePlacement(outputDir, parts, path.join(dir, parts.at(-1)!), tempPath);
  }

  /**
   * Gives the tree its final name. Whatever stood there (a file, a link or
   * an older tree) is renamed aside first, then removed: two renames, so
   * for a moment the name is empty, but it never shows a partial tree. On
   * failure the new tree is removed and the old one put back.
   */
  async commit(): Promise<void> {
    const name = this.parts.join("/");
    try {
      const dir = await directory(this.outputDir, this.parts.slice(0, -1), false);
      const aside = (await lstatOrUndefined(this.finalPath)) ? path.join(dir, tempName()) : undefined;
      if (aside) await rename(this.finalPath, aside);
      try {
        await rename(this.tempPath, this.finalPath);
      } catch (err) {
        if (aside) await rename(aside, this.finalPath).catch(() => undefined);
        if (isNodeError(err) && (err.code === "ENOTEMPTY" || err.code === "EEXIST" || err.code === "ENOTDIR")) {
          throw precondition(name, "something else took that name meanwhile");
        }
        throw err;
      }
      // rm does not follow links: an old link is removed, not its target.
      // The new tree is in place: a failure to remove the old one is not the pull's.
      if (aside) await rm(aside, { recursive: true, force: true }).catch(() => undefined);
    } catch (err) {
      await this.discard();
      throw err;
    }
  }

  /** Removes the tree under its temporary name, with all it holds. */
  async discard(): Promise<void> {
    await rm(this.tempPath, { recursive: true, force: true });
  }
}
