// A thin, typed wrapper over the generated grpc-js client: file paths in,
// files on disk out, Promises for results and SatchelError for failures.

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm, stat } from "node:fs/promises";
import * as path from "node:path";

import {
  type CallOptions,
  type ChannelCredentials,
  type ClientDuplexStream,
  type ClientOptions,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";

import {
  type AttachRequest,
  type AttachResponse,
  type ConfigSpec,
  type Descriptor,
  type DiscoverResponse,
  type FileSpec,
  type Progress,
  type PulledManifest,
  type PullRequest,
  type PullResponse,
  type PushRequest,
  type PushResponse,
  type PushResult,
  ReferrersMode,
  type ResolveResponse,
  SatchelServiceClient,
  type Target,
} from "./gen/satchel/v1/satchel";

/** The most file bytes one message carries (the API's limit). */
export const CHUNK_SIZE = 1 << 20;

/**
 * The size (256 MiB) under which push and attach hash a file before sending
 * it, as the satchel CLI and the Go client do. See PushOptions.hashFirst.
 */
export const HASH_FIRST_BELOW = 256 << 20;

/**
 * The largest message the client accepts: a pulled manifest may be 4 MiB
 * plus its descriptor, more than grpc-js's default of 4 MiB.
 */
export const MAX_MESSAGE_SIZE = 16 << 20;

/**
 * A failed call. `code` is the gRPC status code: the daemon's, or one this
 * client chose for a failure it detected itself (INVALID_ARGUMENT for a bad
 * file name, DATA_LOSS for pulled bytes that do not match their digest or
 * size, INTERNAL for a malformed stream...).
 */
export class SatchelError extends Error {
  readonly code: status;
  readonly details: string;
  readonly metadata?: Metadata;

  constructor(code: status, details: string, options?: { cause?: unknown; metadata?: Metadata }) {
    super(`${status[code] ?? code}: ${details}`, { cause: options?.cause });
    this.name = "SatchelError";
    this.code = code;
    this.details = details;
    this.metadata = options?.metadata;
  }

  /** Wraps a grpc-js ServiceError (or anything else thrown) as a SatchelError. */
  static from(err: unknown): SatchelError {
    if (err instanceof SatchelError) return err;
    if (isServiceError(err)) {
      return new SatchelError(err.code, err.details, { cause: err, metadata: err.metadata });
    }
    const message = err instanceof Error ? err.message : String(err);
    const code = isNodeError(err) && err.code === "ENOENT" ? status.NOT_FOUND : status.UNKNOWN;
    return new SatchelError(code, message, { cause: err });
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as ServiceError).code === "number" && "details" in err;
}

function isNodeError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string";
}

/** Where the registry or layout is, and how to talk to it. */
export interface TargetOptions {
  /** Talk plain HTTP to the registry instead of HTTPS. */
  plainHttp?: boolean;
  /** The reference names a tag or digest in this OCI image layout (on the daemon's host). */
  ociLayout?: string;
  /** Force the referrers API or the tag schema; default: detect. */
  referrersMode?: ReferrersMode;
}

/** A file to push: a path, or a path with a name, media type and annotations. */
export type FileInput =
  | string
  | {
      path: string;
      /** The name recorded in the layer's title; default: the path's base name. */
      name?: string;
      /** The layer media type; default: the daemon's. */
      mediaType?: string;
      /** Extra annotations on the layer descriptor. */
      annotations?: Record<string, string>;
    };

export interface PushOptions extends TargetOptions {
  /** The manifest's artifactType. Push defaults it; attach requires it. */
  artifactType?: string;
  /** Manifest annotations. */
  annotations?: Record<string, string>;
  /** An inline config blob (at most 4 MiB). */
  config?: { mediaType: string; data: Uint8Array };
  /** Extra tags to apply to the manifest. */
  tags?: string[];
  /**
   * Whether to hash files (sha256, streamed from disk) before sending them,
   * so their FileSpec carries digest and size: the daemon then skips the
   * upload of blobs the target already has (it still reads and verifies the
   * streamed bytes) and counts them in the result's `blobsSkipped`. The cost
   * is reading each hashed file twice.
   *
   * - undefined (the default): hash files smaller than HASH_FIRST_BELOW
   *   (256 MiB); larger ones are sent with their size only, read once, and
   *   hashed by the daemon on the way (like the CLI without --hash-first);
   * - true: hash every file (like the CLI's --hash-first);
   * - false: hash none; nothing is skipped.
   */
  hashFirst?: boolean;
  /** Called for every progress event the daemon sends. */
  onProgress?: (progress: Progress) => void;
  /** grpc-js call options, e.g. a deadline. */
  callOptions?: Partial<CallOptions>;
}

