/**
 * QEMU's migration return path (destination -> source), as QEMU 7.2 frames it
 * (migration/migration.c, `enum mig_rp_message_type` and `rp_cmd_args`):
 *
 *   be16 type, be16 len, len bytes of payload
 *
 *   0 INVALID       variable   (the source rejects it)
 *   1 SHUT          4          be32 error flag
 *   2 PONG          4          be32 sequence
 *   3 REQ_PAGES_ID  variable   be64 offset, be32 length, u8 n, n bytes RAMBlock name   (len = 13 + n)
 *   4 REQ_PAGES     12         be64 offset, be32 length (RAMBlock: the one named last)
 *   5 RECV_BITMAP   variable   u8 n, n bytes RAMBlock name; then, *outside* the framing, the bitmap:
 *                              be64 size, size bytes, be64 RAMBLOCK_RECV_BITMAP_ENDING (postcopy recovery)
 *   6 RESUME_ACK    4          be32 value
 *   7+              newer QEMUs (8.1 added SWITCHOVER_ACK, len 0): passed through on their header length
 *
 * `ReturnPathFilter` parses that byte stream incrementally (chunks may split anywhere) and forwards it
 * unchanged; right after the last byte of every page request it may insert extra REQ_PAGES messages
 * returned by a callback. Insertion only ever happens at message boundaries, so the stream the source
 * sees is the destination's stream with whole messages added between whole messages.
 */

export const RP_INVALID = 0;
export const RP_SHUT = 1;
export const RP_PONG = 2;
export const RP_REQ_PAGES_ID = 3;
export const RP_REQ_PAGES = 4;
export const RP_RECV_BITMAP = 5;
export const RP_RESUME_ACK = 6;

/** Payload lengths QEMU 7.2 enforces for fixed-size messages. */
const FIXED_LEN: Record<number, number> = { [RP_SHUT]: 4, [RP_PONG]: 4, [RP_REQ_PAGES]: 12, [RP_RESUME_ACK]: 4 };

export const RP_TYPE_NAMES: Record<number, string> = {
  0: "INVALID", 1: "SHUT", 2: "PONG", 3: "REQ_PAGES_ID", 4: "REQ_PAGES", 5: "RECV_BITMAP", 6: "RESUME_ACK",
};

/** x86 TARGET_PAGE_SIZE: request offsets and lengths must be multiples of it. */
export const TARGET_PAGE_SIZE = 4096;

export class ReturnPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReturnPathError";
  }
}

export interface PageRequest {
  /** RAMBlock name (from this message or the last REQ_PAGES_ID). */
  block: string;
  offset: number;
  length: number;
  /** True when the message named the block (REQ_PAGES_ID). */
  named: boolean;
}

export interface RpMessage {
  type: number;
  payload: Buffer;
}

/** An extra request to append: a byte range of the block just requested. */
export interface InjectRange {
  offset: number;
  length: number;
}

export interface ReturnPathFilterHooks {
  /** Every complete message, in order (after the page request callback for requests). */
  onMessage?(msg: RpMessage): void;
  /** Every page request; returns ranges (same block) to request too, appended as REQ_PAGES messages. */
  onRequest?(req: PageRequest): readonly InjectRange[] | void;
  /**
   * With this hook the bytes up to the end of each page request are handed to it before onRequest
   * runs (push() returns only what follows), so that the destination's request leaves before the
   * prediction for it is computed: the prediction adds nothing to the fault it answers.
   */
  forward?(bytes: Buffer): void;
}

/** Encode one REQ_PAGES (type 4) message. */
export function encodeReqPages(offset: number, length: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16BE(RP_REQ_PAGES, 0);
  b.writeUInt16BE(12, 2);
  b.writeBigUInt64BE(BigInt(offset), 4);
  b.writeUInt32BE(length, 12);
  return b;
}

