// The upload half of push and attach: the files described (size, and the
// digest of those hashed first), then sent in chunks as large as the
// daemon's ServerInfo allows, with grpc-js's backpressure. A directory is
// packed first (./pack) and its archive sent in its place.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import * as path from "node:path";

import { type ClientDuplexStream, status } from "@grpc/grpc-js";

import { localFileError, malformed, SatchelError } from "./errors";
import type { AttachResponse, FileChunk, FileSpec, Progress, PushResponse, PushResult } from "./gen/satchel/v1/satchel";
import { DIRECTORY_MEDIA_TYPE, pack, type Packed } from "./pack";
import { checkTitles } from "./titles";

/**
 * A file to push: a path, or a path with a name, media type and
 * annotations. A directory is packed as the ORAS CLI packs one (a tar+gzip
 * layer marked io.deis.oras.content.unpack, which pull unpacks).
 */
export type FileInput =
  | string
  | {
      path: string;
      /** The name recorded in the layer's title; default: the path's base name. */
      name?: string;
      /** The layer media type; default: the daemon's (a directory's: DIRECTORY_MEDIA_TYPE). */
      mediaType?: string;
      /** Extra annotations on the layer descriptor. */
      annotations?: Record<string, string>;
    };

/** The files named to push, checked and sized, not yet read; directories packed. */
export interface LocalFiles {
  inputs: Exclude<FileInput, string>[];
  sizes: number[];
  /** Per input, a directory's archive (removed by removeArchives), else undefined. */
  packed: (Packed | undefined)[];
}

/**
 * Checks the files' names (a title the daemon would refuse is
 * INVALID_ARGUMENT) and that each is a regular file or a directory (else
 * INVALID_ARGUMENT naming the path), before any call is made. Directories
 * are packed now, each into a temporary file: removeArchives removes them.
 */
export async function localFiles(files: FileInput[]): Promise<LocalFiles> {
  const inputs = files.map((input) => (typeof input === "string" ? { path: input } : input));
  const titles = inputs.map((file) => file.name ?? path.basename(file.path));
  checkTitles(titles);
  const local: LocalFiles = { inputs, sizes: [], packed: [] };
  try {
    for (const [index, file] of inputs.entries()) {
      let info;
      try {
        info = await stat(file.path);
      } catch (err) {
        throw localFileError(file.path, err);
      }
      if (info.isDirectory()) {
        const packed = await pack(file.path, titles[index]!);
        local.packed.push(packed);
        local.sizes.push(packed.size);
      } else if (info.isFile()) {
        local.packed.push(undefined);
        local.sizes.push(info.size);
      } else {
        throw new SatchelError(status.INVALID_ARGUMENT, `not a regular file or a directory: ${file.path}`);
      }
    }
  } catch (err) {
    await removeArchives(local);
    throw err;
  }
  return local;
}

/** Removes the archives localFiles packed. */
export async function removeArchives(local: LocalFiles): Promise<void> {
  await Promise.all(local.packed.map((p) => (p ? rm(p.file, { force: true }) : undefined)));
}

/** Where each file's bytes are read from: its path, or a directory's archive. */
export function uploadPaths(local: LocalFiles): string[] {
  return local.inputs.map((file, index) => local.packed[index]?.file ?? file.path);
}

/**
 * Describes the files: name, media type, annotations and size, and for the
 * files hashFirst selects the sha256 digest, so the daemon can verify the
 * bytes and skip blobs the target already has. Undefined hashFirst selects
 * the files smaller than hashFirstBelow (the daemon's ServerInfo). The
 * others go without a digest: the daemon hashes them as they arrive.
 */
export async function fileSpecs(
  local: LocalFiles,
  hashFirst: boolean | undefined,
  hashFirstBelow: bigint,
  readSize: number,
): Promise<FileSpec[]> {
  const specs: FileSpec[] = [];
  for (const [index, file] of local.inputs.entries()) {
    const size = local.sizes[index]!;
    const packed = local.packed[index];
    if (packed) {
      specs.push({
        name: file.name ?? path.basename(file.path),
        mediaType: file.mediaType ?? DIRECTORY_MEDIA_TYPE,
        size: BigInt(packed.size),
        digest: packed.digest,
        annotations: { ...file.annotations, ...packed.annotations },
        fromContentStore: false,
      });
      continue;
    }
    const hashed = hashFirst ?? BigInt(size) < hashFirstBelow;
    const described = hashed ? await sizeAndDigest(file.path, readSize) : { size: BigInt(size), digest: "" };
    specs.push({
      name: file.name ?? path.basename(file.path),
      mediaType: file.mediaType ?? "",
      size: described.size,
      digest: described.digest,
      annotations: { ...file.annotations },
      fromContentStore: false,
    });
  }
  return specs;
}

