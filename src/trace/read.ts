/**
 * Read a trace file whatever its format: gzip is detected by its magic bytes (not by the name), then
 * the binary format by its magic "PPMT", and anything else is parsed as text. Both paths stream in
 * chunks (`readAnyTraceChunks`); `readTrace` collects them into one structure-of-arrays Trace.
 * Access kinds pass through: a trace that records them (text `page gap w`, binary blocks with write
 * flags) gives chunks and a Trace with `writes`; one that does not (every older trace) gives none, and
 * its pages, gaps and streams are read exactly as before.
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { createGunzip } from "node:zlib";
import type { Readable } from "node:stream";
import { TextTraceParser, collectTrace, baseName, type Trace, type TraceChunk } from "./format.js";
import { BinaryTraceParser, isBinaryTrace } from "./binary.js";
import { checkPath, checkReadOptions } from "./check.js";

export type TraceEncoding = "text" | "binary";

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

async function openBytes(path: string): Promise<Readable> {
  // Sniff first: a stream created before a failing open (a missing file) would emit an unhandled 'error'.
  const gz = await isGzip(path);
  const raw = createReadStream(path);
  return gz ? raw.pipe(createGunzip()) : raw;
}

/** Stream a trace's accesses in chunks; rejects with a TraceFormatError / BinaryTraceError on bad input. */
export async function* readAnyTraceChunks(path: string, onEncoding?: (e: TraceEncoding) => void): AsyncGenerator<TraceChunk> {
  checkPath(path);
  const pending: TraceChunk[] = [];
  const emit = (c: TraceChunk) => pending.push(c);
  let parser: TextTraceParser | BinaryTraceParser | undefined;
  let head: Uint8Array = new Uint8Array(0);
  const stream = await openBytes(path);
  try {
    for await (const b of stream) {
      const buf = b as Buffer;
      if (!parser) {
        head = head.length === 0 ? buf : Buffer.concat([head, buf]);
        if (head.length < 4) continue;
        parser = isBinaryTrace(head) ? new BinaryTraceParser(path, emit) : new TextTraceParser(path, emit);
        onEncoding?.(parser instanceof BinaryTraceParser ? "binary" : "text");
        parser.push(head);
      } else {
        parser.push(buf);
      }
      while (pending.length) yield pending.shift()!;
    }
    if (!parser) {
      parser = new TextTraceParser(path, emit);
      onEncoding?.("text");
      if (head.length) parser.push(head);
    }
    parser.end();
    while (pending.length) yield pending.shift()!;
  } finally {
    stream.destroy();
  }
}

export interface ReadOptions {
  /** Keep at most this many accesses (the rest is not read). */
  limit?: number;
}

/**
 * Read a whole trace (text or binary, optionally gzipped) into memory. Nothing half-read is returned.
 * A bad argument (`path`, `opts.limit`: an integer >= 0) rejects with a TypeError or RangeError naming it.
 */
export async function readTrace(path: string, opts: ReadOptions = {}): Promise<Trace> {
  checkPath(path);
  const limit = checkReadOptions(opts);
  return collectTrace(readAnyTraceChunks(path), baseName(path).replace(/\.ppmt$/, ""), limit);
}
