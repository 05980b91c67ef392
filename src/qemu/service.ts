/**
 * Service times of page requests as the proxy sees them from the middle of the link: a request is
 * seen on the return path (destination -> source), its page later in the forward stream (main or
 * postcopy-preempt channel). The source's queue is what has been requested and not yet seen.
 *
 * Times are the proxy's (`performance.now()` when a chunk arrives from either side); with
 * `--delay-ms D` a request reaches the source D ms after the proxy saw it, so the source's own share
 * of a service time is that time minus D (the page's forward delay comes after the proxy saw it).
 */
import type { ChannelKind } from "./forward.js";

export interface Dist {
  count: number;
  median: number;
  p90: number;
  max: number;
  mean: number;
}

export interface ServiceReport {
  /** The forward stream could be followed (else the reason, and the figures stop there). */
  followed: { main: string; preempt: string };
  /** Pages seen in the forward stream per channel. */
  pagesSeen: { main: number; preempt: number };
  /** Destination requests: request seen -> page seen, ms (pages that were not yet on their way). */
  dest: Dist;
  /** ... of which the page had been requested by the proxy before and was still outstanding. */
  destOnInjected: Dist;
  /** ... of which nothing the proxy injected was outstanding at the request. */
  destQueueEmpty: Dist;
  /** ... of which injected pages were outstanding at the request. */
  destQueueBusy: Dist;
  /** Destination requests by the channel their page came on. */
  destByChannel: { main: Dist; preempt: Dist };
  /** Injected pages: injected -> seen, ms. */
  injected: Dist;
  /** Destination requests for a page already seen going forward (in flight when the guest faulted). */
  destAlreadySent: number;
  /** Injected pages already seen going forward (wasted, skipped by the source). */
  injectedAlreadySent: number;
  /** Requested pages never seen (still outstanding at the end). */
  neverSeen: { dest: number; injected: number };
  /** Pages outstanding at each destination request (all / injected only). */
  queueAtDestRequest: Dist;
  injectedQueueAtDestRequest: Dist;
  /** Per destination request, in order: [ms since the first request, service ms or -1, outstanding injected pages, page]. */
  timeline: [number, number, number, number][];
  /**
   * Per injected page, in order: [ms since the first request, service ms or -1 (never seen), page,
   * channel it came on (0 main, 1 preempt, -1 none)].
   */
  injectedTimeline: [number, number, number, number][];
}

interface Pending {
  t: number;
  /** Index in the injected timeline (injected pages). */
  ix: number;
  injected: boolean;
  /** When the destination asked for it too (an injected page the guest then faulted on). */
  destAt: number;
  queueBusy: boolean;
}

export class ServiceTracker {
  private pending = new Map<string, Map<number, Pending>>();
  private seen = new Map<string, Set<number>>();
  private injectedOutstanding = 0;
  private first = -1;
  private samples = {
    dest: [] as number[], destOnInjected: [] as number[], destQueueEmpty: [] as number[], destQueueBusy: [] as number[],
    main: [] as number[], preempt: [] as number[], injected: [] as number[], queue: [] as number[], injQueue: [] as number[],
  };
  private timeline: [number, number, number, number][] = [];
  private injTimeline: [number, number, number, number][] = [];
  private timelineIndex = new Map<string, number>();
  destAlreadySent = 0;
  injectedAlreadySent = 0;
  pagesSeen = { main: 0, preempt: 0 };
  followed = { main: "not seen", preempt: "not seen" };

  /** Pages requested (by anyone) and not yet seen going forward. */
  get outstanding(): number {
    let n = 0;
    for (const m of this.pending.values()) n += m.size;
    return n;
  }

  /** Injected pages not yet seen going forward (the proxy's share of the source's queue). */
  get outstandingInjected(): number {
    return this.injectedOutstanding;
  }

  private blockSeen(block: string): Set<number> {
    let s = this.seen.get(block);
    if (!s) this.seen.set(block, (s = new Set()));
    return s;
  }

  private blockPending(block: string): Map<number, Pending> {
    let s = this.pending.get(block);
    if (!s) this.pending.set(block, (s = new Map()));
    return s;
  }

  isSeen(block: string, page: number): boolean {
    return this.seen.get(block)?.has(page) ?? false;
  }