/**
 * A file's size and sha256 digest, streamed in pieces of readSize and never
 * held in memory whole; the size is the number of bytes hashed, so size and
 * digest describe the same bytes.
 */
async function sizeAndDigest(file: string, readSize: number): Promise<{ size: bigint; digest: string }> {
  const hash = createHash("sha256");
  let size = 0;
  const stream = createReadStream(file, { highWaterMark: readSize });
  try {
    for await (const data of stream as AsyncIterable<Buffer>) {
      hash.update(data);
      size += data.length;
    }
  } catch (err) {
    throw localFileError(file, err);
  } finally {
    stream.destroy();
  }
  return { size: BigInt(size), digest: `sha256:${hash.digest("hex")}` };
}

/**
 * A Push or Attach request: the header first, then chunks. PushRequest is
 * this with a PushHeader, AttachRequest with an AttachHeader.
 */
export interface UploadRequest<Header> {
  payload?: { $case: "header"; header: Header } | { $case: "chunk"; chunk: FileChunk } | undefined;
}

export type Upload<Header> = ClientDuplexStream<UploadRequest<Header>, PushResponse | AttachResponse>;

/**
 * Sends the header and every file in chunks of at most chunkBytes, waiting
 * for 'drain' whenever grpc-js's buffer is full, while collecting the
 * daemon's progress events and result. Whatever stops the upload early (a
 * file that cannot be read, a throwing onProgress) cancels the call.
 */
export async function upload<Header>(
  call: Upload<Header>,
  deadline: number | undefined,
  header: Header,
  paths: string[],
  chunkBytes: number,
  onProgress?: (progress: Progress) => void,
): Promise<PushResult> {
  const state = { over: false, abandoned: false };
  const answer = collect(call, state, deadline, onProgress);
  // A rejection is handled by the await at the end; keep Node from calling
  // it unhandled while the files are still being sent.
  answer.catch(() => undefined);

  // Resolves on 'drain', or once the call is over in any way.
  const settles = ["drain", "error", "status", "end", "close"] as const;
  const writable = () =>
    new Promise<void>((resolve) => {
      const settle = () => {
        for (const event of settles) call.off(event, settle);
        resolve();
      };
      for (const event of settles) call.once(event, settle);
    });
  /** Sends one message; false once the call is over. */
  const send = async (msg: UploadRequest<Header>): Promise<boolean> => {
    if (state.over) return false;
    if (!call.write(msg)) await writable();
    return !state.over;
  };

  let file = "";
  try {
    let open = await send({ payload: { $case: "header", header } });
    for (const [index, name] of paths.entries()) {
      if (!open) break;
      file = name;
      const stream = createReadStream(file, { highWaterMark: chunkBytes });
      try {
        for await (const data of stream as AsyncIterable<Buffer>) {
          const chunk = { fileIndex: index, data };
          if (!(open = await send({ payload: { $case: "chunk", chunk } }))) break;
        }
      } finally {
        stream.destroy();
      }
    }
    if (open) call.end();
  } catch (err) {
    // Our own failure (e.g. a file became unreadable): cancel the call.
    if (!state.over) {
      state.over = state.abandoned = true;
      call.cancel();
      throw localFileError(file, err);
    }
  }
  return await answer;
}

/**
 * The daemon's answer to an upload: its progress events passed on, its
 * result or error. `state.over` is set once the call is over or abandoned:
 * nothing more is sent then. Messages still buffered after the status (the
 * result, say) are read unless the call was abandoned.
 */
function collect<Header>(
  call: Upload<Header>,
  state: { over: boolean; abandoned: boolean },
  deadline: number | undefined,
  onProgress?: (progress: Progress) => void,
): Promise<PushResult> {
  return new Promise<PushResult>((resolve, reject) => {
    let result: PushResult | undefined;
    call.on("data", (res: PushResponse | AttachResponse) => {
      if (state.abandoned) return;
      const event = res.event;
      try {
        if (event?.$case === "progress") onProgress?.(event.progress);
        else if (event?.$case === "result") result = event.result;
      } catch (err) {
        // The caller's callback failed: give up the call, report its error.
        state.over = state.abandoned = true;
        reject(SatchelError.from(err));
        call.cancel();
      }
    });
    call.on("error", (err) => {
      state.over = true;
      reject(SatchelError.fromCall(err, deadline));
    });
    call.on("status", () => {
      state.over = true;
    });
    call.on("end", () => {
      state.over = true;
      if (result) resolve(result);
      else reject(malformed("the daemon ended the call without a result"));
    });
  });
}
