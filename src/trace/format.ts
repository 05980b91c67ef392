/**
 * The text trace format: one access per line, `page [gap [stream]] [kind]`.
 *   page   decimal or 0x-hex u32 page index
 *   gap    guest instructions executed since the previous line (default 1)
 *   stream the vCPU that made the access (default 0)
 *   kind   `w` or `r` (lowercase, a field of its own, always the last one): whether the page was
 *          WRITTEN during the stretch of time this line stands for. A recorded trace keeps a line only
 *          when its page is not among the last K distinct pages touched (src/trace/record.ts) and folds
 *          re-touches of those pages into later gaps; each folded access belongs to the latest line of its
 *          page (the page has not left the window since). `w` means the line's own access or at least
 *          one access folded into it was a store or a modify (valgrind lackey `S`/`M`); `r` means all of
 *          them were loads. For a trace without folding (K = 0, a hand-made trace) this is simply "this
 *          access wrote". It is what a dirty log would see of the page over that stretch.
 *          Either every data line of a file has a kind or none has: a file that mixes them is rejected
 *          (at the first line that differs). Without kinds (every trace recorded before the column
 *          existed: two columns) the kind is unknown: `Trace.writes` is undefined.
 * Examples: `680 2` (kind unknown), `680 2 w`, `680 2 3 r` (stream 3, only read), `0x2a8 w` (gap 1).
 * `#` comment lines and blank lines are ignored; `.gz` files are gunzipped on the fly.
 *
 * The parser works on bytes, not on strings per line: real traces have tens of millions of lines and
 * a string per line would dominate the run time. It is incremental (chunks may split a line anywhere),
 * so a trace is read as a stream and never needs one object per access.
 */
import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
import { Readable } from "node:stream";
import { checkPath, checkReadOptions, describe, startsBinary, binaryTraceError } from "./check.js";

/**
 * A trace held in memory as parallel typed arrays (structure of arrays, no per-access object).
 * `writes` is present only when the trace records access kinds: 1 = the page was written during the
 * line's stretch (kind `w`), 0 = only read (`r`); undefined = unknown (traces without the kind column).
 */
export interface Trace {
  readonly name: string;
  readonly length: number;
  readonly pages: Uint32Array;
  readonly gaps: Uint32Array;
  readonly streams: Uint16Array;
  readonly writes?: Uint8Array;
}

/** A block of accesses as they come off a stream. The arrays are owned by the receiver. */
export interface TraceChunk {
  readonly pages: Uint32Array;
  readonly gaps: Uint32Array;
  readonly streams: Uint16Array;
  /** Access kinds (1 written, 0 read), only when the source records them; see {@link Trace}. */
  readonly writes?: Uint8Array;
  readonly length: number;
}

export const MAX_STREAM = 0xffff;

/** Thrown for a malformed line; names the file, the 1-based line number and the offending text. */
export class TraceFormatError extends Error {
  constructor(readonly file: string, readonly line: number, readonly text: string, reason: string) {
    super(`${file}:${line}: ${reason}: ${JSON.stringify(text.length > 80 ? text.slice(0, 80) + "..." : text)}`);
    this.name = "TraceFormatError";
  }
}

const CHUNK = 1 << 16;
/** The longest line the text format takes (a data line is under 40 bytes; comments may be long). */
export const MAX_LINE = 1 << 20;

/**
 * Incremental byte parser for the text format. Feed it buffers with `push`, call `end` once; every
 * completed block of accesses goes to `emit`. Nothing is emitted for a line that fails to parse:
 * the error is thrown and the caller discards everything (no half-read trace is used).
 */
export class TextTraceParser {
  private pages = new Uint32Array(CHUNK);
  private gaps = new Uint32Array(CHUNK);
  private streams = new Uint16Array(CHUNK);
  private writes = new Uint8Array(CHUNK);
  private n = 0;
  private carry: Uint8Array = new Uint8Array(0); // the unfinished last line: carry[0..carryLen)
  private carryLen = 0;
  private lineNo = 0;
  /** Whether the data lines carry the kind column: undecided until the first data line. */
  private kinds: boolean | undefined = undefined;

  constructor(private readonly file: string, private readonly emit: (chunk: TraceChunk) => void) {}

