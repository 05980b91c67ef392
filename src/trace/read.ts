/**
 * Read a trace file whatever its format: gzip is detected by its magic bytes (not by the name), then
 * the binary format by its magic "PPMT", and anything else is parsed as text. Both paths stream in
 * chunks (`readAnyTraceChunks`); `readTrace` collects them into one structure-of-arrays Trace.
 * Access kinds pass through: a trace that records them (text `page gap w`, binary blocks with write
 * flags) gives chunks and a Trace with `writes`; one that does not (every older trace) gives none, and
 * its pages, gaps and streams are read exactly as before.
 */
import { open } from "node:fs/promises";
import { createGunzip } from "node:zlib";
import { Readable } from "node:stream";
import { TextTraceParser, collectTrace, baseName, type Trace, type TraceChunk } from "./format.js";
import { BinaryTraceParser, isBinaryTrace } from "./binary.js";
import { checkPath, checkReadOptions } from "./check.js";

export type TraceEncoding = "text" | "binary";

/**
 * The file's bytes, gunzipped when they start with gzip's magic. The magic is read from the stream
 * itself (no second open, no positional read), so a pipe or a FIFO (`/dev/stdin`, `<(zcat ...)`)
 * reads like a file. The file is opened first, so a missing one rejects here rather than as an
 * unhandled stream 'error'.
 */
async function* bytesOf(path: string): AsyncGenerator<Buffer> {
  const fh = await open(path, "r");
  const raw = fh.createReadStream(); // closes fh when it ends or is destroyed
  const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const rest = { [Symbol.asyncIterator]: () => it };
  try {
    let head: Buffer = Buffer.alloc(0);
    let ended = false;
    while (head.length < 2) {
      const r = await it.next();
      if (r.done) { ended = true; break; }
      head = head.length === 0 ? r.value : Buffer.concat([head, r.value]);
    }
    if (!(head[0] === 0x1f && head[1] === 0x8b)) {
      if (head.length > 0) yield head;
      if (!ended) yield* rest;
      return;
    }
    const gunzip = createGunzip();
    const feed = Readable.from((async function* () { yield head; if (!ended) yield* rest; })());
    feed.on("error", (e) => gunzip.destroy(e));
    feed.pipe(gunzip);
    try {
      for await (const b of gunzip) yield b as Buffer;
    } finally {
      feed.destroy();
      gunzip.destroy();
    }
  } finally {
    raw.destroy();
  }
}

/** Stream a trace's accesses in chunks; rejects with a TraceFormatError / BinaryTraceError on bad input. */
export async function* readAnyTraceChunks(path: string, onEncoding?: (e: TraceEncoding) => void): AsyncGenerator<TraceChunk> {
  checkPath(path);
  const pending: TraceChunk[] = [];
  const emit = (c: TraceChunk) => pending.push(c);
  let parser: TextTraceParser | BinaryTraceParser | undefined;
  let head: Uint8Array = new Uint8Array(0);
  const stream = bytesOf(path);
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
    await stream.return(undefined);
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
