/**
 * A background push that replays history: after a fault on page p, push the pages that followed p's
 * last occurrence in the recorded history, in that order (temporal streaming), interleaved with a
 * spatial push.
 *
 * Why: with a push running the link is the bottleneck, and most of the stall that is left is not the
 * faults but accesses waiting for pages still queued behind others. What pays then is the order of
 * the push itself: pages in the order the guest will need them. A program that repeats itself (an
 * interpreter's dispatch loop, a compiler's passes, a query plan) touches after p what it touched
 * after p before; on memory scattered at 4 KiB only such a learned order can find those pages. (A
 * push in the true future order, the simulator's bound, takes 0.51x QEMU's stall over the 33 cells of
 * RESULTS.md section 2, against 0.72x for perfect predictions beside QEMU's push.)
 *
 * Why interleaved: where the guest does something new (a sort merging fresh runs) the history's
 * order is wrong and the spatial push around the fault is right; half the push each way keeps most
 * of both (RESULTS.md section 2 has the share measured).
 *
 * Costs: the history is kept as a copy (4 bytes per access, the newest HISTORY_MAX accesses) plus
 * one position per page; `next()` skips at most `scan` pages already sent per call (a hot set in the
 * history repeats), so a push step is bounded.
 */
import type { PushOrder } from "../sim/push.js";

/** The newest accesses kept (64 MiB of history at 4 bytes each). */
const HISTORY_MAX = 1 << 24;

export interface TemporalPushOptions {
  /** How far past the fault's last occurrence the stream goes (history entries). */
  span?: number;
  /** Most history entries skipped (already sent) in one next() call. */
  scan?: number;
  /** One push page in `share` comes from the stream (2: every other page); with `adaptive`, the share it starts from. */
  share?: number;
  /**
   * Move the share between the stream and the spatial push by which of the two was nearer to each
   * fault's page (see `judge`), instead of keeping it fixed.
   */
  adaptive?: boolean;
}

/** Per judged fault: the two sides' credits follow the last ~50 faults (a program's phase). */
const CREDIT_DECAY = 0.98;
/** A fault further than this many pushes from both sides says nothing about either. */
const JUDGE_RANK = 256;
/** Neither side's share goes under this: the other side keeps being tried, so a phase change is seen. */
const MIN_SHARE = 1 / 8;

export class TemporalPush {
  private hist = new Uint32Array(1024);
  private len = 0;
  /** Each page's last position in `hist` + 1 (0: never seen). */
  private last: Uint32Array;
  /** `hist` and `last` are another instance's too (fork): copy before writing. */
  private shared = false;
  private cursor = 0;
  private stop = 0;
  private turn = 0;
  private readonly span: number;
  private readonly scan: number;
  private readonly share: number;
  private readonly adaptive: boolean;
  /** Decayed counts of faults the stream (histCredit) or the spatial push (spaceCredit) was nearer to. */
  histCredit = 0;
  spaceCredit = 0;