  push(buf: Uint8Array): void {
    let start = 0;
    if (this.carryLen > 0) {
      const nl = buf.indexOf(10);
      if (nl < 0) {
        // A line split over many buffers grows by doubling (not a copy per buffer), up to MAX_LINE:
        // a file without newlines (/dev/zero, a binary blob) is refused, not buffered whole.
        this.extendCarry(buf);
        return;
      }
      this.extendCarry(buf.subarray(0, nl));
      const line = this.carry.subarray(0, this.carryLen);
      this.carry = new Uint8Array(0);
      this.carryLen = 0;
      this.parseLine(line, 0, line.length);
      start = nl + 1;
    }
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      this.parseLine(buf, start, nl);
      start = nl + 1;
    }
    if (start < buf.length) {
      this.carry = buf.slice(start);
      this.carryLen = this.carry.length;
      if (this.carryLen > MAX_LINE) this.tooLong();
    }
  }

  private extendCarry(more: Uint8Array): void {
    const need = this.carryLen + more.length;
    if (need > MAX_LINE) this.tooLong();
    if (need > this.carry.length) {
      const grown = new Uint8Array(Math.min(MAX_LINE, Math.max(need, 2 * this.carry.length)));
      grown.set(this.carry.subarray(0, this.carryLen));
      this.carry = grown;
    }
    this.carry.set(more, this.carryLen);
    this.carryLen = need;
  }

  private tooLong(): never {
    const head = this.carry.subarray(0, Math.min(this.carryLen, 80));
    throw new TraceFormatError(this.file, this.lineNo + 1, Buffer.from(head).toString("latin1"), `line longer than ${MAX_LINE} bytes (no newline)`);
  }

  end(): void {
    if (this.carryLen > 0) { const c = this.carry.subarray(0, this.carryLen); this.carry = new Uint8Array(0); this.carryLen = 0; this.parseLine(c, 0, c.length); }
    this.flush();
  }

  private flush(): void {
    if (this.n === 0) return;
    const n = this.n;
    this.emit(this.kinds
      ? { pages: this.pages.slice(0, n), gaps: this.gaps.slice(0, n), streams: this.streams.slice(0, n), writes: this.writes.slice(0, n), length: n }
      : { pages: this.pages.slice(0, n), gaps: this.gaps.slice(0, n), streams: this.streams.slice(0, n), length: n });
    this.n = 0;
  }

  private parseLine(b: Uint8Array, s: number, e: number): void {
    this.lineNo++;
    if (e > s && b[e - 1] === 13) e--; // CRLF
    let i = skipSpace(b, s, e);
    if (i === e || b[i] === 35 /* # */) return;
    const fields: number[] = [0, 1, 0];
    let f = 0;
    let kind = -1; // -1 none, 0 r, 1 w
    while (i < e) {
      const c0 = b[i];
      if (f > 0 && (c0 === 114 /* r */ || c0 === 119 /* w */) && (i + 1 === e || b[i + 1] === 32 || b[i + 1] === 9 || b[i + 1] === 35)) {
        kind = c0 === 119 ? 1 : 0;
        i = skipSpace(b, i + 1, e);
        if (i < e && b[i] !== 35) this.fail(b, s, e, "nothing but a comment may follow the access kind (expected `page [gap [stream]] [r|w]`)");
        break;
      }
      if (f === 3) this.fail(b, s, e, "too many fields (expected `page [gap [stream]] [r|w]`)");
      let v = 0;
      let digits = 0;
      if (b[i] === 48 && i + 1 < e && (b[i + 1] === 120 || b[i + 1] === 88) && f === 0) {
        i += 2;
        for (; i < e; i++, digits++) {
          const c = b[i];
          const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (d < 0) break;
          v = v * 16 + d;
          if (v > 0xffffffff) this.fail(b, s, e, "page does not fit in 32 bits");
        }
      } else {
        for (; i < e; i++, digits++) {
          const c = b[i];
          if (c < 48 || c > 57) break;
          v = v * 10 + (c - 48);
          if (v > 0xffffffff) this.fail(b, s, e, `${FIELD[f]} does not fit in 32 bits`);
        }
      }
      if (digits === 0 || (i < e && b[i] !== 32 && b[i] !== 9 && b[i] !== 35)) {
        this.fail(b, s, e, f === 0 ? "page is not a non-negative integer" : `${FIELD[f]} is not a non-negative integer (nor an access kind r or w)`);
      }
      if (f === 2 && v > MAX_STREAM) this.fail(b, s, e, `stream exceeds ${MAX_STREAM}`);
      fields[f++] = v;
      i = skipSpace(b, i, e);
      if (i < e && b[i] === 35) break; // trailing comment
    }
    if (this.kinds === undefined) this.kinds = kind >= 0;
    else if (this.kinds !== kind >= 0) {
      this.fail(b, s, e, this.kinds
        ? "no access kind (r or w) on this line, but the earlier lines have one (every line has a kind, or none)"
        : "an access kind on this line, but the earlier lines have none (every line has a kind, or none)");
    }
    const n = this.n;
    this.pages[n] = fields[0];
    this.gaps[n] = fields[1];
    this.streams[n] = fields[2];
    if (kind >= 0) this.writes[n] = kind;
    if (++this.n === CHUNK) this.flush();
  }

  private fail(b: Uint8Array, s: number, e: number, reason: string): never {
    throw new TraceFormatError(this.file, this.lineNo, Buffer.from(b.subarray(s, e)).toString("latin1"), reason);
  }
}

