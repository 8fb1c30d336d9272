// A thin, typed wrapper over the generated grpc-js client: file paths in,
// files on disk out, Promises for results and SatchelError for failures.

import { readFile } from "node:fs/promises";
import * as path from "node:path";

import {
  type CallOptions,
  type ChannelCredentials,
  type ClientOptions,
  type ClientReadableStream,
  credentials as grpcCredentials,
  Metadata,
  status,
} from "@grpc/grpc-js";

import { malformed, SatchelError } from "./errors";
import {
  type ArtifactSpec,
  type ConfigSpec,
  type Descriptor,
  type DiscoverResponse,
  type FileSpec,
  type Progress,
  type PulledManifest,
  type PullRequest,
  type PullResponse,
  type PushResult,
  ReferrersMode,
  type ResolveResponse,
  SatchelServiceClient,
  type ServerInfoResponse,
  type Target,
  type VerifyResponse,
  type WatchReferrersResponse,
} from "./gen/satchel/v1/satchel";
import {
  CLIENT_RECEIVE_LIMIT_BYTES,
  FLOW_CONTROL_WINDOW_BYTES,
  grpcTarget,
  SERVER_INFO_DEFAULTS,
} from "./limits";
import { pullInto } from "./pull";
import { type FileInput, fileSpecs, localFiles, removeArchives, type Upload, upload, uploadPaths } from "./push";
import { checkTitle } from "./titles";

export { type FileInput, SatchelError };

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
  /** os[/arch[/variant]][:os_version]: when the reference names an index, act on that platform's manifest. */
  platform?: string;
}

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
   * - undefined (the default): hash files smaller than the daemon's
   *   ServerInfo hashFirstBelow (256 MiB by default); larger ones are sent with their size only, read once, and
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
  /**
   * Say of each direct referrer whether it verifies (its verification
   * field), under verifyKeys, or the daemon's policy when none are given.
   */
  verify?: boolean;
  /** PEM public keys to verify under (see KeySource); implies verify. */
  verifyKeys?: KeySource[];
}

export type ResolveOptions = TargetOptions;

export interface PullStreamOptions extends TargetOptions {
  /**
   * Treat the reference as a subject and pull its newest attachment of this
   * artifact type.
   */
  artifactType?: string;
  /**
   * PEM public keys (their bytes, or paths of PEM files): pull only what
   * one of them signed (cosign); with artifactType, the newest attachment
   * that verifies. When none does, nothing is written. The result's
   * manifest.signature names what verified it.
   */
  verifyKeys?: KeySource[];
}

/** A public key: its PEM bytes, or the path of a PEM file. */
export type KeySource = Uint8Array | string;

export interface VerifyOptions extends TargetOptions {
  /** PEM public keys (see KeySource); none: the daemon's policy names them. */
  keys?: KeySource[];
}

export interface PullOptions extends PullStreamOptions {
  /** The directory to write files into; default: the current directory. */
  outputDir?: string;
  onProgress?: (progress: Progress) => void;
}

/** A file (or unpacked directory) written by pull. */
export interface PulledFile {
  /** The name from the layer's title annotation. */
  name: string;
  /** Where it was written (a directory layer: the directory). */
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

/**
 * A client of satcheld. `address` is `unix:///path/to/satcheld.sock`, a
 * bare absolute path (a Unix socket), `host:port` or `http://host:port`;
 * empty or left out, it is $SATCHEL_ADDR when that is set and not empty,
 * else the daemon's default socket (see defaultAddress).
 */
export class SatchelClient {
  /** The generated grpc-js client, for the calls this class does not wrap. */
  readonly raw: SatchelServiceClient;
  /** The default timeout of every call in milliseconds, if any. */
  readonly timeoutMs?: number;
  /** The daemon's ServerInfo, asked once (see serverInfo). */
  private info?: Promise<ServerInfoResponse>;

