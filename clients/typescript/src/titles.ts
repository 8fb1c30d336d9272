// Which file names a pull may write: the rules of
// clients/conformance/titles.json, shared by every Satchel client and the
// daemon. A title (a layer's org.opencontainers.image.title) becomes a path
// under the directory the caller named.

import { createHash } from "node:crypto";

import { status } from "@grpc/grpc-js";

import { malformed, SatchelError } from "./errors";

/** The longest path component, in UTF-8 bytes (NAME_MAX). */
export const COMPONENT_MAX_BYTES = 255;
/** The longest title, in UTF-8 bytes (PATH_MAX). */
export const TOTAL_MAX_BYTES = 4096;

export const TITLE_ANNOTATION = "org.opencontainers.image.title";

function refuse(title: string, why: string): SatchelError {
  // JSON escapes control characters, so a hostile title cannot drive a
  // terminal through the message.
  const shown = JSON.stringify(title.length > 200 ? `${title.slice(0, 200)}...` : title);
  return new SatchelError(status.INVALID_ARGUMENT, `refusing file name ${shown}: ${why}`);
}

/**
 * Checks one title on its own and returns its components. A title is
 * '/'-separated and relative, with no empty, '.' or '..' component, no
 * backslash, NUL or other control character (C0 or DEL), at most
 * COMPONENT_MAX_BYTES per component and TOTAL_MAX_BYTES in all. Anything
 * else throws a SatchelError with INVALID_ARGUMENT.
 */
export function checkTitle(title: string): string[] {
  if (typeof title !== "string") throw refuse(String(title), "not a string");
  if (title === "") throw refuse(title, "empty");
  // A lone surrogate has no UTF-8 form: the round trip changes it.
  if (Buffer.from(title, "utf8").toString("utf8") !== title) throw refuse(title, "not valid UTF-8");
  if (Buffer.byteLength(title, "utf8") > TOTAL_MAX_BYTES) throw refuse(title, `longer than ${TOTAL_MAX_BYTES} bytes`);
  if (title.startsWith("/")) throw refuse(title, "absolute");
  if (title.includes("\\")) throw refuse(title, "contains a backslash");
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(title)) throw refuse(title, "contains a control character");
  const parts = title.split("/");
  for (const part of parts) {
    if (part === "" || part === "." || part === "..") throw refuse(title, "has an empty, '.' or '..' component");
    if (Buffer.byteLength(part, "utf8") > COMPONENT_MAX_BYTES) {
      throw refuse(title, `has a component longer than ${COMPONENT_MAX_BYTES} bytes`);
    }
  }
  return parts;
}

/**
 * Checks every title of one artifact, each on its own and against the
 * others: no two may name one file, and none may be a directory of
 * another. Throws a SatchelError with INVALID_ARGUMENT.
 */
export function checkTitles(titles: Iterable<string>): void {
  const files = new Set<string>();
  const dirs = new Set<string>();
  for (const title of titles) {
    const parts = checkTitle(title);
    if (files.has(title)) throw refuse(title, "two layers write this file");
    if (dirs.has(title)) throw refuse(title, "another title makes it a directory");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (files.has(parent)) throw refuse(title, `${JSON.stringify(parent)} is a file of this artifact`);
      dirs.add(parent);
    }
    files.add(title);
  }
}

/**
 * The files a pulled manifest names, title to layer digest, after checking
 * the content against the manifest's digest (DATA_LOSS) and every title
 * against the rules and each other (INVALID_ARGUMENT). Content that is not
 * an image manifest is INTERNAL.
 */
export function expectedFiles(content: Uint8Array, digest: string): Map<string, string> {
  const algorithm = digest.split(":", 1)[0]!;
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    throw new SatchelError(status.FAILED_PRECONDITION, `manifest: cannot verify digest ${digest}`);
  }
  const got = `${algorithm}:${createHash(algorithm).update(content).digest("hex")}`;
  if (got !== digest) throw new SatchelError(status.DATA_LOSS, `manifest content is ${got}, not ${digest}`);
  const layers: [string, string][] = [];
  try {
    const manifest = JSON.parse(Buffer.from(content).toString("utf8"));
    for (const layer of manifest.layers ?? []) {
      const title = layer.annotations?.[TITLE_ANNOTATION];
      if (title === undefined) continue;
      if (typeof title !== "string" || typeof layer.digest !== "string") throw new Error("a layer is malformed");
      layers.push([title, layer.digest]);
    }
  } catch (err) {
    throw malformed(`the pulled manifest is malformed: ${err instanceof Error ? err.message : err}`);
  }
  checkTitles(layers.map(([title]) => title));
  return new Map(layers);
}