const FIELD = ["page", "gap", "stream"];

function skipSpace(b: Uint8Array, i: number, e: number): number {
  while (i < e && (b[i] === 32 || b[i] === 9)) i++;
  return i;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const r = new Uint8Array(a.length + b.length);
  r.set(a, 0);
  r.set(b, a.length);
  return r;
}

/** A readable of the file's bytes, gunzipped when the name ends in `.gz`. */
export function openTraceBytes(path: string): Readable {
  const raw = createReadStream(path);
  if (!path.endsWith(".gz")) return raw;
  // pipe() does not forward errors: without this a missing file is an unhandled 'error' event.
  const gunzip = createGunzip();
  raw.on("error", (e) => gunzip.destroy(e));
  return raw.pipe(gunzip);
}

/**
 * Stream the accesses of a text trace in chunks; a malformed line rejects with a TraceFormatError,
 * a binary trace (magic "PPMT") with a RangeError that says so.
 */
export async function* readTraceChunks(path: string): AsyncGenerator<TraceChunk> {
  checkPath(path);
  const pending: TraceChunk[] = [];
  const parser = new TextTraceParser(path, (c) => pending.push(c));
  let head: Uint8Array | undefined = new Uint8Array(0); // the first bytes, until the format is known
  const stream = openTraceBytes(path);
  try {
    for await (const b of stream) {
      let buf = b as Buffer as Uint8Array;
      if (head) {
        buf = head.length === 0 ? buf : concat(head, buf);
        if (buf.length < 4) { head = buf; continue; }
        if (startsBinary(buf)) throw binaryTraceError(`path ${JSON.stringify(path)}`, "readTextTrace");
        head = undefined;
      }
      parser.push(buf);
      while (pending.length) yield pending.shift()!;
    }
    if (head && head.length) parser.push(head);
    parser.end();
    while (pending.length) yield pending.shift()!;
  } finally {
    stream.destroy();
  }
}

/**
 * Collects chunks into one growable structure-of-arrays trace. The first non-empty chunk decides
 * whether the trace has access kinds (`writes`); a later chunk that disagrees is an Error (the
 * parsers never produce one: they reject a file that mixes lines with and without a kind).
 */
export class TraceBuilder {
  private pages = new Uint32Array(CHUNK);
  private gaps = new Uint32Array(CHUNK);
  private streams = new Uint16Array(CHUNK);
  private writes: Uint8Array | null = null;
  private kinds: boolean | undefined = undefined;
  private n = 0;