  constructor(address?: string, options: SatchelClientOptions = {}) {
    this.timeoutMs = options.timeoutMs;
    const creds = options.credentials ?? grpcCredentials.createInsecure();
    this.raw = new SatchelServiceClient(grpcTarget(address), creds, {
      "grpc.max_receive_message_length": CLIENT_RECEIVE_LIMIT_BYTES,
      "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
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
   * The daemon's version and limits: the largest chunk it accepts (push
   * sends chunks of that size), its largest message, and the size below
   * which push and attach hash a file first. Asked once per client, on
   * first use, and cached; a daemon too old to answer (UNIMPLEMENTED) is
   * taken to have SERVER_INFO_DEFAULTS (with version ""). Any other
   * failure is not cached: the next call asks again.
   */
  serverInfo(options: TimeoutOptions = {}): Promise<ServerInfoResponse> {
    return this.askServerInfo(this.callOptions(options));
  }

  private askServerInfo(callOptions: Partial<CallOptions>): Promise<ServerInfoResponse> {
    if (this.info) return this.info;
    const asked = new Promise<ServerInfoResponse>((resolve, reject) => {
      this.raw.serverInfo({}, metadataless(), callOptions, (err, res) =>
        err ? reject(SatchelError.fromCall(err, deadlineMs(callOptions))) : resolve(res),
      );
    }).then(usable, (err: SatchelError) => {
      if (err.code === status.UNIMPLEMENTED) return { version: "", contentStore: false, ...SERVER_INFO_DEFAULTS };
      throw err;
    });
    this.info = asked;
    asked.catch(() => {
      if (this.info === asked) this.info = undefined;
    });
    return asked;
  }

  /**
   * Pushes files as a standalone artifact; a tag in the reference tags it.
   * Each file is streamed from disk in chunks of the daemon's
   * maxChunkBytes; files under its hashFirstBelow are hashed first (see
   * PushOptions.hashFirst), so blobs the target already has are not
   * uploaded again. The result's `blobsSkipped` counts those. A
   * directory is packed as the ORAS CLI packs one (a tar+gzip layer that
   * pull unpacks; see DIRECTORY_MEDIA_TYPE), into a temporary file removed
   * after the call. A missing path (or one that is neither a regular file
   * nor a directory) is INVALID_ARGUMENT, before any call.
   */
  async push(reference: string, files: FileInput[], options: PushOptions = {}): Promise<PushResult> {
    return this.upload(files, options, (callOptions) => this.raw.push(callOptions), (artifact) => ({
      target: target(reference, options),
      artifact,
    }));
  }

  /**
   * Pushes files as an artifact that refers to the subject manifest. Files
   * are sent as by push (hashed first by the same policy); `blobsSkipped`
   * in the result counts the blobs the target already had.
   */
  async attach(subject: string, files: FileInput[], options: AttachOptions): Promise<PushResult> {
    return this.upload(files, options, (callOptions) => this.raw.attach(callOptions), (artifact) => ({
      subject: target(subject, options),
      artifact,
    }));
  }

  /**
   * Push and attach: checks and describes the files (asking the daemon's
   * limits), then sends header(artifact) and the files' chunks on the call
   * that open starts; the archives of packed directories are removed at
   * the end, whatever the outcome.
   */
  private async upload<Header>(
    files: FileInput[],
    options: PushOptions,
    open: (callOptions: Partial<CallOptions>) => Upload<Header>,
    header: (artifact: ArtifactSpec) => Header,
  ): Promise<PushResult> {
    const local = await localFiles(files);
    try {
      const callOptions = this.callOptions(options);
      const info = await this.askServerInfo(callOptions);
      const specs = await fileSpecs(local, options.hashFirst, info.hashFirstBelow, info.maxChunkBytes);
      const first = header(artifactSpec(specs, options));
      const call = open(callOptions);
      const paths = uploadPaths(local);
      return await upload(call, deadlineMs(callOptions), first, paths, info.maxChunkBytes, options.onProgress);
    } finally {
      await removeArchives(local);
    }
  }

  /** Lists the referrers of a subject manifest. */
  async discover(subject: string, options: DiscoverOptions = {}): Promise<DiscoverResponse> {
    const verifyKeys = await pems(options.verifyKeys ?? []);
    const request = {
      subject: target(subject, options),
      artifactType: options.artifactType ?? "",
      depth: options.depth ?? 0,
      verify: (options.verify ?? false) || verifyKeys.length > 0,
      verifyKeys,
    };
    const callOptions = this.callOptions(options);
    return new Promise((resolve, reject) => {
      this.raw.discover(request, metadataless(), callOptions, (err, res) =>
        err ? reject(SatchelError.fromCall(err, deadlineMs(callOptions))) : resolve(res),
      );
    });
  }

  /**
   * Watches the referrers of a subject manifest (those of
   * options.artifactType, when set): yields the current set first
   * (`current`), then each referrer that `appeared` or `disappeared`, and
   * the whole set again, with `resync` set, when the watcher fell behind.
   * Runs until the consumer breaks out of the loop, which cancels the call;
   * no default deadline applies.
   */
  async *watchReferrers(subject: string, options: DiscoverOptions = {}): AsyncGenerator<WatchReferrersResponse> {
    const request = { subject: target(subject, options), artifactType: options.artifactType ?? "" };
    const callOptions = { ...options.callOptions, ...(options.deadline ? { deadline: options.deadline } : {}) };
    yield* cancelling<WatchReferrersResponse>(this.raw.watchReferrers(request, callOptions), callOptions);
  }

  /**
   * Checks that the manifest `reference` names is signed (by cosign) under
   * one of options.keys, or the keys the daemon's policy trusts for it. A
   * refusal is a SatchelError: FAILED_PRECONDITION when nothing checkable is
   * there (unsigned, not a bundle, no key), PERMISSION_DENIED when a
   * signature is there but not acceptable (another key, altered bytes, a
   * signature of another digest).
   */
  async verify(reference: string, options: VerifyOptions = {}): Promise<VerifyResponse> {
    const request = { target: target(reference, options), keys: await pems(options.keys ?? []) };
    const callOptions = this.callOptions(options);
    return new Promise((resolve, reject) => {
      this.raw.verify(request, metadataless(), callOptions, (err, res) =>
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
    const verifyKeys = await pems(options.verifyKeys ?? []);
    const request: PullRequest = options.artifactType
      ? { subject: target(reference, options), artifactType: options.artifactType, localFiles: false, verifyKeys }
      : { target: target(reference, options), artifactType: "", localFiles: false, verifyKeys };
    const callOptions = this.callOptions(options);
    yield* cancelling<PullResponse>(this.raw.pull(request, callOptions), callOptions);
  }

  /**
   * Pulls an artifact's files into outputDir. Each file is written to a
   * temporary file next to its final name and renamed only once the daemon
   * has verified its digest; nothing is left under a final name on failure.
   * A directory layer (io.deis.oras.content.unpack "true") is unpacked
   * into the directory its title names, replacing what stood there (see
   * unpack).
   * outputDir (made if missing) is made only when the first file starts: a
   * pull that fails before, or an artifact without files, leaves no
   * directory behind.
   */
  async pull(reference: string, options: PullOptions = {}): Promise<PullResult> {
    const outputDir = path.resolve(options.outputDir ?? ".");
    const verifying = (options.verifyKeys ?? []).length > 0;
    return pullInto(this.pullStream(reference, options), outputDir, options.onProgress, verifying);
  }

  /**
   * Pulls the newest artifact of artifactType attached to the subject
   * manifest, in one call (like `satchel pull --subject REF --artifact-type
   * T`); the same as pull(subject, { ...options, artifactType }). No
   * attachment of that type is NOT_FOUND.
   */
  async pullAttachment(subject: string, artifactType: string, options: PullOptions = {}): Promise<PullResult> {
    if (!artifactType) throw new SatchelError(status.INVALID_ARGUMENT, "pullAttachment needs an artifact type");
    return this.pull(subject, { ...options, artifactType });
  }
}

/** A ServerInfo answer checked to be one push can work with. */
function usable(info: ServerInfoResponse): ServerInfoResponse {
  if (info.maxChunkBytes <= 0) throw malformed(`the daemon's ServerInfo names a chunk of ${info.maxChunkBytes} bytes`);
  return info;
}

/** The PEM bytes of keys; a path that cannot be read is INVALID_ARGUMENT. */
async function pems(keys: KeySource[]): Promise<Buffer[]> {
  return Promise.all(
    keys.map(async (key) => {
      if (typeof key !== "string") return Buffer.from(key);
      try {
        return await readFile(key);
      } catch (e) {
        throw new SatchelError(status.INVALID_ARGUMENT, `cannot read the key ${key}: ${(e as Error).message}`);
      }
    }),
  );
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
    platform: options.platform ?? "",
  };
}

function artifactSpec(files: FileSpec[], options: PushOptions): ArtifactSpec {
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

/** A grpc-js deadline as milliseconds since the epoch, if there is one. */
function deadlineMs(options: Partial<CallOptions>): number | undefined {
  const d = options.deadline;
  return d === undefined ? undefined : d instanceof Date ? d.getTime() : d;
}

/**
 * The messages of a server-streaming call; a failure is a SatchelError. A
 * consumer that stops early cancels the call (the CANCELLED status grpc-js
 * then reports is ignored).
 */
async function* cancelling<T>(
  call: ClientReadableStream<T>,
  callOptions: Partial<CallOptions>,
): AsyncGenerator<T> {
  let finished = false;
  try {
    for await (const event of call as AsyncIterable<T>) {
      yield event;
    }
    finished = true;
  } catch (err) {
    finished = true;
    throw SatchelError.fromCall(err, deadlineMs(callOptions));
  } finally {
    if (!finished) {
      call.on("error", () => undefined);
      call.cancel();
    }
  }
}

/**
 * Checks a pulled file name (see checkTitle) and returns its path under
 * outputDir; a bad name throws a SatchelError with INVALID_ARGUMENT.
 */
export function safeJoin(outputDir: string, name: string): string {
  return path.join(outputDir, ...checkTitle(name));
}
