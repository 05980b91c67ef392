/**
 * Argument checks of the exported trace helpers (readTextTrace, readTrace, parseTraceText,
 * placePages): each throws a TypeError or RangeError naming the argument and the value.
 */

import { describeValue } from "../util/describe.js";

/** A value as an error message shows it (a long string cut after 40 characters). */
export function describe(v: unknown): string {
  return describeValue(v, 40);
}

/** A file path argument: a non-empty string (a number would be taken for a file descriptor). */
export function checkPath(path: unknown, name = "path"): string {
  if (typeof path !== "string") throw new TypeError(`${name} must be a file path (a string), got ${describe(path)}`);
  if (path === "") throw new RangeError(`${name} must be a file path, got "" (empty)`);
  return path;
}

/** The read options `{ limit }` of readTextTrace/readTrace; returns the limit (Infinity: none). */
export function checkReadOptions(opts: unknown): number {
  if (opts === undefined) return Infinity;
  if (opts === null || typeof opts !== "object" || Array.isArray(opts)) {
    throw new TypeError(`opts must be an object ({ limit?: number }), got ${describe(opts)}`);
  }
  for (const k of Object.keys(opts)) if (k !== "limit") throw new TypeError(`opts.${k} is not a read option (known: limit)`);
  const limit = (opts as { limit?: unknown }).limit;
  if (limit === undefined || limit === Infinity) return Infinity;
  if (typeof limit !== "number" || !Number.isInteger(limit)) {
    throw new TypeError(`opts.limit must be an integer (the most accesses to read), got ${describe(limit)}`);
  }
  if (limit < 0) throw new RangeError(`opts.limit must be at least 0 (the most accesses to read), got ${limit}`);
  return limit;
}

const MAGIC = [0x50, 0x50, 0x4d, 0x54]; // "PPMT": the binary trace format (binary.ts BINARY_MAGIC)

/** Whether bytes start with the binary trace format's magic. */
export function startsBinary(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === MAGIC[0] && head[1] === MAGIC[1] && head[2] === MAGIC[2] && head[3] === MAGIC[3];
}

/** The error for binary trace bytes given to a text-only reader. */
export function binaryTraceError(what: string, fn: string): RangeError {
  return new RangeError(`${what} is a binary trace (it starts with the magic "PPMT"), not the text format ${fn} reads: ` +
    "convert it to text with `ppm-prefetch convert IN OUT.txt`, or read it with readTrace (src/trace/read.ts), which reads both formats");
}
