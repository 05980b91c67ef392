/**
 * Switch-over rehearsal: what `train` learns besides the history's LRU misses.
 *
 * Post-copy serves the first touches that follow a switch-over. A history can say what those look
 * like: had the switch-over happened `len` accesses before the end of the history, the faults would
 * have been the pages of that suffix in order of first touch. `train` learns that sequence for
 * suffixes of growing length (4096, 6144, 8192, 12288, ... accesses, up to half the history), shortest
 * first, so the recent past, which every suffix contains, weighs most. The LRU-filtered history alone
 * cannot teach this: a hot page never misses the LRU filter, yet after a switch-over the hot set is
 * the first thing to fault, in an order only first touches show.
 *
 * A suffix whose distinct pages exceed REHEARSAL_PAGES ends the rehearsal (the core's scratch
 * tables are sized for that at creation); it and longer ones are not learned. No suffix is longer
 * than REHEARSAL_TAIL, the most of a history that is kept for it.
 *
 * The history is the sum of a stream's train() calls since the last rehearsal: calls add up, so a
 * history fed in chunks learns what it would have learned in one call. The rehearsal needs the end
 * of that history, which only the switch-over fixes; so it is pending until then (the first
 * predictNext or observe, or an explicit rehearse()), and PendingHistories keeps each stream's last
 * REHEARSAL_TAIL pages until it runs.
 *
 * Memory: those pages are held on the caller's behalf, so they have a budget, the option
 * `pendingBudget` (pages, all streams together; default PENDING_BUDGET = 2^21, what one stream
 * keeps: a single-stream history is rehearsed exactly as without a budget). A stream's kept pages
 * are min(its pages since the last rehearsal, REHEARSAL_TAIL); when a train() call leaves the kept
 * pages of all streams above the budget, the stream keeping the most (the lowest stream id among
 * equals) drops the older half of what it keeps, and again until the total fits: each stream keeps
 * the most recent part of its history, and the budget ends up shared about evenly (within a factor
 * of two) among the streams that train. The rehearsal then stops at the longest suffix a stream
 * still keeps (rehearsalLengths' `kept`): it loses the longest suffixes, never the recent ones that
 * weigh most. The buffers that hold the kept pages take at most twice as many (they trim in bulk),
 * so the pending histories take at most 8 x pendingBudget bytes (16 MiB by default; plus at most
 * 256 bytes per stream) whatever the number of streams (before the budget: up to 16 MiB per stream, 64 GiB for 4096 streams).
 * Snapshots carry the kept pages; restore refuses more than the options' budget.
 */
import { ABI } from "./wasm.js";

export const REHEARSAL_MIN = 4096;
export const REHEARSAL_PAGES = ABI.rehearsalPages; // the core's scratch (assembly/layout.ts)
export const REHEARSAL_TAIL = 1 << 21;
export const PENDING_BUDGET = REHEARSAL_TAIL;

/**
 * Suffix lengths rehearsed for a history of n pages of which the last `kept` are kept, shortest
 * first: 1, 1.5, 2, 3, 4, 6, ... x REHEARSAL_MIN, at most n / 2, at most REHEARSAL_TAIL and at most
 * `kept` (a stream that shed pages under the budget: see above).
 */
export function rehearsalLengths(n: number, kept = Infinity): number[] {
  const out: number[] = [];
  for (let k = 0; ; k++) {
    const base = REHEARSAL_MIN * 2 ** (k >> 1);
    const len = k & 1 ? base + base / 2 : base;
    if (len > n / 2 || len > REHEARSAL_TAIL || len > kept) return out;
    out.push(len);
  }
}

/** A stream's history awaiting its rehearsal: its length and its last pages (at most REHEARSAL_TAIL; fewer under the budget). */
export interface PendingHistory {
  stream: number;
  length: number;
  tail: Uint32Array;
}

interface Tail {
  length: number;
  buf: Uint32Array; // pages [0, kept) are the history's last `kept` (kept >= min(length, REHEARSAL_TAIL))
  kept: number;
}

/**
 * The histories trained since the last rehearsal, by stream. Appending is amortised O(1) per page:
 * the buffer grows to 2 x REHEARSAL_TAIL and then drops its oldest pages down to REHEARSAL_TAIL at once.
 * The pages kept across streams stay within `budget` (see above: the largest keeper halves).
 */
export class PendingHistories {
  private tails = new Map<number, Tail>();
  private keptPages = 0; // sum over streams of min(kept, REHEARSAL_TAIL)

  constructor(readonly budget: number = PENDING_BUDGET) {}

  /** Pages kept for the rehearsal, all streams (at most `budget`). */
  get kept(): number { return this.keptPages; }

  get size(): number { return this.tails.size; }

  /** Pages of buffer held, all streams (at most 2 x kept + 64 per stream: see above). */
  get held(): number {
    let n = 0;
    for (const t of this.tails.values()) n += t.buf.length;
    return n;
  }

  /** Pages trained since the last rehearsal, all streams. */
  get pages(): number {
    let n = 0;
    for (const t of this.tails.values()) n += t.length;
    return n;
  }

  /** Add pages (already validated) to `stream`'s history, then bring the kept pages within the budget. */
  append(stream: number, pages: Uint32Array | readonly number[]): void {
    let t = this.tails.get(stream);
    if (!t) this.tails.set(stream, (t = { length: 0, buf: new Uint32Array(0), kept: 0 }));
    const before = Math.min(t.kept, REHEARSAL_TAIL);
    this.extend(t, pages);
    this.keptPages += Math.min(t.kept, REHEARSAL_TAIL) - before;
    while (this.keptPages > this.budget) this.halveLargest();
  }

