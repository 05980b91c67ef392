/**
 * The post-copy page transport's wire protocol (version 1). See docs/protocol.md for the prose.
 *
 * Every frame is `u32 LE bodyLength | u8 type | body`, where bodyLength counts the type byte and the
 * body. All integers are little-endian. A frame larger than MAX_BODY, a frame of unknown type, a frame
 * whose body does not have the exact size its type implies, or a page number out of range is a
 * protocol error: the receiver sends an ERROR frame (best effort) and closes that connection (both
 * sides do: the source in source.ts `fail`, the destination in destination.ts `onConnError`).
 *
 * The reader parses frames in place inside the chunks the socket hands it and copies only a frame
 * that straddles two chunks into one reusable reassembly buffer: no allocation per frame.
 */
import { crc32 } from "node:zlib";

export const PROTOCOL_VERSION = 1;
/** "PPMT" read as a u32 LE. */
export const MAGIC = 0x544d5050;
export const PAGE_SIZE = 4096;

export enum FrameType {
  // destination -> source
  Hello = 1,
  Bitmap = 2,
  Start = 3,
  Fault = 4,
  Ack = 5,
  ReplayDone = 6,
  Done = 7,
  // source -> destination
  Welcome = 16,
  Page = 17,
  FaultDone = 18,
  // both directions
  Error = 19,
}

export enum PageKind {
  Fault = 0,
  Predicted = 1,
  Push = 2,
}

export enum ErrorCode {
  Malformed = 1,
  Version = 2,
  Digest = 3,
  OutOfRange = 4,
  Oversized = 5,
  Truncated = 6,
  Checksum = 7,
  Unexpected = 8,
  PageSize = 9,
  Internal = 10,
  Busy = 11,
  /** The peer sent nothing for the idle timeout while frames were expected (docs/protocol.md, "Liveness"). */
  Idle = 12,
}

export const ERROR_NAMES: Record<number, string> = {
  1: "malformed frame", 2: "protocol version mismatch", 3: "image digest mismatch", 4: "page out of range",
  5: "oversized frame", 6: "truncated frame", 7: "checksum mismatch", 8: "unexpected frame", 9: "page size mismatch",
  10: "internal error", 11: "server busy", 12: "idle timeout",
};

/** Bytes of the length prefix. */
export const LEN_BYTES = 4;
/** Most bitmap bytes one BITMAP frame carries. */
export const BITMAP_CHUNK = 65536;
/** Most touch-feedback entries piggybacked on one FAULT frame. */
export const MAX_FEEDBACK = 4096;
/** Largest legal bodyLength (type byte + body) for page size 4096. */
export const MAX_BODY = 1 + 4 + BITMAP_CHUNK;
export const HELLO_BODY = 64;
export const WELCOME_BODY = 44;
export const PAGE_HEADER = 12;
export const FAULT_HEADER = 8;
export const FEEDBACK_ENTRY = 6;
export const FAULT_DONE_BODY = 12;
export const MAX_ERROR_TEXT = 1024;
/** TCP keepalive on every connection (both sides): the kernel starts probing a peer silent this long. */
export const TCP_KEEPALIVE_MS = 15_000;

export class ProtocolError extends Error {
  /** The text without the code's name (what an ERROR frame carries: the receiver names the code itself). */
  readonly detail: string;
  constructor(readonly code: ErrorCode, message: string) {
    super(`${ERROR_NAMES[code] ?? `error ${code}`}: ${message}`);
    this.detail = message;
    this.name = "ProtocolError";
  }
}

/** An ERROR frame received from the peer. */
export class RemoteError extends Error {
  constructor(readonly code: number, message: string) {
    super(`peer closed the connection: ${ERROR_NAMES[code] ?? `error ${code}`}: ${message}`);
    this.name = "RemoteError";
  }
}

export function checksum(data: Uint8Array): number {
  return crc32(data) >>> 0;
}

export interface Hello {
  version: number;
  flags: number;
  pageSize: number;
  sessionId: Buffer; // 16 bytes
  pageCount: number; // 0 = any
  digest: Buffer; // 32 bytes, all zero = any
}

export interface Welcome {
  version: number;
  flags: number;
  pageSize: number;
  pageCount: number;
  digest: Buffer; // 32 bytes (SHA-256 of the image)
}

