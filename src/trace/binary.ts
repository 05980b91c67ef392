/**
 * The compact binary trace format (`.ppmt`), streaming in both directions.
 *
 *   header   8 bytes: magic "PPMT", u16 LE version (2; 1 is still read), u16 LE flags (0, reserved)
 *   block    u32 LE head, u32 LE payload bytes, then the payload. head = n | (W << 31): n (bits 0..30)
 *            is the record count, 1..65536; W (version 2 only) says the block carries access kinds.
 *            Payload: for each record zigzag-varint(page - previous page of the block, the first
 *            against 0), varint gap, varint stream; then, when W is set, the write flags as a bitmap
 *            of ceil(n/8) bytes (record i is bit i%8 of byte i/8, 1 = kind `w`, 0 = `r`; the unused
 *            high bits of the last byte are 0). See src/trace/format.ts for what a kind means.
 *   trailer  u32 LE 0, then the total record count as u64 LE (two u32 LE halves, low first)
 *
 * Either every block of a file has W or none has (a trace has kinds or not; a file that mixes them is
 * rejected). Version 1 (written before access kinds existed) is the same without W: such files read
 * exactly as before, without kinds. The writer always writes version 2, with W when its chunks have
 * `writes` (an older reader rejects any version-2 file with "unsupported version 2").
 *
 * Deltas make the common case (a neighbouring page, a small gap, stream 0) three bytes or fewer per
 * access, against ~10-12 for the text format. Blocks are independent (the delta restarts), so a
 * reader never holds more than one block, and a 50M-access trace converts in constant memory.
 * Every violation (bad magic, unknown version, a truncated block, a varint that overflows, a page
 * above 2^32-1, a stream above 65535, a record count that does not match the trailer, bytes after
 * the trailer) is a BinaryTraceError naming the file and the byte offset.
 */
import { createWriteStream } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { once } from "node:events";
import { MAX_STREAM, type TraceChunk } from "./format.js";
import { atomicTarget, tempPathFor } from "../util/temp-files.js";

export const BINARY_MAGIC = Uint8Array.of(0x50, 0x50, 0x4d, 0x54); // "PPMT"
export const BINARY_VERSION = 2;
/** The versions this reader accepts. */
export const BINARY_VERSIONS_READ: readonly number[] = [1, 2];
const WRITES_BIT = 0x80000000;
const HEADER_BYTES = 8;
const MAX_BLOCK = 1 << 16;

export class BinaryTraceError extends Error {
  constructor(readonly file: string, readonly offset: number, reason: string) {
    super(`${file}: byte ${offset}: ${reason}`);
    this.name = "BinaryTraceError";
  }
}

/** True when the bytes start with the binary magic. */
export function isBinaryTrace(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x50 && head[2] === 0x4d && head[3] === 0x54;
}

/** Encodes chunks into the binary format; `header()`, then `encode(chunk)` any number of times, then `trailer()`. */
export class BinaryTraceEncoder {
  private total = 0;
  private kinds: boolean | undefined = undefined;

  header(): Uint8Array {
    const b = new Uint8Array(HEADER_BYTES);
    b.set(BINARY_MAGIC, 0);
    const v = new DataView(b.buffer);
    v.setUint16(4, BINARY_VERSION, true);
    v.setUint16(6, 0, true);
    return b;
  }

