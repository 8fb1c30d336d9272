// A thin, typed wrapper over the generated grpc-js client: file paths in,
// files on disk out, Promises for results and SatchelError for failures.

import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
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
 * A failed call. `code` is the gRPC status code: the daemon's, or one this
 * client chose for a failure it detected itself (INVALID_ARGUMENT for a bad
 * file name, DATA_LOSS for a broken pull stream...).
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
 * A client of satcheld. `address` is `unix:///path/to/satcheld.sock` or
 * `host:port`.
 */
export class SatchelClient {
  /** The generated grpc-js client, for the calls this class does not wrap. */
  readonly raw: SatchelServiceClient;

  constructor(address: string, options: SatchelClientOptions = {}) {
    const creds = options.credentials ?? grpcCredentials.createInsecure();
    this.raw = new SatchelServiceClient(address, creds, options.channelOptions);
  }

  /** Closes the channel. */
  close(): void {
    this.raw.close();
  }

  /** Pushes files as a standalone artifact; a tag in the reference tags it. */
  async push(reference: string, files: FileInput[], options: PushOptions = {}): Promise<PushResult> {
    const { specs, paths } = await fileSpecs(files);
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

  /** Pushes files as an artifact that refers to the subject manifest. */
  async attach(subject: string, files: FileInput[], options: AttachOptions): Promise<PushResult> {
    const { specs, paths } = await fileSpecs(files);
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
            if (current) throw broken(`file ${current.name} ended without a done message`);
            const descriptor = payload.file.layer;
            if (!descriptor) throw broken(`file ${payload.file.name} has no descriptor`);
            current = await openFile(outputDir, payload.file.name, descriptor);
            break;
          }
          case "chunk":
            if (!current) throw broken("file bytes before a file header");
            current.hash.update(payload.chunk);
            current.size += payload.chunk.length;
            // Backpressure: wait for the disk before asking for more.
            if (!current.stream.write(payload.chunk)) await drained(current.stream);
            break;
          case "done": {
            if (!current) throw broken("a done message before a file header");
            files.push(await finishFile(current, payload.done.digest));
            current = undefined;
            break;
          }
          case "progress":
            options.onProgress?.(payload.progress);
            break;
        }
      }
      if (current) throw broken(`the stream ended inside file ${current.name}`);
      if (!manifest) throw broken("the stream carried no manifest");
      return { manifest, files };
    } catch (err) {
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

async function fileSpecs(files: FileInput[]): Promise<{ specs: FileSpec[]; paths: string[] }> {
  const specs: FileSpec[] = [];
  const paths: string[] = [];
  for (const input of files) {
    const file = typeof input === "string" ? { path: input } : input;
    let info;
    try {
      info = await stat(file.path);
    } catch (err) {
      throw SatchelError.from(err);
    }
    if (!info.isFile()) throw new SatchelError(status.INVALID_ARGUMENT, `${file.path} is not a regular file`);
    specs.push({
      name: file.name ?? path.basename(file.path),
      mediaType: file.mediaType ?? "",
      size: BigInt(info.size),
      // Left empty: the daemon computes it while the bytes stream through.
      digest: "",
      annotations: { ...file.annotations },
      fromContentStore: false,
    });
    paths.push(file.path);
  }
  return { specs, paths };
}

/**
 * Sends the header and every file in chunks of at most CHUNK_SIZE, waiting
 * for 'drain' whenever grpc-js's buffer is full, while collecting the
 * daemon's progress events and result.
 */
async function upload<Req>(
  call: Upload<Req>,
  header: Req,
  paths: string[],
  chunk: (fileIndex: number, data: Buffer) => Req,
  onProgress?: (progress: Progress) => void,
): Promise<PushResult> {
  let failure: unknown;
  const answer = new Promise<PushResult>((resolve, reject) => {
    let result: PushResult | undefined;
    call.on("data", (res: PushResponse | AttachResponse) => {
      const event = res.event;
      if (event?.$case === "progress") onProgress?.(event.progress);
      else if (event?.$case === "result") result = event.result;
    });
    call.on("error", (err) => {
      failure = err;
      reject(SatchelError.from(err));
    });
    call.on("end", () => {
      if (result) resolve(result);
      else reject(broken("the daemon ended the call without a result"));
    });
  });
  // A rejection is handled by the await at the end; keep Node from calling
  // it unhandled while the files are still being sent.
  answer.catch(() => undefined);

  // Resolves on 'drain'; rejects if the call fails first.
  const writable = () =>
    new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        call.off("error", onError);
        resolve();
      };
      const onError = (err: unknown) => {
        call.off("drain", onDrain);
        reject(err);
      };
      call.once("drain", onDrain);
      call.once("error", onError);
    });
  const send = async (msg: Req) => {
    if (failure !== undefined) throw failure;
    if (!call.write(msg)) await writable();
  };

  try {
    await send(header);
    for (const [index, file] of paths.entries()) {
      const stream = createReadStream(file, { highWaterMark: CHUNK_SIZE });
      try {
        for await (const data of stream as AsyncIterable<Buffer>) {
          await send(chunk(index, data));
        }
      } finally {
        stream.destroy();
      }
    }
    call.end();
  } catch (err) {
    // Our own failure (e.g. a file became unreadable): cancel the call. A
    // failure of the call itself is reported by the answer below.
    if (failure === undefined) {
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
  stream: WriteStream;
  hash: ReturnType<typeof createHash>;
  size: number;
  descriptor: Descriptor;
}

/** Checks a pulled file name and returns its path under outputDir. */
export function safeJoin(outputDir: string, name: string): string {
  const parts = name.split(/[\\/]/);
  if (name === "" || path.isAbsolute(name) || path.win32.isAbsolute(name) || parts.includes("..")) {
    throw new SatchelError(status.INVALID_ARGUMENT, `refusing file name ${JSON.stringify(name)}`);
  }
  const resolved = path.resolve(outputDir, name);
  const rel = path.relative(outputDir, resolved);
  if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) {
    throw new SatchelError(status.INVALID_ARGUMENT, `refusing file name ${JSON.stringify(name)}`);
  }
  return resolved;
}