/** Encode one REQ_PAGES_ID (type 3) message. */
export function encodeReqPagesId(offset: number, length: number, block: string): Buffer {
  const name = Buffer.from(block, "latin1");
  if (name.length > 255) throw new RangeError("RAMBlock name longer than 255 bytes");
  const b = Buffer.alloc(4 + 13 + name.length);
  b.writeUInt16BE(RP_REQ_PAGES_ID, 0);
  b.writeUInt16BE(13 + name.length, 2);
  b.writeBigUInt64BE(BigInt(offset), 4);
  b.writeUInt32BE(length, 12);
  b.writeUInt8(name.length, 16);
  name.copy(b, 17);
  return b;
}

/** Encode any message from type and payload. */
export function encodeMessage(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(4 + payload.length);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(payload.length, 2);
  payload.copy(b, 4);
  return b;
}

type State = "header" | "payload" | "bitmapSize" | "bitmapData" | "bitmapEnd";

export class ReturnPathFilter {
  private state: State = "header";
  private acc = Buffer.alloc(65535 + 4);
  private accLen = 0;
  private need = 4;
  private type = 0;
  private bitmapLeft = 0n;
  private lastBlock: string | null = null;
  private failed: ReturnPathError | null = null;
  /** Complete messages seen, by type. */
  readonly counts = new Map<number, number>();
  /** Bytes of the original stream consumed. */
  bytesIn = 0;
  /** Bytes inserted. */
  bytesInjected = 0;
  /** Bytes of the latest chunk given to push() that went out through the `forward` hook. */
  forwardedOfChunk = 0;
  /** During push(): hand the chunk's bytes so far to the `forward` hook (set only with one). */
  private forwardSoFar: (() => void) | null = null;

  constructor(private readonly hooks: ReturnPathFilterHooks = {}) {}

  get lastBlockName(): string | null {
    return this.lastBlock;
  }