  add(c: TraceChunk, limit = Infinity): void {
    const take = Math.min(c.length, limit - this.n);
    if (take <= 0) return;
    const has = c.writes !== undefined;
    if (this.kinds === undefined) {
      this.kinds = has;
      if (has) this.writes = new Uint8Array(this.pages.length);
    } else if (this.kinds !== has) {
      throw new Error(`TraceBuilder.add: a chunk ${has ? "with" : "without"} access kinds (writes) after chunks ${has ? "without" : "with"} them, at access ${this.n}`);
    }
    this.reserve(this.n + take);
    this.pages.set(c.pages.subarray(0, take), this.n);
    this.gaps.set(c.gaps.subarray(0, take), this.n);
    this.streams.set(c.streams.subarray(0, take), this.n);
    if (has) this.writes!.set(c.writes!.subarray(0, take), this.n);
    this.n += take;
  }

  get length(): number { return this.n; }

  build(name: string): Trace {
    const n = this.n;
    const t = { name, length: n, pages: this.pages.slice(0, n), gaps: this.gaps.slice(0, n), streams: this.streams.slice(0, n) };
    return this.writes ? { ...t, writes: this.writes.slice(0, n) } : t;
  }

  private reserve(cap: number): void {
    if (cap <= this.pages.length) return;
    let c = this.pages.length;
    while (c < cap) c *= 2;
    const p = new Uint32Array(c); p.set(this.pages.subarray(0, this.n)); this.pages = p;
    const g = new Uint32Array(c); g.set(this.gaps.subarray(0, this.n)); this.gaps = g;
    const s = new Uint16Array(c); s.set(this.streams.subarray(0, this.n)); this.streams = s;
    if (this.writes) { const w = new Uint8Array(c); w.set(this.writes.subarray(0, this.n)); this.writes = w; }
  }
}

export interface ReadTraceOptions {
  /** Read at most this many accesses (the rest of the file is not parsed). */
  limit?: number;
}

/** Gather streamed chunks into one trace, stopping after `limit` accesses. */
export async function collectTrace(chunks: AsyncIterable<TraceChunk>, name: string, limit = Infinity): Promise<Trace> {
  const b = new TraceBuilder();
  for await (const c of chunks) {
    b.add(c, limit);
    if (b.length >= limit) break;
  }
  return b.build(name);
}

/**
 * Read a whole text trace (gzipped when the name ends in `.gz`) into memory. Rejects with a TypeError
 * or RangeError naming a bad argument (`path`, `opts.limit`: an integer >= 0), with a RangeError for a
 * binary trace (readTrace in trace/read.ts reads both formats), a TraceFormatError for a malformed line.
 */
export async function readTextTrace(path: string, opts: ReadTraceOptions = {}): Promise<Trace> {
  checkPath(path);
  const limit = checkReadOptions(opts);
  return collectTrace(readTraceChunks(path), baseName(path), limit);
}

/**
 * Parse text already in memory (tests, small fixtures): a string, or its UTF-8 bytes. `name` (a
 * string) names it in a TraceFormatError.
 */
export function parseTraceText(text: string | Uint8Array, name = "<text>"): Trace {
  if (typeof text !== "string" && !(text instanceof Uint8Array)) {
    throw new TypeError(`text must be a string or a Uint8Array of the text trace format, got ${describe(text)}`);
  }
  if (typeof name !== "string") throw new TypeError(`name must be a string, got ${describe(name)}`);
  if (typeof text === "string" ? text.startsWith("PPMT") : startsBinary(text)) throw binaryTraceError("text", "parseTraceText");
  const b = new TraceBuilder();
  const p = new TextTraceParser(name, (c) => b.add(c));
  p.push(typeof text === "string" ? Buffer.from(text, "utf8") : text);
  p.end();
  return b.build(name);
}

/**
 * Serialize accesses back to text lines (`page gap stream kind`, stream omitted when 0, kind `w`/`r`
 * only when the chunk has `writes`).
 */
export function formatTraceLines(t: TraceChunk, from = 0, to = t.length): string {
  let s = "";
  const w = t.writes;
  for (let i = from; i < to; i++) {
    const kind = w === undefined ? "" : w[i] ? " w" : " r";
    s += t.streams[i] === 0 ? `${t.pages[i]} ${t.gaps[i]}${kind}\n` : `${t.pages[i]} ${t.gaps[i]} ${t.streams[i]}${kind}\n`;
  }
  return s;
}

export function baseName(path: string): string {
  const slash = path.lastIndexOf("/");
  return path.slice(slash + 1).replace(/\.gz$/, "").replace(/\.(txt|trace|ppmt)$/, "");
}
