// A thin, typed wrapper over the generated grpc-js client: file paths in,
// files on disk out, Promises for results and SatchelError for failures.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import * as path from "node:path";

import {
  type CallOptions,
  type ChannelCredentials,
  type ClientDuplexStream,
  type ClientOptions,
  credentials as grpcCredentials,
  Metadata,
  status,
} from "@grpc/grpc-js";

import { malformed, SatchelError } from "./errors";
import { pullInto } from "./pull";

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
import { checkTitle, checkTitles } from "./titles";

export { SatchelError };

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
 * When a call gives up. The first of callOptions.deadline, deadline and
 * timeoutMs (else the client's timeoutMs) applies; past it the call is
 * cancelled and fails with DEADLINE_EXCEEDED.
 */
export interface TimeoutOptions {
  /** The deadline: a Date or milliseconds since the epoch. */
  deadline?: Date | number;
  /** Milliseconds from the start of the call. */
  timeoutMs?: number;
  /** grpc-js call options. */
  callOptions?: Partial<CallOptions>;
}

/** Where the registry or layout is, and how to talk to it. */
export interface TargetOptions extends TimeoutOptions {
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
}

export interface AttachOptions extends PushOptions {
  artifactType: string;
}

export interface DiscoverOptions extends TargetOptions {
  /** Only referrers of this artifact type (first level). */
  artifactType?: string;
  /** Levels of referrers to return (0 and 1: direct referrers only). */
  depth?: number;
}

export type ResolveOptions = TargetOptions;

export interface PullStreamOptions extends TargetOptions {
  /**
   * Treat the reference as a subject and pull its newest attachment of this
   * artifact type.
   */
  artifactType?: string;
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
  /** The default timeout of every call in milliseconds (see TimeoutOptions); default: none. */
  timeoutMs?: number;
}

type Upload<Req> = ClientDuplexStream<Req, PushResponse | AttachResponse>;

/**
 * A client of satcheld. `address` is `unix:///path/to/satcheld.sock`,
 * `host:port` or `http://host:port`.
 */
export class SatchelClient {
  /** The generated grpc-js client, for the calls this class does not wrap. */
  readonly raw: SatchelServiceClient;
  /** The default timeout of every call in milliseconds, if any. */
  readonly timeoutMs?: number;

  constructor(address: string, options: SatchelClientOptions = {}) {
    this.timeoutMs = options.timeoutMs;
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

  /** grpc-js call options with the deadline TimeoutOptions pick. */
  private callOptions(options: TimeoutOptions): Partial<CallOptions> {
    const given = options.callOptions?.deadline ?? options.deadline;
    const ms = options.timeoutMs ?? this.timeoutMs;
    const deadline = given ?? (ms === undefined ? undefined : Date.now() + ms);
    return deadline === undefined ? { ...options.callOptions } : { ...options.callOptions, deadline };
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
    const callOptions = this.callOptions(options);
    const call = this.raw.push(callOptions);
    return upload<PushRequest>(call, deadlineMs(callOptions), header, paths, (fileIndex, data) => ({
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
    const callOptions = this.callOptions(options);
    const call = this.raw.attach(callOptions);
    return upload<AttachRequest>(call, deadlineMs(callOptions), header, paths, (fileIndex, data) => ({
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
    const callOptions = this.callOptions(options);
    return new Promise((resolve, reject) => {
      this.raw.discover(request, metadataless(), callOptions, (err, res) =>
        err ? reject(SatchelError.fromCall(err, deadlineMs(callOptions))) : resolve(res),
      );
    });
  }

  /** Resolves a tag or digest reference to its manifest descriptor. */
  resolve(reference: string, options: ResolveOptions = {}): Promise<ResolveResponse> {
    const request = { target: target(reference, options) };
    const callOptions = this.callOptions(options);
    return new Promise((resolve, reject) => {
      this.raw.resolve(request, metadataless(), callOptions, (err, res) =>
        err ? reject(SatchelError.fromCall(err, deadlineMs(callOptions))) : resolve(res),
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
    const callOptions = this.callOptions(options);
    const call = this.raw.pull(request, callOptions);
    let finished = false;
    try {
      for await (const event of call as AsyncIterable<PullResponse>) {
        yield event;
      }
      finished = true;
    } catch (err) {
      finished = true;
      throw SatchelError.fromCall(err, deadlineMs(callOptions));
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
    return pullInto(this.pullStream(reference, options), outputDir, options.onProgress);
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
  const inputs = files.map((input) => (typeof input === "string" ? { path: input } : input));
  // The titles first: a name the daemon would refuse fails before any file is read.
  checkTitles(inputs.map((file) => file.name ?? path.basename(file.path)));
  const specs: FileSpec[] = [];
  const paths: string[] = [];
  for (const file of inputs) {
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
  deadline: number | undefined,
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
      reject(SatchelError.fromCall(err, deadline));
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

/** A grpc-js deadline as milliseconds since the epoch, if there is one. */
function deadlineMs(options: Partial<CallOptions>): number | undefined {
  const d = options.deadline;
  return d === undefined ? undefined : d instanceof Date ? d.getTime() : d;
}

/**
 * Checks a pulled file name (see checkTitle) and returns its path under
 * outputDir; a bad name throws a SatchelError with INVALID_ARGUMENT.
 */
export function safeJoin(outputDir: string, name: string): string {
  return path.join(outputDir, ...checkTitle(name));
}