let tempCounter = 0;

async function openFile(outputDir: string, name: string, descriptor: Descriptor): Promise<OpenFile> {
  const finalPath = safeJoin(outputDir, name);
  const dir = path.dirname(finalPath);
  await mkdir(dir, { recursive: true });
  const tempPath = path.join(dir, `.${path.basename(finalPath)}.${process.pid}.${++tempCounter}.partial`);
  const stream = createWriteStream(tempPath, { flags: "wx" });
  await once(stream, "open");
  return { name, finalPath, tempPath, stream, hash: createHash("sha256"), size: 0, descriptor };
}

async function finishFile(file: OpenFile, digest: string): Promise<PulledFile> {
  const closed = once(file.stream, "close");
  file.stream.end();
  await closed; // 'close' follows 'finish'; once() rejects on 'error'
  if (digest !== file.descriptor.digest) {
    throw broken(`file ${file.name}: done names ${digest}, the header ${file.descriptor.digest}`);
  }
  // The daemon verified the bytes it sent; check that they arrived intact.
  if (digest.startsWith("sha256:")) {
    const got = `sha256:${file.hash.digest("hex")}`;
    if (got !== digest) throw broken(`file ${file.name}: received bytes hash to ${got}, expected ${digest}`);
  }
  if (BigInt(file.size) !== file.descriptor.size) {
    throw broken(`file ${file.name}: received ${file.size} bytes, expected ${file.descriptor.size}`);
  }
  await rename(file.tempPath, file.finalPath);
  return { name: file.name, path: file.finalPath, descriptor: file.descriptor };
}

async function discard(file: OpenFile): Promise<void> {
  file.stream.destroy();
  await rm(file.tempPath, { force: true });
}

function drained(stream: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      stream.off("error", onError);
      resolve();
    };
    const onError = (err: Error) => {
      stream.off("drain", onDrain);
      reject(err);
    };
    stream.once("drain", onDrain);
    stream.once("error", onError);
  });
}

function broken(message: string): SatchelError {
  return new SatchelError(status.DATA_LOSS, message);
}
