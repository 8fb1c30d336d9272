// Directories down: a layer the ORAS CLI marks io.deis.oras.content.unpack
// is a tar+gzip of a directory named by its title; unpack turns the
// verified archive back into that directory.
//
// Every entry must lie under the title (`dir` or `dir/...`, a leading `./`
// and trailing `/` dropped), and what follows it must be a safe relative
// path (checkTitle). Regular files, directories, symbolic links and hard
// links are made; anything else (devices, FIFOs) is refused. A symbolic
// link's target must be relative and may climb (`../`) only at its start
// and no higher than the tree's top, so it resolves inside the tree
// whatever the links it passes through; a hard link names an earlier
// regular file of the archive. Entries are made through ./files, which
// never writes through a link, so an entry cannot write through a link an
// earlier one made. Files keep their mode (& 0o777, less the umask) and
// modification time.
//
// The tree is built under a temporary name beside the final one and takes
// it only when every entry is in place and the archive's own digest (the
// io.deis.oras.content.digest annotation: the uncompressed tar's, sha256
// or sha512; another algorithm is not checked) checks out; on any failure
// it is removed. Unsafe entries are INVALID_ARGUMENT, a wrong digest or a
// broken archive DATA_LOSS, an archive past the limits RESOURCE_EXHAUSTED.

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";

import { status } from "@grpc/grpc-js";

import { SatchelError } from "./errors";
import { makeDirectories, PartialFile, placeHardLink, placeSymlink, TreePlacement } from "./files";
import { BrokenArchive, readTar, type TarEntry } from "./tar";
import { checkTitle } from "./titles";

/** The layer annotation that asks for unpacking (value "true"). */
export const UNPACK_ANNOTATION = "io.deis.oras.content.unpack";
/** The layer annotation holding the uncompressed tar's digest. */
export const TAR_DIGEST_ANNOTATION = "io.deis.oras.content.digest";

/** How much one archive may unpack to. */
export interface UnpackLimits {
  /** Bytes of the uncompressed tar stream, headers included. */
  maxBytes: number;
  /** Entries. */
  maxEntries: number;
}

/** 64 GiB and a million entries. */
export const UNPACK_LIMITS: Readonly<UnpackLimits> = Object.freeze({ maxBytes: 64 * 2 ** 30, maxEntries: 1_000_000 });

/** Whether a layer is a directory to unpack. */
export function isDirectoryLayer(layer: { annotations?: Record<string, string> }): boolean {
  return layer.annotations?.[UNPACK_ANNOTATION] === "true";
}

function shown(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}

function unsafeEntry(title: string, why: string): SatchelError {
  return new SatchelError(status.INVALID_ARGUMENT, `refusing the directory ${shown(title)}: ${why}`);
}

function dataLoss(title: string, why: string, cause?: unknown): SatchelError {
  return new SatchelError(status.DATA_LOSS, `cannot unpack the directory ${shown(title)}: ${why}`, { cause });
}

function exhausted(title: string, why: string): SatchelError {
  return new SatchelError(status.RESOURCE_EXHAUSTED, `cannot unpack the directory ${shown(title)}: ${why}`);
}

/** The hash a digest annotation names; none for a missing one or an algorithm this client does not know. */
function hasherFor(digest: string | undefined): Hash | undefined {
  const colon = digest?.indexOf(":") ?? -1;
  if (colon < 0) return undefined;
  const algorithm = digest!.slice(0, colon);
  return algorithm === "sha256" || algorithm === "sha512" ? createHash(algorithm) : undefined;
}

/**
 * Unpacks the gzip-compressed tar at `archive` (already verified against
 * its layer digest) into the directory `title` under outputDir, as the
 * module comment describes; returns the directory's path. The archive file
 * is left where it is.
 */
export async function unpack(
  archive: string,
  outputDir: string,
  title: string,
  layer: { annotations?: Record<string, string> },
  limits: UnpackLimits = UNPACK_LIMITS,
): Promise<string> {
  const expected = layer.annotations?.[TAR_DIGEST_ANNOTATION];
  const hasher = hasherFor(expected);
  const placement = await TreePlacement.create(outputDir, checkTitle(title));
  const input = createReadStream(archive);
  const gunzip = createGunzip();
  input.on("error", (err) => gunzip.destroy(err));
  input.pipe(gunzip);
  try {
    let read = 0;
    // The uncompressed stream, counted against the limit and hashed.
    const pieces = async function* (): AsyncGenerator<Buffer> {
      const it = (gunzip as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await it.next();
        } catch (err) {
          throw new BrokenArchive(err instanceof Error ? err.message : String(err), { cause: err });
        }
        if (next.done) return;
        read += next.value.length;
        if (read > limits.maxBytes) throw exhausted(title, `it unpacks to more than ${limits.maxBytes} bytes`);
        hasher?.update(next.value);
        yield next.value;
      }
    };
    const tree = new Tree(placement.tempPath, title, limits);
    let entries = 0;
    for await (const entry of readTar(pieces())) {
      if (++entries > limits.maxEntries) throw exhausted(title, `more than ${limits.maxEntries} entries`);
      await tree.put(entry);
    }
    // readTar read the stream to its end: the digest covers it all.
    if (hasher) {
      const got = `${expected!.slice(0, expected!.indexOf(":"))}:${hasher.digest("hex")}`;
      if (got !== expected) {
        throw dataLoss(title, `the archive's content digest is ${got}, its layer says ${expected}`);
      }
    }
    await placement.commit();
    return placement.finalPath;
  } catch (err) {
    await placement.discard();
    if (err instanceof BrokenArchive) throw dataLoss(title, `the archive is broken: ${err.message}`, err);
    throw SatchelError.from(err);
  } finally {
    input.destroy();
    gunzip.destroy();
  }
}