/** Welcome flag: the source pushes the remaining pages in the background during the replay. */
export const WELCOME_PUSH = 1;

// ---------------------------------------------------------------------------------------------------
// Encoders: each writes one whole frame into `b` at `o` and returns the offset after it.

function head(b: Buffer, o: number, bodyLen: number, type: FrameType): number {
  b.writeUInt32LE(bodyLen, o);
  b[o + 4] = type;
  return o + 5;
}

export function encodeHello(b: Buffer, o: number, h: Hello): number {
  let p = head(b, o, 1 + HELLO_BODY, FrameType.Hello);
  b.writeUInt32LE(MAGIC, p); b.writeUInt16LE(h.version, p + 4); b.writeUInt16LE(h.flags, p + 6);
  b.writeUInt32LE(h.pageSize, p + 8); h.sessionId.copy(b, p + 12, 0, 16);
  b.writeUInt32LE(h.pageCount >>> 0, p + 28); h.digest.copy(b, p + 32, 0, 32);
  return p + HELLO_BODY;
}

export function encodeWelcome(b: Buffer, o: number, w: Welcome): number {
  const p = head(b, o, 1 + WELCOME_BODY, FrameType.Welcome);
  b.writeUInt16LE(w.version, p); b.writeUInt16LE(w.flags, p + 2); b.writeUInt32LE(w.pageSize, p + 4);
  b.writeUInt32LE(w.pageCount >>> 0, p + 8); w.digest.copy(b, p + 12, 0, 32);
  return p + WELCOME_BODY;
}

export function encodeBitmap(b: Buffer, o: number, byteOffset: number, bits: Uint8Array): number {
  const p = head(b, o, 1 + 4 + bits.length, FrameType.Bitmap);
  b.writeUInt32LE(byteOffset, p);
  b.set(bits, p + 4);
  return p + 4 + bits.length;
}

/** ACK: pages received on this connection so far (the source's push window). */
export function encodeAck(b: Buffer, o: number, received: number): number {
  const p = head(b, o, 1 + 4, FrameType.Ack);
  b.writeUInt32LE(received >>> 0, p);
  return p + 4;
}

export function encodeEmpty(b: Buffer, o: number, type: FrameType): number {
  return head(b, o, 1, type);
}

/** A FAULT frame with `count` feedback entries taken from the parallel arrays at `from`. */
export function encodeFault(b: Buffer, o: number, page: number, stream: number,
  fbPages: Uint32Array, fbStreams: Uint16Array, from: number, count: number): number {
  let p = head(b, o, 1 + FAULT_HEADER + count * FEEDBACK_ENTRY, FrameType.Fault);
  b.writeUInt16LE(stream, p); b.writeUInt16LE(count, p + 2); b.writeUInt32LE(page, p + 4);
  p += FAULT_HEADER;
  for (let i = 0; i < count; i++, p += FEEDBACK_ENTRY) {
    b.writeUInt32LE(fbPages[from + i], p);
    b.writeUInt16LE(fbStreams[from + i], p + 4);
  }
  return p;
}

export function faultFrameSize(count: number): number {
  return LEN_BYTES + 1 + FAULT_HEADER + count * FEEDBACK_ENTRY;
}

export function pageFrameSize(pageSize: number): number {
  return LEN_BYTES + 1 + PAGE_HEADER + pageSize;
}

/** Where PAGE frames take their bytes from: a Buffer, or anything that reads a page into place (a file). */
export type PageReader = Buffer | { readPage(page: number, dst: Buffer, off: number): void };

/** A PAGE frame: header, then the page's bytes copied or read from `image` (no intermediate buffer). */
export function encodePage(b: Buffer, o: number, page: number, kind: PageKind, image: PageReader, pageSize: number): number {
  const p = head(b, o, 1 + PAGE_HEADER + pageSize, FrameType.Page);
  b.writeUInt32LE(page, p); b[p + 4] = kind; b[p + 5] = 0; b[p + 6] = 0; b[p + 7] = 0;
  if (Buffer.isBuffer(image)) image.copy(b, p + PAGE_HEADER, page * pageSize, (page + 1) * pageSize);
  else image.readPage(page, b, p + PAGE_HEADER);
  b.writeUInt32LE(checksum(b.subarray(p + PAGE_HEADER, p + PAGE_HEADER + pageSize)), p + 8);
  return p + PAGE_HEADER + pageSize;
}