export interface AttachOptions extends PushOptions {
  artifactType: string;
}

export interface DiscoverOptions extends TargetOptions {
  /** Only referrers of this artifact type (first level). */
  artifactType?: string;
  /** Levels of referrers to return (0 and 1: direct referrers only). */
  depth?: number;
  callOptions?: Partial<CallOptions>;
}

export interface ResolveOptions extends TargetOptions {
  callOptions?: Partial<CallOptions>;
}

export interface PullStreamOptions extends TargetOptions {
  /**
   * Treat the reference as a subject and pull its newest attachment of this
   * artifact type.
   */
  artifactType?: string;
  callOptions?: Partial<CallOptions>;
}

export interface PullOptions extends PullStreamOptions {
  /** The directory to write files into; default: the current directory. */
  outputDir?: string;
  onProgress?: (progress: Progress) => void;
}

/** A file written by pull. */
export interface PulledFile {
  /** The name from the layer's title annotation. */
  name: string;
  /** Where it was written. */
  path: string;
  /** The layer descriptor. */
  descriptor: Descriptor;
}

export interface PullResult {
  /** The manifest: descriptor, content and canonical reference. */
  manifest: PulledManifest;
  files: PulledFile[];
}

export interface SatchelClientOptions {
  /** Channel credentials; default: insecure (right for a Unix socket). */
  credentials?: ChannelCredentials;
  /** grpc-js channel options. */
  channelOptions?: Partial<ClientOptions>;
}

type Upload<Req> = ClientDuplexStream<Req, PushResponse | AttachResponse>;

/**
 * A client of satcheld. `address` is `unix:///path/to/satcheld.sock`,
 * `host:port` or `http://host:port`.
 */
export class SatchelClient {
  /** The generated grpc-js client, for the calls this class does not wrap. */
  readonly raw: SatchelServiceClient;

  constructor(address: string, options: SatchelClientOptions = {}) {
    const creds = options.credentials ?? grpcCredentials.createInsecure();
    // grpc-js wants a bare host:port; the daemon's own listen syntax and the
    // other clients also accept http://host:port.
    if (address.startsWith("http://")) address = address.slice("http://".length);
    this.raw = new SatchelServiceClient(address, creds, {
      "grpc.max_receive_message_length": MAX_MESSAGE_SIZE,
      ...options.channelOptions,
    });
  }

  /** Closes the channel. */
  close(): void {
    this.raw.close();
  }

  /**
   * Pushes files as a standalone artifact; a tag in the reference tags it.
   * Each file is streamed from disk in chunks of CHUNK_SIZE; files under
   * HASH_FIRST_BELOW are hashed first (see PushOptions.hashFirst), so blobs
   * the target already has are not uploaded again. The result's
   * `blobsSkipped` counts those.
   */
  async push(reference: string, files: FileInput[], options: PushOptions = {}): Promise<PushResult> {
    const { specs, paths } = await fileSpecs(files, options.hashFirst);
    const header: PushRequest = {
      payload: {
        $case: "header",
        header: { target: target(reference, options), artifact: artifactSpec(specs, options) },
      },
    };
    const call = this.raw.push(options.callOptions ?? {});
    return upload<PushRequest>(call, header, paths, (fileIndex, data) => ({
      payload: { $case: "chunk", chunk: { fileIndex, data } },
    }), options.onProgress);
  }

  /**
   * Pushes files as an artifact that refers to the subject manifest. Files
   * are sent as by push (hashed first by the same policy); `blobsSkipped`
   * in the result counts the blobs the target already had.
   */
  async attach(subject: string, files: FileInput[], options: AttachOptions): Promise<PushResult> {
    const { specs, paths } = await fileSpecs(files, options.hashFirst);
    const header: AttachRequest = {
      payload: {
        $case: "header",
        header: { subject: target(subject, options), artifact: artifactSpec(specs, options) },
      },
    };
    const call = this.raw.attach(options.callOptions ?? {});
    return upload<AttachRequest>(call, header, paths, (fileIndex, data) => ({
      payload: { $case: "chunk", chunk: { fileIndex, data } },
    }), options.onProgress);
  }