/** The tree being unpacked, under its temporary name. */
class Tree {
  /** Which entries made regular files, for the hard links that follow. */
  private readonly files = new Set<string>();
  /** The sizes the entries declared so far. */
  private declared = 0;

  constructor(
    private readonly root: string,
    private readonly title: string,
    private readonly limits: UnpackLimits,
  ) {}

  /** Makes one entry. */
  async put(entry: TarEntry): Promise<void> {
    const title = this.title;
    const rel = relative(title, entry.name);
    const parts = rel === "" ? [] : rel.split("/");
    if (rel === "" && entry.type !== "5") throw unsafeEntry(title, "its top is not a directory");
    try {
      switch (entry.type) {
        case "5":
          await makeDirectories(this.root, parts);
          this.files.delete(rel);
          break;
        case "0": {
          this.declared += entry.size;
          if (this.declared > this.limits.maxBytes) {
            throw exhausted(title, `it unpacks to more than ${this.limits.maxBytes} bytes`);
          }
          const file = await PartialFile.create(this.root, parts, { mode: entry.mode & 0o777 });
          try {
            for await (const piece of entry.data()) await file.write(piece);
            await file.handle.utimes(entry.mtime, entry.mtime);
          } catch (err) {
            await file.discard();
            throw err;
          }
          await file.commit();
          this.files.add(rel);
          break;
        }
        case "2": {
          const target = utf8(title, entry.linkName, "a link's target");
          checkLinkTarget(title, rel, target);
          await placeSymlink(this.root, parts, target);
          this.files.delete(rel);
          break;
        }
        case "1": {
          const existing = relative(title, entry.linkName);
          if (!this.files.has(existing)) {
            throw unsafeEntry(
              title,
              `the hard link ${shown(rel)} names ${shown(existing)}, not an earlier file of the archive`,
            );
          }
          await placeHardLink(this.root, existing.split("/"), parts);
          this.files.add(rel);
          break;
        }
        // A PAX global header: nothing this client applies.
        case "g":
          break;
        default:
          throw unsafeEntry(title, `${shown(rel)} is a ${kindName(entry.type)}, not a file, directory or link`);
      }
    } catch (err) {
      // Refusals inside the tree (a link or a file in the way) only the
      // archive's own entries can cause.
      if (err instanceof SatchelError && err.code === status.FAILED_PRECONDITION) {
        throw unsafeEntry(title, err.details);
      }
      throw err;
    }
  }
}

function kindName(type: string): string {
  const names: Record<string, string> = { "3": "character device", "4": "block device", "6": "FIFO" };
  return names[type] ?? `${JSON.stringify(type)} entry`;
}

function utf8(title: string, raw: Buffer, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    throw unsafeEntry(title, `${what} is not UTF-8`);
  }
}

/**
 * The part of entry name `raw` under `title` ("" for the top itself),
 * checked as a title; `./` in front and `/` at the end are dropped.
 */
export function relative(title: string, raw: Buffer): string {
  let name = utf8(title, raw, "an entry's name").replace(/\/+$/, "");
  while (name.startsWith("./")) name = name.slice(2);
  let rel: string;
  if (name === title) rel = "";
  else if (name.startsWith(`${title}/`)) rel = name.slice(title.length + 1);
  else throw unsafeEntry(title, `the entry ${shown(name)} lies outside it`);
  if (rel !== "") {
    try {
      checkTitle(rel);
    } catch (err) {
      throw unsafeEntry(title, err instanceof SatchelError ? err.details : String(err));
    }
  }
  return rel;
}

/**
 * A symbolic link at `rel` may point only inside the tree: relative, with
 * `..` parts only at its start and no more of them than `rel` has
 * directories above it, and otherwise only plain names.
 */
export function checkLinkTarget(title: string, rel: string, target: string): void {
  const refuse = (why: string) => unsafeEntry(title, `the link ${shown(rel)} points ${why}: ${shown(target)}`);
  if (target === "" || target.startsWith("/")) throw refuse("to an absolute or empty path");
  const depth = rel.split("/").length - 1;
  const parts = target.replace(/\/+$/, "").split("/");
  let climbs = 0;
  while (parts[climbs] === "..") climbs++;
  if (climbs > depth) throw refuse("outside the directory");
  for (const part of parts.slice(climbs)) {
    if (part === "" || part === "." || part === ".." || part.includes("\0")) {
      throw refuse("through '.', '..' or an empty part after its start");
    }
  }
}
