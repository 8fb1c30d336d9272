// Directories up: pack turns a directory into the layer the ORAS CLI makes
// of one, so `oras pull` (and this client's pull) unpacks the same tree: a
// tar+gzip file whose entries are named under the layer's title (`dir`,
// `dir/a.txt`, ...), in the order of a walk that visits each directory's
// names sorted (by their UTF-8 bytes), with modes and modification times
// kept, uid and gid 0 and no owner names, symbolic links stored as links
// and anything else (sockets, devices, FIFOs) refused with
// INVALID_ARGUMENT. Names too long for ustar go in PAX headers. The layer
// is annotated io.deis.oras.content.unpack=true, with the tar's own sha256
// under io.deis.oras.content.digest.
//
// The archive is written to a temporary file (the caller removes it after
// the push), never held in memory.

import { createHash, randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, open, readdir, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

import { status } from "@grpc/grpc-js";

import { localFileError, SatchelError } from "./errors";
import { dataPadding, END_OF_ARCHIVE, headerBlocks } from "./tar";
import { TAR_DIGEST_ANNOTATION, UNPACK_ANNOTATION } from "./unpack";

/** The layer media type of a packed directory when none is given. */
export const DIRECTORY_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip";

/** A packed directory: the archive and what its layer says of it. */
export interface Packed {
  /** The temporary archive file; the caller removes it. */
  file: string;
  /** The archive's sha256 digest and size. */
  digest: string;
  size: number;
  /** The layer annotations that mark it for unpacking. */
  annotations: Record<string, string>;
}

/** How a file's bytes are read into the tar. */
const READ_BYTES = 1 << 20;

/** Packs the directory `dir` as a layer titled `title` (see the module comment). */
export async function pack(dir: string, title: string): Promise<Packed> {
  const file = path.join(tmpdir(), `.satchel-pack-${randomBytes(16).toString("hex")}.tar.gz`);
  const out = await open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
  const tarHash = createHash("sha256");
  const layerHash = createHash("sha256");
  let size = 0;
  try {
    await pipeline(
      async function* () {
        for await (const piece of entries(dir, title, true)) {
          tarHash.update(piece);
          yield piece;
        }
        tarHash.update(END_OF_ARCHIVE);
        yield END_OF_ARCHIVE;
      },
      createGzip(),
      async (gzipped: AsyncIterable<Buffer>) => {
        for await (const piece of gzipped) {
          layerHash.update(piece);
          size += piece.length;
          for (let at = 0; at < piece.length; ) at += (await out.write(piece, at, piece.length - at)).bytesWritten;
        }
      },
    );
    await out.close();
  } catch (err) {
    await out.close().catch(() => undefined);
    await rm(file, { force: true });
    throw err instanceof SatchelError ? err : SatchelError.from(err);
  }
  return {
    file,
    digest: `sha256:${layerHash.digest("hex")}`,
    size,
    annotations: {
      [TAR_DIGEST_ANNOTATION]: `sha256:${tarHash.digest("hex")}`,
      [UNPACK_ANNOTATION]: "true",
    },
  };
}

function refuse(file: string, why: string): SatchelError {
  return new SatchelError(status.INVALID_ARGUMENT, `cannot pack ${file}: ${why}`);
}

/** What `info` is, for a refusal. */
function kind(info: Stats): string {
  if (info.isSocket()) return "a socket";
  if (info.isFIFO()) return "a FIFO";
  return "a device";
}

/**
 * The tar bytes of `file` under the entry name `name`, and of what it
 * holds. The top is followed if it is a link (the caller named it);
 * inside, links are stored as links.
 */
async function* entries(file: string, name: string, top: boolean): AsyncGenerator<Buffer> {
  let info: Stats;
  try {
    info = top ? await stat(file) : await lstat(file);
  } catch (err) {
    throw localFileError(file, err);
  }
  const common = { name, mode: info.mode & 0o7777, mtime: Math.floor(info.mtimeMs / 1000) };
  if (info.isDirectory()) {
    yield headerBlocks({ ...common, type: "5", size: 0 });
    let children: Buffer[];
    try {
      children = await readdir(file, { encoding: "buffer" });
    } catch (err) {
      throw localFileError(file, err);
    }
    children.sort(Buffer.compare);
    for (const raw of children) {
      const child = raw.toString("utf8");
      if (!Buffer.from(child, "utf8").equals(raw)) throw refuse(file, "a name in it is not UTF-8");
      yield* entries(path.join(file, child), `${name}/${child}`, false);
    }
  } else if (info.isFile()) {
    yield headerBlocks({ ...common, type: "0", size: info.size });
    yield* contents(file, info.size);
    yield dataPadding(info.size);
  } else if (info.isSymbolicLink()) {
    let target: string;
    try {
      target = await readlink(file);
    } catch (err) {
      throw localFileError(file, err);
    }
    yield headerBlocks({ ...common, type: "2", size: 0, linkName: target });
  } else {
    throw refuse(file, `${JSON.stringify(name)} is ${kind(info)}, not a file, directory or link`);
  }
}

/** Exactly `size` bytes of the regular file `file` (opened without following a link). */
async function* contents(file: string, size: number): AsyncGenerator<Buffer> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw localFileError(file, err);
  }
  try {
    let left = size;
    const buffer = Buffer.alloc(Math.min(READ_BYTES, Math.max(size, 1)));
    while (left > 0) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, left), size - left);
      if (bytesRead === 0) throw new SatchelError(status.ABORTED, `cannot pack ${file}: it shrank while it was packed`);
      left -= bytesRead;
      // A copy: the buffer is reused for the next read.
      yield Buffer.from(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
}