  /** Lists the referrers of a subject manifest. */
  discover(subject: string, options: DiscoverOptions = {}): Promise<DiscoverResponse> {
    const request = {
      subject: target(subject, options),
      artifactType: options.artifactType ?? "",
      depth: options.depth ?? 0,
    };
    return new Promise((resolve, reject) => {
      this.raw.discover(request, metadataless(), options.callOptions ?? {}, (err, res) =>
        err ? reject(SatchelError.from(err)) : resolve(res),
      );
    });
  }

  /** Resolves a tag or digest reference to its manifest descriptor. */
  resolve(reference: string, options: ResolveOptions = {}): Promise<ResolveResponse> {
    const request = { target: target(reference, options) };
    return new Promise((resolve, reject) => {
      this.raw.resolve(request, metadataless(), options.callOptions ?? {}, (err, res) =>
        err ? reject(SatchelError.from(err)) : resolve(res),
      );
    });
  }

  /**
   * The raw events of a Pull: the manifest, then per file a header, chunks,
   * progress and a done. Consuming it slowly slows the daemon down
   * (gRPC flow control); breaking out of the loop cancels the call.
   */
  async *pullStream(reference: string, options: PullStreamOptions = {}): AsyncGenerator<PullResponse> {
    const request: PullRequest = options.artifactType
      ? { subject: target(reference, options), artifactType: options.artifactType }
      : { target: target(reference, options), artifactType: "" };
    const call = this.raw.pull(request, options.callOptions ?? {});
    let finished = false;
    try {
      for await (const event of call as AsyncIterable<PullResponse>) {
        yield event;
      }
      finished = true;
    } catch (err) {
      finished = true;
      throw SatchelError.from(err);
    } finally {
      if (!finished) {
        // The consumer stopped early: cancel, and ignore the CANCELLED
        // status grpc-js then reports.
        call.on("error", () => undefined);
        call.cancel();
      }
    }
  }

  /**
   * Pulls an artifact's files into outputDir. Each file is written to a
   * temporary file next to its final name and renamed only once the daemon
   * has verified its digest; nothing is left under a final name on failure.
   */
  async pull(reference: string, options: PullOptions = {}): Promise<PullResult> {
    const outputDir = path.resolve(options.outputDir ?? ".");
    await mkdir(outputDir, { recursive: true });
    let manifest: PulledManifest | undefined;
    const files: PulledFile[] = [];
    let current: OpenFile | undefined;
    try {
      for await (const event of this.pullStream(reference, options)) {
        const payload = event.payload;
        if (!payload) continue;
        switch (payload.$case) {
          case "manifest":
            manifest = payload.manifest;
            break;
          case "file": {
            if (current) throw malformed(`file ${current.name} ended without a done message`);
            const descriptor = payload.file.layer;
            if (!descriptor) throw malformed(`file ${payload.file.name} has no descriptor`);
            current = await openFile(outputDir, payload.file.name, descriptor);
            break;
          }
          case "chunk":
            if (!current) throw malformed("file bytes before a file header");
            // Backpressure: the next message is read once the disk has these bytes.
            await writeChunk(current, payload.chunk);
            break;
          case "done": {
            if (!current) throw malformed("a done message before a file header");
            files.push(await finishFile(current, payload.done.digest));
            current = undefined;
            break;
          }
          case "progress":
            options.onProgress?.(payload.progress);
            break;
        }
      }
      if (current) throw malformed(`the stream ended inside file ${current.name}`);
      if (!manifest) throw malformed("the stream carried no manifest");
      return { manifest, files };
    } catch (err) {
      // Leaving the loop early has already cancelled the call (pullStream).
      if (current) await discard(current);
      throw SatchelError.from(err);
    }
  }
}

/** No metadata: the overloads with call options want a Metadata first. */
function metadataless(): Metadata {
  return new Metadata();
}