  /**
   * The source discarded pages [first, first+n) of a block at the switch-over (MIG_CMD_POSTCOPY_RAM_DISCARD):
   * whatever went by for them is gone from the destination; they count as not seen again. Bounded
   * by the pages seen, whatever `n` says (the range comes from the stream).
   */
  forget(block: string, first: number, n: number): void {
    const seen = this.seen.get(block);
    if (!seen || n <= 0) return;
    if (n <= seen.size) { for (let p = first; p < first + n; p++) seen.delete(p); return; }
    for (const p of seen) if (p >= first && p < first + n) seen.delete(p);
  }

  /** A destination request for pages [first, first+n) of a block, seen at `now`. */
  onDestRequest(block: string, first: number, n: number, now: number): void {
    if (this.first < 0) this.first = now;
    this.samples.queue.push(this.outstanding);
    this.samples.injQueue.push(this.injectedOutstanding);
    const seen = this.blockSeen(block), pend = this.blockPending(block);
    const busy = this.injectedOutstanding > 0;
    for (let p = first; p < first + n; p++) {
      const key = `${block}:${p}`;
      this.timelineIndex.set(key, this.timeline.length);
      this.timeline.push([round(now - this.first), -1, this.injectedOutstanding, p]);
      if (seen.has(p)) { this.destAlreadySent++; this.timeline[this.timeline.length - 1][1] = 0; continue; }
      const e = pend.get(p);
      if (e) { if (e.destAt < 0) { e.destAt = now; e.queueBusy = busy; } continue; }
      pend.set(p, { t: now, ix: -1, injected: false, destAt: now, queueBusy: busy });
    }
  }

  /** Pages the proxy requested on the destination's behalf. */
  onInjected(block: string, first: number, n: number, now: number): void {
    const seen = this.blockSeen(block), pend = this.blockPending(block);
    for (let p = first; p < first + n; p++) {
      if (seen.has(p)) { this.injectedAlreadySent++; continue; }
      if (pend.has(p)) continue;
      if (this.first < 0) this.first = now;
      pend.set(p, { t: now, ix: this.injTimeline.length, injected: true, destAt: -1, queueBusy: false });
      this.injTimeline.push([round(now - this.first), -1, p, -1]);
      this.injectedOutstanding++;
    }
  }

  /** A page went by in the forward stream. */
  onPage(block: string, page: number, channel: ChannelKind, now: number): void {
    this.pagesSeen[channel]++;
    this.blockSeen(block).add(page);
    const pend = this.pending.get(block);
    const e = pend?.get(page);
    if (!e) return;
    pend!.delete(page);
    if (e.injected) {
      this.injectedOutstanding--;
      this.samples.injected.push(now - e.t);
      const it = this.injTimeline[e.ix];
      if (it) { it[1] = round(now - e.t); it[3] = channel === "main" ? 0 : 1; }
    }
    if (e.destAt >= 0) {
      const ms = now - e.destAt;
      this.samples.dest.push(ms);
      (e.injected ? this.samples.destOnInjected : e.queueBusy ? this.samples.destQueueBusy : this.samples.destQueueEmpty).push(ms);
      this.samples[channel].push(ms);
      const k = this.timelineIndex.get(`${block}:${page}`);
      if (k !== undefined) this.timeline[k][1] = round(ms);
    }
  }

  report(): ServiceReport {
    let nd = 0, ni = 0;
    for (const m of this.pending.values()) for (const e of m.values()) { if (e.destAt >= 0) nd++; else if (e.injected) ni++; }
    const s = this.samples;
    return {
      followed: { ...this.followed },
      pagesSeen: { ...this.pagesSeen },
      dest: dist(s.dest), destOnInjected: dist(s.destOnInjected), destQueueEmpty: dist(s.destQueueEmpty), destQueueBusy: dist(s.destQueueBusy),
      destByChannel: { main: dist(s.main), preempt: dist(s.preempt) },
      injected: dist(s.injected),
      destAlreadySent: this.destAlreadySent, injectedAlreadySent: this.injectedAlreadySent,
      neverSeen: { dest: nd, injected: ni },
      queueAtDestRequest: dist(s.queue), injectedQueueAtDestRequest: dist(s.injQueue),
      timeline: this.timeline.slice(0, 2000),
      injectedTimeline: this.injTimeline.slice(0, 2000),
    };
  }
}

export function dist(xs: number[]): Dist {
  if (xs.length === 0) return { count: 0, median: 0, p90: 0, max: 0, mean: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(s.length * f))];
  return { count: s.length, median: round(q(0.5)), p90: round(q(0.9)), max: round(s[s.length - 1]), mean: round(s.reduce((a, b) => a + b, 0) / s.length) };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