  /** One or more blocks holding the chunk's records. */
  encode(c: TraceChunk): Uint8Array {
    const parts: Uint8Array[] = [];
    for (let from = 0; from < c.length; from += MAX_BLOCK) parts.push(this.block(c, from, Math.min(c.length, from + MAX_BLOCK)));
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  trailer(): Uint8Array {
    const b = new Uint8Array(12);
    const v = new DataView(b.buffer);
    v.setUint32(0, 0, true);
    v.setUint32(4, this.total % 0x100000000, true);
    v.setUint32(8, Math.floor(this.total / 0x100000000), true);
    return b;
  }

  private block(c: TraceChunk, from: number, to: number): Uint8Array {
    const n = to - from;
    const w = c.writes;
    if (this.kinds === undefined) this.kinds = w !== undefined;
    else if (this.kinds !== (w !== undefined)) {
      throw new Error(`BinaryTraceEncoder: a chunk ${w ? "with" : "without"} access kinds (writes) after chunks ${w ? "without" : "with"} them, at record ${this.total}`);
    }
    const bitmap = w ? (n + 7) >> 3 : 0;
    const buf = new Uint8Array(8 + n * 15 + bitmap); // worst case: 5 + 5 + 3 bytes per record
    let o = 8;
    let prev = 0;
    for (let i = from; i < to; i++) {
      const p = c.pages[i];
      const d = p - prev;
      prev = p;
      o = writeVarint(buf, o, d >= 0 ? d * 2 : -d * 2 - 1);
      o = writeVarint(buf, o, c.gaps[i]);
      o = writeVarint(buf, o, c.streams[i]);
    }
    if (w) {
      // buf is zero-filled: set the bits of the written records.
      for (let i = from; i < to; i++) if (w[i]) buf[o + ((i - from) >> 3)] |= 1 << ((i - from) & 7);
      o += bitmap;
    }
    const v = new DataView(buf.buffer);
    v.setUint32(0, w ? n + WRITES_BIT : n, true);
    v.setUint32(4, o - 8, true);
    this.total += n;
    return buf.subarray(0, o);
  }
}

function writeVarint(b: Uint8Array, o: number, v: number): number {
  // v < 2^34: arithmetic, not bitwise, above 2^31.
  while (v >= 0x80) {
    b[o++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  b[o++] = v;
  return o;
}

/**
 * Incremental decoder: `push` buffers as they come (split anywhere), `end` once. Completed blocks go to
 * `emit`. Throws BinaryTraceError on the first violation.
 */
export class BinaryTraceParser {
  private buf: Uint8Array = new Uint8Array(0);
  private offset = 0; // file offset of buf[0]
  private headerDone = false;
  private done = false;
  private total = 0;
  private version = 0;
  private kinds: boolean | undefined = undefined;

  constructor(private readonly file: string, private readonly emit: (c: TraceChunk) => void) {}

  push(chunk: Uint8Array): void {
    if (this.done) {
      if (chunk.length > 0) this.fail(this.offset + this.buf.length, "bytes after the trailer");
      return;
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let pos = 0;
    if (!this.headerDone) {
      if (this.buf.length < HEADER_BYTES) return;
      if (!isBinaryTrace(this.buf)) this.fail(0, "not a binary trace (bad magic)");
      const v = new DataView(this.buf.buffer, this.buf.byteOffset, HEADER_BYTES);
      const version = v.getUint16(4, true);
      if (!BINARY_VERSIONS_READ.includes(version)) this.fail(4, `unsupported version ${version} (this reader knows ${BINARY_VERSIONS_READ.join(" and ")})`);
      const flags = v.getUint16(6, true);
      if (version >= 2 && flags !== 0) this.fail(6, `unknown header flags 0x${flags.toString(16)} (reserved, must be 0)`);
      this.version = version;
      this.headerDone = true;
      pos = HEADER_BYTES;
    }
    for (;;) {
      if (this.buf.length - pos < 4) break;
      const v = new DataView(this.buf.buffer, this.buf.byteOffset + pos);
      const head = v.getUint32(0, true);
      if (head === 0) {
        if (this.buf.length - pos < 12) break;
        const total = v.getUint32(4, true) + v.getUint32(8, true) * 0x100000000;
        if (total !== this.total) this.fail(this.offset + pos, `trailer says ${total} records, the blocks hold ${this.total}`);
        pos += 12;
        this.done = true;
        if (pos < this.buf.length) this.fail(this.offset + pos, "bytes after the trailer");
        break;
      }
      if (this.buf.length - pos < 8) break;
      const len = v.getUint32(4, true);
      const hasWrites = this.version >= 2 && head >= WRITES_BIT;
      const n = hasWrites ? head - WRITES_BIT : head;
      if (n === 0) this.fail(this.offset + pos, "block of 0 records");
      if (n > MAX_BLOCK) this.fail(this.offset + pos, `block of ${n} records exceeds ${MAX_BLOCK}`);
      if (this.kinds === undefined) this.kinds = hasWrites;
      else if (this.kinds !== hasWrites) {
        this.fail(this.offset + pos, hasWrites ? "block with access kinds after blocks without (a file has kinds everywhere or nowhere)"
          : "block without access kinds after blocks with them (a file has kinds everywhere or nowhere)");
      }
      const bitmap = hasWrites ? (n + 7) >> 3 : 0;
      if (len > n * 15 + bitmap) this.fail(this.offset + pos, `block payload of ${len} bytes is too long for ${n} records`);
      if (len < bitmap) this.fail(this.offset + pos, `block payload of ${len} bytes is too short for ${n} records and their write flags`);
      if (this.buf.length - pos - 8 < len) break;
      this.decodeBlock(pos + 8, n, len, hasWrites);
      pos += 8 + len;
    }
    this.offset += pos;
    this.buf = this.buf.subarray(pos);
  }

  end(): void {
    if (!this.headerDone) this.fail(this.offset, this.buf.length === 0 && this.offset === 0 ? "empty file" : "truncated header");
    if (!this.done) this.fail(this.offset, "truncated (no trailer)");
  }

  private decodeBlock(start: number, n: number, len: number, hasWrites: boolean): void {
    const b = this.buf;
    const bitmap = hasWrites ? (n + 7) >> 3 : 0;
    const end = start + len - bitmap; // the records end where the write bitmap starts
    const pages = new Uint32Array(n);
    const gaps = new Uint32Array(n);
    const streams = new Uint16Array(n);
    let o = start;
    let prev = 0;
    for (let i = 0; i < n; i++) {
      // The three varints are decoded inline: a shared readVarint method measured 15% slower here.
      let z = 0, mul = 1, c = 0, k = 0;
      // zigzag page delta
      do {
        if (o >= end) this.fail(this.offset + o, "record runs past the end of its block");
        c = b[o++]; z += (c & 0x7f) * mul; mul *= 128;
        if (++k > 5) this.fail(this.offset + o, "varint too long");
      } while (c & 0x80);
      const d = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      const page = prev + d;
      if (page < 0 || page > 0xffffffff) this.fail(this.offset + o, `page ${page} is outside 0..2^32-1`);
      prev = page;
      let g = 0; mul = 1; k = 0;
      do {
        if (o >= end) this.fail(this.offset + o, "record runs past the end of its block");
        c = b[o++]; g += (c & 0x7f) * mul; mul *= 128;
        if (++k > 5) this.fail(this.offset + o, "varint too long");
      } while (c & 0x80);
      if (g > 0xffffffff) this.fail(this.offset + o, `gap ${g} does not fit in 32 bits`);
      let s = 0; mul = 1; k = 0;
      do {
        if (o >= end) this.fail(this.offset + o, "record runs past the end of its block");
        c = b[o++]; s += (c & 0x7f) * mul; mul *= 128;
        if (++k > 3) this.fail(this.offset + o, "varint too long");
      } while (c & 0x80);
      if (s > MAX_STREAM) this.fail(this.offset + o, `stream ${s} exceeds ${MAX_STREAM}`);
      pages[i] = page; gaps[i] = g; streams[i] = s;
    }
    if (o !== end) this.fail(this.offset + o, `block payload has ${end - o} bytes left over`);
    this.total += n;
    if (!hasWrites) { this.emit({ pages, gaps, streams, length: n }); return; }
    const writes = new Uint8Array(n);
    for (let i = 0; i < n; i++) writes[i] = (b[end + (i >> 3)] >> (i & 7)) & 1;
    if ((n & 7) !== 0 && b[end + bitmap - 1] >> (n & 7) !== 0) this.fail(this.offset + end + bitmap - 1, "write bitmap has bits set beyond the block's records");
    this.emit({ pages, gaps, streams, writes, length: n });
  }

  private fail(offset: number, reason: string): never {
    throw new BinaryTraceError(this.file, offset, reason);
  }
}

/** Encode a whole in-memory trace (tests, small fixtures). */
export function encodeBinaryTrace(t: TraceChunk): Uint8Array {
  const e = new BinaryTraceEncoder();
  return Buffer.concat([e.header(), e.encode(t), e.trailer()]);
}

/** Decode a whole binary trace held in memory. */
export function decodeBinaryTrace(bytes: Uint8Array, name = "<bytes>"): TraceChunk {
  const parts: TraceChunk[] = [];
  const p = new BinaryTraceParser(name, (c) => parts.push(c));
  p.push(bytes);
  p.end();
  const n = parts.reduce((a, c) => a + c.length, 0);
  const kinds = parts.length > 0 && parts[0].writes !== undefined; // the parser keeps a file consistent
  const out = { pages: new Uint32Array(n), gaps: new Uint32Array(n), streams: new Uint16Array(n), length: n };
  const writes = kinds ? new Uint8Array(n) : undefined;
  let o = 0;
  for (const c of parts) {
    out.pages.set(c.pages, o); out.gaps.set(c.gaps, o); out.streams.set(c.streams, o);
    if (writes) writes.set(c.writes!, o);
    o += c.length;
  }
  return writes ? { ...out, writes } : out;
}

/**
 * Write chunks to `path` in the binary format, streaming, atomically: the data goes to a temporary
 * file that is renamed over `path` only when everything was written (a failed conversion leaves no
 * half-written output). Returns the number of records.
 */
export async function writeBinaryTrace(path: string, chunks: AsyncIterable<TraceChunk> | Iterable<TraceChunk>): Promise<number> {
  const enc = new BinaryTraceEncoder();
  return writeStreaming(path, chunks, () => enc.header(), (c) => enc.encode(c), () => enc.trailer());
}

/** Shared streaming, atomic writer (also used for text output by `convert`). */
export async function writeStreaming(
  path: string,
  chunks: AsyncIterable<TraceChunk> | Iterable<TraceChunk>,
  head: () => Uint8Array | string,
  body: (c: TraceChunk) => Uint8Array | string,
  tail: () => Uint8Array | string,
): Promise<number> {
  const target = atomicTarget(path);
  const tmp = target.direct ? null : tempPathFor(target.path);
  const out = createWriteStream(tmp ?? target.path);
  let n = 0;
  const write = async (data: Uint8Array | string) => {
    if (data.length === 0) return;
    if (!out.write(data)) await once(out, "drain");
  };
  try {
    await write(head());
    for await (const c of chunks) { await write(body(c)); n += c.length; }
    await write(tail());
    out.end();
    await once(out, "finish");
    if (tmp) await rename(tmp, target.path);
  } catch (e) {
    out.destroy();
    if (tmp) await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return n;
}