function target(reference: string, options: TargetOptions): Target {
  return {
    reference,
    ociLayout: options.ociLayout ?? "",
    plainHttp: options.plainHttp ?? false,
    referrersMode: options.referrersMode ?? ReferrersMode.REFERRERS_MODE_UNSPECIFIED,
  };
}

function artifactSpec(files: FileSpec[], options: PushOptions) {
  const config: ConfigSpec | undefined = options.config
    ? { mediaType: options.config.mediaType, data: asBuffer(options.config.data) }
    : undefined;
  return {
    artifactType: options.artifactType ?? "",
    annotations: { ...options.annotations },
    files,
    config,
    tags: options.tags ?? [],
  };
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Describes the files: name, media type, annotations and size, and for the
 * files hashFirst selects (see PushOptions.hashFirst) the sha256 digest, so
 * the daemon can verify the bytes and skip blobs the target already has.
 * The others go without a digest: the daemon hashes them as they arrive.
 */
async function fileSpecs(
  files: FileInput[],
  hashFirst: boolean | undefined,
): Promise<{ specs: FileSpec[]; paths: string[] }> {
  const specs: FileSpec[] = [];
  const paths: string[] = [];
  for (const input of files) {
    const file = typeof input === "string" ? { path: input } : input;
    const { size, digest } = await sizeAndDigest(file.path, hashFirst);
    specs.push({
      name: file.name ?? path.basename(file.path),
      mediaType: file.mediaType ?? "",
      size,
      digest,
      annotations: { ...file.annotations },
      fromContentStore: false,
    });
    paths.push(file.path);
  }
  return { specs, paths };
}

/**
 * The size of a regular file and, if hashFirst selects it, its digest
 * ("sha256:<hex>", else ""). The file is hashed by streaming it in chunks
 * of CHUNK_SIZE, never held in memory whole; the size is then the number
 * of bytes hashed, so size and digest describe the same bytes.
 */
async function sizeAndDigest(
  file: string,
  hashFirst: boolean | undefined,
): Promise<{ size: bigint; digest: string }> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new SatchelError(status.INVALID_ARGUMENT, `${file} is not a regular file`);
    if (!(hashFirst ?? info.size < HASH_FIRST_BELOW)) return { size: BigInt(info.size), digest: "" };
    const hash = createHash("sha256");
    let size = 0;
    const stream = createReadStream(file, { highWaterMark: CHUNK_SIZE });
    try {
      for await (const data of stream as AsyncIterable<Buffer>) {
        hash.update(data);
        size += data.length;
      }
    } finally {
      stream.destroy();
    }
    return { size: BigInt(size), digest: `sha256:${hash.digest("hex")}` };
  } catch (err) {
    throw SatchelError.from(err);
  }
}

/**
 * Sends the header and every file in chunks of at most CHUNK_SIZE, waiting
 * for 'drain' whenever grpc-js's buffer is full, while collecting the
 * daemon's progress events and result. Whatever stops the upload early (a
 * file that cannot be read, a throwing onProgress) cancels the call.
 */
async function upload<Req>(
  call: Upload<Req>,
  header: Req,
  paths: string[],
  chunk: (fileIndex: number, data: Buffer) => Req,
  onProgress?: (progress: Progress) => void,
): Promise<PushResult> {
  // Set once the call is over or abandoned: nothing more is sent then, and
  // `answer` says how it ended. Messages still buffered after the status
  // (the result, say) are read unless the call was abandoned.
  let over = false;
  let abandoned = false;
  const answer = new Promise<PushResult>((resolve, reject) => {
    let result: PushResult | undefined;
    call.on("data", (res: PushResponse | AttachResponse) => {
      if (abandoned) return;
      const event = res.event;
      try {
        if (event?.$case === "progress") onProgress?.(event.progress);
        else if (event?.$case === "result") result = event.result;
      } catch (err) {
        // The caller's callback failed: give up the call, report its error.
        over = abandoned = true;
        reject(SatchelError.from(err));
        call.cancel();
      }
    });
    call.on("error", (err) => {
      over = true;
      reject(SatchelError.from(err));
    });
    call.on("status", () => {
      over = true;
    });
    call.on("end", () => {
      over = true;
      if (result) resolve(result);
      else reject(malformed("the daemon ended the call without a result"));
    });
  });
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
  const send = async (msg: Req): Promise<boolean> => {
    if (over) return false;
    if (!call.write(msg)) await writable();
    return !over;
  };

  try {
    let sending = await send(header);
    for (const [index, file] of paths.entries()) {
      if (!sending) break;
      const stream = createReadStream(file, { highWaterMark: CHUNK_SIZE });
      try {
        for await (const data of stream as AsyncIterable<Buffer>) {
          if (!(sending = await send(chunk(index, data)))) break;
        }
      } finally {
        stream.destroy();
      }
    }
    if (sending) call.end();
  } catch (err) {
    // Our own failure (e.g. a file became unreadable): cancel the call.
    if (!over) {
      over = abandoned = true;
      call.cancel();
      throw SatchelError.from(err);
    }
  }
  return await answer;
}