  /**
   * Consume one chunk; returns the bytes to forward (the chunk itself when nothing was inserted).
   * Throws ReturnPathError on a malformed message; the filter then refuses further input.
   */
  push(chunk: Buffer): Buffer {
    if (this.failed) throw this.failed;
    const out: Buffer[] = [];
    let from = 0; // start of the not yet emitted part of chunk
    let i = 0;
    this.forwardedOfChunk = 0;
    const forward = this.hooks.forward;
    if (forward) {
      this.forwardSoFar = () => {
        // what push() holds first (the requests injected after an earlier request of this chunk: a
        // bare REQ_PAGES means the block last named, so nothing may overtake them), then the chunk
        for (const held of out) forward(held);
        out.length = 0;
        if (i > from) { forward(chunk.subarray(from, i)); from = i; }
        this.forwardedOfChunk = from;
      };
    }
    try {
      while (i < chunk.length) {
        if (this.state === "bitmapData") {
          const take = Number(this.bitmapLeft < BigInt(chunk.length - i) ? this.bitmapLeft : BigInt(chunk.length - i));
          i += take;
          this.bitmapLeft -= BigInt(take);
          if (this.bitmapLeft === 0n) this.startFixed("bitmapEnd", 8);
          continue;
        }
        const take = Math.min(this.need - this.accLen, chunk.length - i);
        chunk.copy(this.acc, this.accLen, i, i + take);
        this.accLen += take;
        i += take;
        if (this.accLen < this.need) break;
        const inject = this.complete();
        if (inject && inject.length > 0) {
          if (i > from) out.push(chunk.subarray(from, i));
          from = i;
          for (const b of inject) {
            out.push(b);
            this.bytesInjected += b.length;
          }
        }
      }
    } catch (e) {
      if (e instanceof ReturnPathError) this.failed = e;
      throw e;
    } finally {
      this.forwardSoFar = null;
    }
    this.bytesIn += chunk.length;
    if (out.length === 0 && this.forwardedOfChunk === 0) return chunk;
    if (from < chunk.length) out.push(chunk.subarray(from));
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** True when the stream ended on a message boundary. */
  get atBoundary(): boolean {
    return this.state === "header" && this.accLen === 0;
  }

  private startFixed(state: State, need: number): void {
    this.state = state;
    this.need = need;
    this.accLen = 0;
  }

  /** A unit (header, payload, bitmap field) is complete in acc. Returns buffers to insert after it. */
  private complete(): Buffer[] | null {
    switch (this.state) {
      case "header": {
        this.type = this.acc.readUInt16BE(0);
        const len = this.acc.readUInt16BE(2);
        const fixed = FIXED_LEN[this.type];
        if (fixed !== undefined && len !== fixed) {
          throw new ReturnPathError(
            `return path: ${RP_TYPE_NAMES[this.type]} with payload length ${len}, expected ${fixed}`);
        }
        if (this.type === RP_REQ_PAGES_ID && len < 13) {
          throw new ReturnPathError(`return path: REQ_PAGES_ID with payload length ${len}, expected >= 13`);
        }
        if (this.type === RP_RECV_BITMAP && len < 1) {
          throw new ReturnPathError(`return path: RECV_BITMAP with empty payload`);
        }
        if (len === 0) return this.message(Buffer.alloc(0));
        this.startFixed("payload", len);
        return null;
      }
      case "payload":
        return this.message(Buffer.from(this.acc.subarray(0, this.accLen)));
      case "bitmapSize": {
        const size = this.acc.readBigUInt64BE(0);
        if (size > 1n << 40n) throw new ReturnPathError(`return path: receive bitmap of ${size} bytes`);
        this.bitmapLeft = size;
        if (size === 0n) this.startFixed("bitmapEnd", 8);
        else {
          this.state = "bitmapData";
          this.accLen = 0;
        }
        return null;
      }
      case "bitmapEnd":
        this.startFixed("header", 4);
        return null;
      default:
        throw new Error("unreachable");
    }
  }

  private message(payload: Buffer): Buffer[] | null {
    const type = this.type;
    this.startFixed("header", 4);
    this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
    let inject: Buffer[] | null = null;
    if (type === RP_REQ_PAGES_ID || type === RP_REQ_PAGES) {
      const offset = payload.readBigUInt64BE(0);
      const length = payload.readUInt32BE(8);
      let block: string;
      if (type === RP_REQ_PAGES_ID) {
        const n = payload.readUInt8(12);
        if (payload.length !== 13 + n) {
          throw new ReturnPathError(
            `return path: REQ_PAGES_ID payload length ${payload.length} does not match name length ${n}`);
        }
        block = payload.toString("latin1", 13, 13 + n);
        this.lastBlock = block;
      } else {
        if (this.lastBlock === null) throw new ReturnPathError("return path: REQ_PAGES before any REQ_PAGES_ID");
        block = this.lastBlock;
      }
      if (offset % BigInt(TARGET_PAGE_SIZE) !== 0n || length % TARGET_PAGE_SIZE !== 0 || length === 0 ||
          offset > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ReturnPathError(`return path: unaligned page request ${block}@0x${offset.toString(16)}+0x${length.toString(16)}`);
      }
      this.forwardSoFar?.(); // the request leaves first (hooks.forward)
      const ranges = this.hooks.onRequest?.({ block, offset: Number(offset), length, named: type === RP_REQ_PAGES_ID });
      if (ranges && ranges.length > 0) inject = ranges.map((r) => encodeReqPages(r.offset, r.length));
    } else if (type === RP_RECV_BITMAP) {
      const n = payload.readUInt8(0);
      if (payload.length !== 1 + n) {
        throw new ReturnPathError(`return path: RECV_BITMAP payload length ${payload.length} does not match name length ${n}`);
      }
      // The bitmap itself follows outside the message framing.
      this.startFixed("bitmapSize", 8);
    }
    this.hooks.onMessage?.({ type, payload });
    return inject;
  }
}
