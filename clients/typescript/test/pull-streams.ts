// The shared pull-stream transcripts, clients/conformance/pull_streams.json,
// and a parser for their messages: satchel.v1.PullResponse in protobuf's
// JSON mapping. The generated code has no JSON methods (buf.gen.yaml sets
// outputJsonMethods=false), so this maps the fields PullResponse has by the
// mapping's rules (lowerCamelCase names, 64-bit integers as decimal
// strings, bytes as base64) and refuses any field it does not know, then
// lets the generated fromPartial fill in the defaults.

import { readFileSync } from "node:fs";
import * as path from "node:path";

import type { Descriptor, PullResponse } from "../src/gen/satchel/v1/satchel";
import { PullResponse as PullResponseFns } from "../src/gen/satchel/v1/satchel";

export const PULL_STREAMS_PATH = path.resolve(__dirname, "..", "..", "..", "conformance", "pull_streams.json");

export interface PullStreamCase {
  name: string;
  why: string;
  messages: unknown[];
  end: { code: string; message?: string };
  expect: { code: string; files: Record<string, string>; dir_exists: boolean };
}

export const PULL_STREAMS: { streams: PullStreamCase[] } = JSON.parse(readFileSync(PULL_STREAMS_PATH, "utf8"));

type Json = Record<string, unknown>;

/** `value` as an object whose keys are all among `known`. */
function object(value: unknown, where: string, known: string[]): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${where}: not an object`);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new Error(`${where}: unknown field ${key}`);
  }
  return value as Json;
}

function str(value: unknown, where: string): string {
  if (value === undefined) return "";
  if (typeof value !== "string") throw new Error(`${where}: not a string`);
  return value;
}

/** A 64-bit integer: a decimal string (or a number) in the JSON mapping. */
function int64(value: unknown, where: string): bigint {
  if (value === undefined) return 0n;
  if (typeof value !== "string" && typeof value !== "number") throw new Error(`${where}: not an integer`);
  return BigInt(value);
}

/** Bytes: standard or URL-safe base64 in the JSON mapping. */
function bytes(value: unknown, where: string): Buffer {
  return Buffer.from(str(value, where), "base64");
}

function descriptor(value: unknown, where: string): Descriptor | undefined {
  if (value === undefined) return undefined;
  const d = object(value, where, ["mediaType", "digest", "size", "artifactType", "annotations"]);
  const annotations = object(d.annotations ?? {}, `${where}.annotations`, Object.keys(d.annotations ?? {}));
  return {
    mediaType: str(d.mediaType, `${where}.mediaType`),
    digest: str(d.digest, `${where}.digest`),
    size: int64(d.size, `${where}.size`),
    artifactType: str(d.artifactType, `${where}.artifactType`),
    annotations: Object.fromEntries(Object.entries(annotations).map(([k, v]) => [k, str(v, `${where}.annotations`)])),
  };
}

/** One PullResponse from its protobuf JSON mapping. */
export function pullResponseFromJson(json: unknown): PullResponse {
  const m = object(json, "PullResponse", ["manifest", "file", "chunk", "done", "progress"]);
  const cases = Object.keys(m);
  if (cases.length > 1) throw new Error(`PullResponse: more than one of the payload oneof: ${cases}`);
  let payload: PullResponse["payload"];
  if (m.manifest !== undefined) {
    const v = object(m.manifest, "manifest", ["manifest", "content", "reference"]);
    payload = {
      $case: "manifest",
      manifest: {
        manifest: descriptor(v.manifest, "manifest.manifest"),
        content: bytes(v.content, "manifest.content"),
        reference: str(v.reference, "manifest.reference"),
        localTicket: Buffer.alloc(0),
      },
    };
  } else if (m.file !== undefined) {
    const v = object(m.file, "file", ["name", "layer"]);
    payload = { $case: "file", file: { name: str(v.name, "file.name"), layer: descriptor(v.layer, "file.layer") } };
  } else if (m.chunk !== undefined) {
    payload = { $case: "chunk", chunk: bytes(m.chunk, "chunk") };
  } else if (m.done !== undefined) {
    const v = object(m.done, "done", ["digest"]);
    payload = { $case: "done", done: { digest: str(v.digest, "done.digest") } };
  } else if (m.progress !== undefined) {
    const v = object(m.progress, "progress", ["name", "done", "total"]);
    payload = {
      $case: "progress",
      progress: { name: str(v.name, "progress.name"), done: int64(v.done, "p.done"), total: int64(v.total, "p.total") },
    };
  }
  return PullResponseFns.fromPartial({ payload });
}