interface OpenFile {
  name: string;
  finalPath: string;
  tempPath: string;
  handle: FileHandle;
  hash: Hash;
  size: number;
  descriptor: Descriptor;
}

/**
 * Checks a pulled file name and returns its path under outputDir. A name is
 * '/'-separated and relative; a backslash or NUL, and any empty, '.' or '..'
 * component, are refused with INVALID_ARGUMENT.
 */
export function safeJoin(outputDir: string, name: string): string {
  const parts = name.split("/");
  if (
    name.startsWith("/") ||
    name.includes("\\") ||
    name.includes("\0") ||
    parts.some((p) => p === "" || p === "." || p === "..")
  ) {
    throw new SatchelError(status.INVALID_ARGUMENT, `refusing file name ${JSON.stringify(name)}`);
  }
  return path.join(outputDir, ...parts);
}

/** The digest algorithms pull can verify. */
const DIGEST_ALGORITHMS = new Set(["sha256", "sha512"]);

let tempCounter = 0;

async function openFile(outputDir: string, name: string, descriptor: Descriptor): Promise<OpenFile> {
  const finalPath = safeJoin(outputDir, name);
  const algorithm = descriptor.digest.split(":", 1)[0]!;
  if (!DIGEST_ALGORITHMS.has(algorithm)) {
    throw new SatchelError(status.FAILED_PRECONDITION, `file ${name}: cannot verify digest ${descriptor.digest}`);
  }
  const dir = path.dirname(finalPath);
  await mkdir(dir, { recursive: true });
  const tempPath = path.join(dir, `.${path.basename(finalPath)}.${process.pid}.${++tempCounter}.partial`);
  const handle = await open(tempPath, "wx");
  return { name, finalPath, tempPath, handle, hash: createHash(algorithm), size: 0, descriptor };
}

/** Appends a chunk to the temporary file; a write error (ENOSPC...) rejects. */
async function writeChunk(file: OpenFile, data: Uint8Array): Promise<void> {
  file.hash.update(data);
  file.size += data.length;
  for (let offset = 0; offset < data.length; ) {
    const { bytesWritten } = await file.handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

/**
 * Checks the file against its header and the daemon's done, then moves it
 * to its final name. A mismatch is DATA_LOSS; the caller discards the file.
 */
async function finishFile(file: OpenFile, digest: string): Promise<PulledFile> {
  await file.handle.close();
  const want = file.descriptor;
  const got = `${want.digest.split(":", 1)[0]}:${file.hash.digest("hex")}`;
  if (digest !== want.digest || got !== want.digest || BigInt(file.size) !== want.size) {
    throw new SatchelError(
      status.DATA_LOSS,
      `file ${file.name}: expected ${want.digest} (${want.size} bytes), received ${got} (${file.size} bytes), ` +
        `the daemon verified ${digest || "nothing"}`,
    );
  }
  await rename(file.tempPath, file.finalPath);
  return { name: file.name, path: file.finalPath, descriptor: want };
}

/** Closes (if still open) and removes a temporary file. */
async function discard(file: OpenFile): Promise<void> {
  await file.handle.close().catch(() => undefined);
  await rm(file.tempPath, { force: true });
}

/** A stream that does not follow the API: the daemon's or the wire's fault. */
function malformed(message: string): SatchelError {
  return new SatchelError(status.INTERNAL, message);
}
