// The shared title vectors, clients/conformance/titles.json, read by a path
// relative to this file (compiled to dist/test/, so three levels up).

import { readFileSync } from "node:fs";
import * as path from "node:path";

export const VECTORS_PATH = path.resolve(__dirname, "..", "..", "..", "conformance", "titles.json");

export interface TitleVector {
  title: string;
  prefix?: string;
  repeat?: number;
  suffix?: string;
  why?: string;
}

export interface SetVector {
  titles: string[];
  why: string;
}

export interface PlantedVector {
  name: string;
  dirs?: string[];
  links: { path: string; to: string }[];
  title: string;
  expect: "replaced" | "refused";
}

export const VECTORS: {
  limits: { component_max_bytes: number; total_max_bytes: number };
  accept: TitleVector[];
  refuse: TitleVector[];
  conflicts: SetVector[];
  compatible: SetVector[];
  planted_links: PlantedVector[];
} = JSON.parse(readFileSync(VECTORS_PATH, "utf8"));

/** A vector's title: prefix + title * repeat + suffix. */
export function title(v: TitleVector): string {
  return (v.prefix ?? "") + v.title.repeat(v.repeat ?? 1) + (v.suffix ?? "");
}

/** A short, printable name for a vector. */
export function caseName(v: TitleVector | SetVector): string {
  let shown = JSON.stringify("titles" in v ? v.titles : title(v));
  if (shown.length > 40) shown = `${shown.slice(0, 37)}...`;
  return v.why ? `${shown} (${v.why})` : shown;
}
