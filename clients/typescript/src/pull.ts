// The Pull stream written to disk: every title checked before the first
// byte, each file checked against the manifest, hashed as it arrives and
// moved to its final name only after the daemon's done and a local check.
// A directory layer (io.deis.oras.content.unpack) is received the same way
// into a scratch file beside its final name, then unpacked (./unpack) and
// the scratch file removed.

import { createHash, type Hash } from "node:crypto";
import { mkdir } from "node:fs/promises";

import { status } from "@grpc/grpc-js";

import type { PulledFile, PullResult } from "./client";
import { malformed, SatchelError } from "./errors";
import { PartialFile } from "./files";
import type { Descriptor, FileHeader, Progress, PulledManifest, PullResponse } from "./gen/satchel/v1/satchel";
import { checkTitle, expectedFiles } from "./titles";
import { isDirectoryLayer, unpack } from "./unpack";

/** The digest algorithms pull can verify. */
const DIGEST_ALGORITHMS = new Set(["sha256", "sha512"]);

/** A file on its way: its partial file, hash and size so far. */
class Receiving {
  private readonly hash: Hash;
  private size = 0;

  private constructor(
    readonly name: string,
    readonly descriptor: Descriptor,
    readonly file: PartialFile,
    algorithm: string,
    /** Where a directory layer is unpacked; undefined for a file. */
    private readonly unpackInto: string | undefined,
  ) {
    this.hash = createHash(algorithm);
  }

  static async start(outputDir: string, header: FileHeader, expected: Map<string, string>): Promise<Receiving> {
    const { name, layer } = header;
    const parts = checkTitle(name);
    if (!layer) throw malformed(`file ${JSON.stringify(name)} has no descriptor`);
    const want = expected.get(name);
    if (want === undefined) {
      throw malformed(`the daemon sent ${JSON.stringify(name)}, which the manifest names not or only once`);
    }
    expected.delete(name);
    if (layer.digest !== want) {
      throw malformed(`file ${JSON.stringify(name)}: the daemon sent ${layer.digest}, the manifest names ${want}`);
    }
    const algorithm = layer.digest.split(":", 1)[0]!;
    if (!DIGEST_ALGORITHMS.has(algorithm)) {
      throw new SatchelError(status.FAILED_PRECONDITION, `file ${name}: cannot verify digest ${layer.digest}`);
    }
    const directory = isDirectoryLayer(layer);
    const file = await PartialFile.create(outputDir, parts, { scratch: directory });
    return new Receiving(name, layer, file, algorithm, directory ? outputDir : undefined);
  }

  async write(data: Uint8Array): Promise<void> {
    this.hash.update(data);
    this.size += data.length;
    await this.file.write(data);
  }

  /** Checks the file against its header and the daemon's done, then commits it (a directory layer: unpacks it). */
  async finish(digest: string): Promise<PulledFile> {
    const want = this.descriptor;
    const got = `${want.digest.split(":", 1)[0]}:${this.hash.digest("hex")}`;
    if (digest !== want.digest || got !== want.digest || BigInt(this.size) !== want.size) {
      await this.file.discard();
      throw new SatchelError(
        status.DATA_LOSS,
        `file ${this.name}: expected ${want.digest} (${want.size} bytes), received ${got} (${this.size} bytes), ` +
          `the daemon verified ${digest || "nothing"}`,
      );
    }
    if (this.unpackInto === undefined) {
      await this.file.commit();
      return { name: this.name, path: this.file.finalPath, descriptor: want };
    }
    // The archive checked out: the directory is made from it, and the
    // archive removed either way.
    try {
      await this.file.close();
      const path = await unpack(this.file.tempPath, this.unpackInto, this.name, want);
      return { name: this.name, path, descriptor: want };
    } finally {
      await this.file.discard();
    }
  }
}

/**
 * The pull state machine: writes the files of a Pull stream (any async
 * iterable of PullResponse, the daemon's call or a recorded answer) into
 * outputDir, which it makes (with its parents) when the first file header
 * arrives, not before. A stream that breaks the protocol is INTERNAL, a
 * file whose bytes do not match its layer DATA_LOSS, an error the iterable
 * throws passes through. Leaving early (any throw) cancels the call through
 * the iterator's return.
 */
export async function pullInto(
  events: AsyncIterable<PullResponse>,
  outputDir: string,
  onProgress?: (progress: Progress) => void,
  verifying = false,
): Promise<PullResult> {
  let manifest: PulledManifest | undefined;
  let expected = new Map<string, string>();
  const files: PulledFile[] = [];
  let current: Receiving | undefined;
  try {
    for await (const event of events) {
      const payload = event.payload;
      if (!payload) continue;
      switch (payload.$case) {
        case "manifest":
          if (manifest) throw malformed("the daemon sent a second manifest");
          // Keys were sent: a daemon older than Verify ignores them.
          if (verifying && !payload.manifest.signature) {
            throw new SatchelError(
              status.FAILED_PRECONDITION,
              "the daemon did not verify the artifact although keys were given (a satcheld older than Verify?); nothing was written",
            );
          }
          manifest = payload.manifest;
          expected = expectedFiles(manifest.content, manifest.manifest?.digest ?? "");
          break;
        case "file":
          if (!manifest) throw malformed("a file started before the manifest");
          if (current) throw malformed(`file ${current.name} ended without a done message`);
          await mkdir(outputDir, { recursive: true });
          current = await Receiving.start(outputDir, payload.file, expected);
          break;
        case "chunk":
          if (!current) throw malformed("file bytes before a file header");
          // Backpressure: the next message is read once the disk has these bytes.
          await current.write(payload.chunk);
          break;
        case "done": {
          if (!current) throw malformed("a done message before a file header");
          const done = current;
          current = undefined;
          files.push(await done.finish(payload.done.digest));
          break;
        }
        case "progress":
          onProgress?.(payload.progress);
          break;
      }
    }
    if (current) throw malformed(`the stream ended inside file ${current.name}`);
    if (!manifest) throw malformed("the stream carried no manifest");
    return { manifest, files };
  } catch (err) {
    if (current) await current.file.discard();
    throw SatchelError.from(err);
  }
}