export function encodeFaultDone(b: Buffer, o: number, page: number, predicted: number, predictorNs: number): number {
  const p = head(b, o, 1 + FAULT_DONE_BODY, FrameType.FaultDone);
  b.writeUInt32LE(page, p); b.writeUInt16LE(Math.min(predicted, 0xffff), p + 4); b.writeUInt16LE(0, p + 6);
  b.writeUInt32LE(Math.min(Math.round(predictorNs), 0xffffffff), p + 8);
  return p + FAULT_DONE_BODY;
}

export function encodeError(code: ErrorCode, message: string): Buffer {
  const text = Buffer.from(message.slice(0, MAX_ERROR_TEXT), "utf8").subarray(0, MAX_ERROR_TEXT);
  const b = Buffer.allocUnsafe(LEN_BYTES + 1 + 2 + text.length);
  const p = head(b, 0, 1 + 2 + text.length, FrameType.Error);
  b.writeUInt16LE(code, p);
  text.copy(b, p + 2);
  return b;
}

// ---------------------------------------------------------------------------------------------------
// Decoders: `b[s..e)` is the body (after the type byte). They validate sizes and throw ProtocolError.

export function expectSize(type: string, s: number, e: number, size: number): void {
  if (e - s !== size) throw new ProtocolError(ErrorCode.Malformed, `${type} body is ${e - s} bytes, expected ${size}`);
}

export function decodeHello(b: Buffer, s: number, e: number): Hello {
  expectSize("HELLO", s, e, HELLO_BODY);
  if (b.readUInt32LE(s) !== MAGIC) throw new ProtocolError(ErrorCode.Malformed, "HELLO has a bad magic number (not a ppm-prefetch client?)");
  return {
    version: b.readUInt16LE(s + 4), flags: b.readUInt16LE(s + 6), pageSize: b.readUInt32LE(s + 8),
    sessionId: Buffer.from(b.subarray(s + 12, s + 28)), pageCount: b.readUInt32LE(s + 28),
    digest: Buffer.from(b.subarray(s + 32, s + 64)),
  };
}

export function decodeWelcome(b: Buffer, s: number, e: number): Welcome {
  expectSize("WELCOME", s, e, WELCOME_BODY);
  return {
    version: b.readUInt16LE(s), flags: b.readUInt16LE(s + 2), pageSize: b.readUInt32LE(s + 4),
    pageCount: b.readUInt32LE(s + 8), digest: Buffer.from(b.subarray(s + 12, s + 44)),
  };
}

export function decodeError(b: Buffer, s: number, e: number): RemoteError {
  if (e - s < 2 || e - s > 2 + MAX_ERROR_TEXT) return new RemoteError(ErrorCode.Malformed, "(unreadable ERROR frame)");
  return new RemoteError(b.readUInt16LE(s), b.toString("utf8", s + 2, e));
}

export function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------

export type FrameHandler = (type: number, buf: Buffer, start: number, end: number) => void;

/**
 * Incremental frame parser. `push` each chunk; the handler sees (type, buffer, bodyStart, bodyEnd)
 * and must not keep a reference to the buffer. `end` throws if the stream stopped inside a frame.
 */
export class FrameReader {
  private acc: Buffer;
  private accLen = 0;
  private need = 0; // total bytes of the frame being reassembled (0 = still reading its length)
  private paused = false;
  private held: Buffer | null = null; // the unparsed rest of a chunk, while paused

  constructor(private readonly onFrame: FrameHandler, private readonly maxBody = MAX_BODY) {
    this.acc = Buffer.allocUnsafe(LEN_BYTES + maxBody);
  }