  /** The stream keeping the most pages (the lowest id among equals) keeps only the newer half. */
  private halveLargest(): void {
    let id = -1, most = -1;
    for (const [s, t] of this.tails) {
      const k = Math.min(t.kept, REHEARSAL_TAIL);
      if (k > most || (k === most && s < id)) { most = k; id = s; }
    }
    const t = this.tails.get(id)!;
    const keep = Math.floor(most / 2);
    t.buf = t.buf.slice(t.kept - keep, t.kept); // a new, smaller buffer: the memory goes back
    t.kept = keep;
    this.keptPages -= most - keep;
  }

  private extend(t: Tail, pages: Uint32Array | readonly number[]): void {
    const c = pages.length;
    t.length += c;
    if (c >= REHEARSAL_TAIL) { // only the end of this chunk survives
      t.buf = new Uint32Array(REHEARSAL_TAIL);
      copyInto(t.buf, 0, pages, c - REHEARSAL_TAIL, c);
      t.kept = REHEARSAL_TAIL;
      return;
    }
    if (t.kept + c > 2 * REHEARSAL_TAIL) {
      // Keep the last REHEARSAL_TAIL - c old pages: REHEARSAL_TAIL after this chunk. They fit: the
      // buffer already holds more than REHEARSAL_TAIL.
      const keep = REHEARSAL_TAIL - c;
      t.buf.copyWithin(0, t.kept - keep, t.kept);
      t.kept = keep;
    } else if (t.kept + c > t.buf.length) {
      const grown = new Uint32Array(Math.min(2 * REHEARSAL_TAIL, Math.max(t.kept + c, 2 * t.buf.length, 64)));
      grown.set(t.buf.subarray(0, t.kept));
      t.buf = grown;
    }
    copyInto(t.buf, t.kept, pages, 0, c);
    t.kept += c;
  }

  /** The pending histories in stream order (their tails are views: use them before the next append). */
  list(): PendingHistory[] {
    return [...this.tails].sort((a, b) => a[0] - b[0])
      .map(([stream, t]) => ({ stream, length: t.length, tail: t.buf.subarray(Math.max(0, t.kept - REHEARSAL_TAIL), t.kept) }));
  }

  clear(): void { this.tails.clear(); this.keptPages = 0; }

  /** Bytes: u32 count, then per stream u32 stream, f64 length, u32 kept, kept x u32 pages (little-endian). */
  encode(): Uint8Array {
    const list = this.list();
    const out = new Uint8Array(4 + list.reduce((a, h) => a + 16 + 4 * h.tail.length, 0));
    const dv = new DataView(out.buffer);
    dv.setUint32(0, list.length, true);
    let at = 4;
    for (const h of list) {
      dv.setUint32(at, h.stream, true);
      dv.setFloat64(at + 4, h.length, true);
      dv.setUint32(at + 12, h.tail.length, true);
      at += 16;
      for (let i = 0; i < h.tail.length; i++, at += 4) dv.setUint32(at, h.tail[i], true);
    }
    return out;
  }

  /** The inverse of encode(); throws a RangeError naming what is wrong (the argument is `bytes`). */
  static decode(bytes: Uint8Array, streams: number, pageCount: number, budget: number = PENDING_BUDGET): PendingHistories {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const bad = (what: string) => new RangeError(`bytes holds a bad pending history: ${what}`);
    if (bytes.length < 4) throw bad(`${bytes.length} bytes`);
    const n = dv.getUint32(0, true);
    const out = new PendingHistories(budget);
    let at = 4;
    for (let k = 0; k < n; k++) {
      if (at + 16 > bytes.length) throw bad(`truncated at stream ${k} of ${n}`);
      const stream = dv.getUint32(at, true);
      const length = dv.getFloat64(at + 4, true);
      const kept = dv.getUint32(at + 12, true);
      at += 16;
      if (stream >= streams || out.tails.has(stream)) throw bad(`stream ${stream}`);
      if (!Number.isSafeInteger(length) || length < 1 || kept > Math.min(length, REHEARSAL_TAIL)) throw bad(`length ${length} with ${kept} pages kept`);
      if (at + 4 * kept > bytes.length) throw bad(`truncated in stream ${stream}'s pages`);
      if (out.keptPages + kept > budget) throw bad(`${out.keptPages + kept} pages kept, more than pendingBudget ${budget}`);
      const buf = new Uint32Array(kept);
      for (let i = 0; i < kept; i++, at += 4) {
        buf[i] = dv.getUint32(at, true);
        if (buf[i] >= pageCount) throw bad(`page ${buf[i]} of stream ${stream} is not below pageCount ${pageCount}`);
      }
      out.tails.set(stream, { length, buf, kept });
      out.keptPages += kept;
    }
    if (at !== bytes.length) throw bad(`${bytes.length - at} trailing bytes`);
    return out;
  }
}

function copyInto(dst: Uint32Array, at: number, src: Uint32Array | readonly number[], from: number, to: number): void {
  if (src instanceof Uint32Array) dst.set(src.subarray(from, to), at);
  else for (let i = from; i < to; i++) dst[at + i - from] = src[i];
}