  constructor(readonly pageCount: number, { span = 4096, scan = 512, share = 2, adaptive = false }: TemporalPushOptions = {}) {
    for (const [k, v] of Object.entries({ span, scan, share })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
    if (typeof adaptive !== "boolean") throw new TypeError(`adaptive must be a boolean, got ${JSON.stringify(adaptive)}`);
    this.span = span; this.scan = scan; this.share = share; this.adaptive = adaptive;
    this.last = new Uint32Array(pageCount);
  }

  /** The stream's share of the push now: fixed (1 / share), or from the credits when adaptive. */
  get streamShare(): number {
    if (!this.adaptive) return 1 / this.share;
    // the prior is the fixed share's, worth one fault on each side
    const prior = 1 / this.share;
    const f = (this.histCredit + 2 * prior) / (this.histCredit + this.spaceCredit + 2);
    return Math.min(1 - MIN_SHARE, Math.max(MIN_SHARE, f));
  }

  /**
   * A push over the same history with its own position: the history and the page index are shared,
   * not copied (a page server runs one push per migration over one history). Either may learn later;
   * it then copies them first.
   */
  fork(): TemporalPush {
    const t = Object.create(TemporalPush.prototype) as TemporalPush;
    Object.assign(t, this, { cursor: 0, stop: 0, turn: 0, shared: true, histCredit: 0, spaceCredit: 0 });
    this.shared = true;
    return t;
  }

  /** Append recorded accesses, oldest first (pages outside the guest are ignored). */
  learn(pages: ArrayLike<number>): void {
    if (this.shared) { this.hist = this.hist.slice(); this.last = this.last.slice(); this.shared = false; }
    const n = pages.length;
    const from = Math.max(0, n - HISTORY_MAX); // more than fits: the newest
    if (this.len + n - from > this.hist.length) this.grow(n - from);
    for (let i = from; i < n; i++) {
      const p = pages[i];
      if (!(p >= 0 && p < this.pageCount)) continue;
      this.hist[this.len++] = p;
      this.last[p] = this.len;
    }
  }

  /** Accesses held. */
  get length(): number { return this.len; }

  /** A fault on p: the stream restarts after p's last occurrence (or goes on where it was if p is new). */
  recentre(p: number): void {
    const at = p >= 0 && p < this.pageCount ? this.last[p] : 0;
    if (at === 0) return;
    this.cursor = at;
    this.stop = Math.min(this.len, at + this.span);
  }

  /** The first n distinct pages not yet committed after p's last occurrence (within the span), without moving the stream. */
  peek(p: number, state: Uint8Array, n: number): number[] {
    const out: number[] = [];
    const at = p >= 0 && p < this.pageCount ? this.last[p] : 0;
    if (at === 0) return out;
    for (let i = at, e = Math.min(this.len, at + this.span); i < e && out.length < n; i++) if (state[this.hist[i]] === 0 && !out.includes(this.hist[i])) out.push(this.hist[i]);
    return out;
  }

  /** The stream's next page not yet committed (`state[p] === 0`), or -1. */
  nextFromStream(state: Uint8Array): number {
    for (let scanned = 0; this.cursor < this.stop && scanned < this.scan; scanned++) {
      const q = this.hist[this.cursor++];
      if (state[q] === 0) return q;
    }
    return -1;
  }

  /**
   * `base` with every `share`-th page taken from the stream while it has one; when adaptive, with the
   * stream's `streamShare` of the pages (a credit counter: smooth, no bursts).
   */
  steer(base: PushOrder): PushOrder {
    if (this.adaptive) return this.steerAdaptive(base);
    return {
      next: (state) => {
        if (this.cursor < this.stop && ++this.turn % this.share === 0) {
          const q = this.nextFromStream(state);
          if (q >= 0) return q;
        }
        return base.next(state);
      },
      onFault: (page) => { base.onFault(page); this.recentre(page); },
    };
  }

  private steerAdaptive(base: PushOrder): PushOrder {
    let credit = 0;
    let lastFault = -1;
    let spatialSince = 0; // pushes the spatial side made since the latest fault
    let seen: Uint8Array | null = null; // the caller's committed-page state, for judging the next fault
    return {
      next: (state) => {
        seen = state;
        if (this.cursor < this.stop) {
          credit += this.streamShare;
          if (credit >= 1) {
            const q = this.nextFromStream(state);
            if (q >= 0) { credit -= 1; return q; }
            credit = Math.min(credit, 1); // nothing within the scan bound now: no burst later
          }
        }
        spatialSince++;
        return base.next(state);
      },
      onFault: (page) => {
        if (seen && lastFault >= 0) this.judge(page, lastFault, spatialSince, seen);
        base.onFault(page);
        this.recentre(page);
        lastFault = page;
        spatialSince = 0;
      },
    };
  }

  /**
   * A fault is a page neither side pushed in time. The side that was nearer to pushing it (fewer pages
   * of its own order still ahead of it) is the one whose order the guest is following, so it earns
   * the credit: a program replaying its history faults just ahead of the stream, one doing something
   * new (a sort merging fresh runs) faults next to its latest fault. Nearness in each side's own
   * order: the stream counts the uncommitted entries between its position and the page; the spatial
   * push (Hines' bubbling: a page back and a page forward in turn from the latest fault) reaches -d
   * after about 2d - 1 of its pushes and +d after 2d, minus those it already made. Pages are an address
   * measure for the spatial side, so where memory is scattered (4 KiB) it is nearer only by chance.
   */
  private judge(p: number, from: number, spatialSince: number, state: Uint8Array): void {
    let histRank = Infinity;
    for (let i = this.cursor, e = Math.min(this.stop, this.cursor + 4 * JUDGE_RANK), r = 0; i < e && r <= JUDGE_RANK; i++) {
      const q = this.hist[i];
      if (q === p) { histRank = r; break; }
      if (state[q] === 0) r++;
    }
    const d = p - from;
    const spaceRank = Math.max(0, (d > 0 ? 2 * d : -2 * d - 1) - spatialSince);
    this.histCredit *= CREDIT_DECAY;
    this.spaceCredit *= CREDIT_DECAY;
    if (histRank > JUDGE_RANK && spaceRank > JUDGE_RANK) return;
    if (histRank < spaceRank) this.histCredit++;
    else if (spaceRank < histRank) this.spaceCredit++;
    else { this.histCredit += 0.5; this.spaceCredit += 0.5; }
  }

  /** Room for `incoming` more entries (at most HISTORY_MAX): drops the oldest when the total would not fit. */
  private grow(incoming: number): void {
    let need = this.len + incoming;
    if (need > HISTORY_MAX) {
      // Keep the newest: drop the oldest (at least half of what is held, and enough for the incoming
      // entries). Positions shift down; pages whose last occurrence is dropped are forgotten.
      const keep = Math.max(0, Math.min(this.len, HISTORY_MAX >>> 1, HISTORY_MAX - incoming));
      const drop = this.len - keep;
      this.hist.copyWithin(0, drop, this.len);
      this.len = keep;
      for (let p = 0; p < this.pageCount; p++) this.last[p] = this.last[p] > drop ? this.last[p] - drop : 0;
      // A stream inside the dropped part has nothing left to replay.
      if (this.cursor < drop) { this.cursor = 0; this.stop = 0; } else { this.cursor -= drop; this.stop = Math.max(0, this.stop - drop); }
      need = keep + incoming;
    }
    let cap = this.hist.length;
    while (cap < need) cap *= 2;
    if (cap === this.hist.length) return;
    const h = new Uint32Array(Math.min(cap, HISTORY_MAX));
    h.set(this.hist.subarray(0, this.len));
    this.hist = h;
  }
}