  push(chunk: Buffer): void {
    if (this.paused) { this.held = this.held ? Buffer.concat([this.held, chunk]) : chunk; return; }
    let i = 0;
    const n = chunk.length;
    if (this.accLen > 0) {
      if (this.need === 0) {
        const take = Math.min(LEN_BYTES - this.accLen, n);
        chunk.copy(this.acc, this.accLen, 0, take);
        this.accLen += take; i = take;
        if (this.accLen < LEN_BYTES) return;
        this.need = LEN_BYTES + this.checkLen(this.acc.readUInt32LE(0));
      }
      const take = Math.min(this.need - this.accLen, n - i);
      chunk.copy(this.acc, this.accLen, i, i + take);
      this.accLen += take; i += take;
      if (this.accLen < this.need) return;
      const total = this.need;
      this.accLen = 0; this.need = 0;
      this.onFrame(this.acc[LEN_BYTES], this.acc, LEN_BYTES + 1, total);
      if (this.paused) { if (i < n) this.held = chunk.subarray(i); return; }
    }
    while (n - i >= LEN_BYTES) {
      const len = this.checkLen(chunk.readUInt32LE(i));
      if (n - i - LEN_BYTES < len) break;
      const s = i + LEN_BYTES;
      i = s + len;
      this.onFrame(chunk[s], chunk, s + 1, i);
      if (this.paused) { if (i < n) this.held = chunk.subarray(i); return; }
    }
    if (i < n) {
      chunk.copy(this.acc, 0, i, n);
      this.accLen = n - i;
      if (this.accLen >= LEN_BYTES) this.need = LEN_BYTES + this.checkLen(this.acc.readUInt32LE(0));
    }
  }

  /** Bytes of an incomplete frame held. */
  get pending(): number { return this.accLen; }

  /**
   * Stop parsing after the frame being handled (a handler may call it): the rest of the chunk, and
   * anything pushed meanwhile, waits for `resume`. This is how a server stops reading a client whose
   * answers it cannot send (backpressure) without buffering the client's requests unparsed.
   */
  pause(): void { this.paused = true; }
  get isPaused(): boolean { return this.paused; }
  /** Bytes received but not parsed because of `pause`. */
  get heldBytes(): number { return this.held ? this.held.length : 0; }

  /** Parse what was held, then go on with new chunks (it may pause again on the way). */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const h = this.held;
    this.held = null;
    if (h) this.push(h);
  }

  end(): void {
    if (this.held) this.resume();
    if (this.paused) return;
    if (this.accLen > 0) {
      throw new ProtocolError(ErrorCode.Truncated, `the stream ended ${this.accLen} bytes into a ${this.need || "?"}-byte frame`);
    }
  }

  private checkLen(len: number): number {
    if (len < 1) throw new ProtocolError(ErrorCode.Malformed, "zero-length frame");
    if (len > this.maxBody) throw new ProtocolError(ErrorCode.Oversized, `frame of ${len} bytes exceeds the limit of ${this.maxBody}`);
    return len;
  }
}

// ---------------------------------------------------------------------------------------------------

/** A fixed-size bit set over pages, in the wire layout of the BITMAP frame (bit p%8 of byte p>>3). */
export class Bitmap {
  readonly bits: Uint8Array;
  private n = 0;
  constructor(readonly size: number) {
    this.bits = new Uint8Array((size + 7) >>> 3);
  }
  get count(): number { return this.n; }
  has(p: number): boolean { return (this.bits[p >>> 3] & (1 << (p & 7))) !== 0; }
  /** Sets the bit; returns false if it was already set. */
  add(p: number): boolean {
    const m = 1 << (p & 7);
    const i = p >>> 3;
    if (this.bits[i] & m) return false;
    this.bits[i] |= m;
    this.n++;
    return true;
  }
  clear(): void { this.bits.fill(0); this.n = 0; }
  /** Replace the contents (the last byte's bits past `size` are ignored). */
  load(bits: Uint8Array): void {
    this.bits.set(bits.subarray(0, this.bits.length));
    const tail = this.size & 7;
    if (tail) this.bits[this.bits.length - 1] &= (1 << tail) - 1;
    let n = 0;
    for (let i = 0; i < this.bits.length; i++) n += POP[this.bits[i]];
    this.n = n;
  }
  /** First page >= from not in the set, or -1. */
  nextClear(from: number): number {
    let p = from;
    while (p < this.size) {
      const byte = this.bits[p >>> 3];
      if (byte === 0xff && (p & 7) === 0) { p += 8; continue; }
      if ((byte & (1 << (p & 7))) === 0) return p;
      p++;
    }
    return -1;
  }
}

const POP = new Uint8Array(256);
for (let i = 1; i < 256; i++) POP[i] = (i & 1) + POP[i >>> 1];
