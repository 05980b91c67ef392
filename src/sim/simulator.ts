/**
 * The post-copy simulator: discrete-event, deterministic, one strategy per run.
 *
 * Guest. After switch-over every vCPU stream replays its accesses; an access's `gap` takes
 * gap / ips seconds of guest time (gaps count per stream). An access to a page that is not present
 * stalls its stream until the page arrives; the other streams run on. Streams are interleaved in
 * time order (ties: lower stream first), so the run is a pure function of its inputs.
 *
 * Destination. An access to an absent page the destination has not requested yet sends a request,
 * which reaches the source one latency later. The destination does not know what the source is
 * sending, so it also asks for pages already on the wire. At the source a request is a network fault
 * when the page has not left yet (the request is what sends it: faults == faulted pages sent); when
 * the page already left (predicted or pushed, just not early enough) it is an in-flight wait: the
 * guest stalls until the page lands, and the source drops the request as QEMU does for a page no
 * longer dirty in its bitmap (no onFault, no scanner jump; its piggybacked feedback is still
 * delivered). So every fault brings at most depth + 1 new pages and, without push, faults can never
 * fall below (distinct pages touched) / (depth + 1): the oracle's floor. A second stream touching a page already requested waits for it without a
 * new request. Feedback (which prefetched pages the guest touched) rides on the next request.
 *
 * Source and link. Requests reach the source in the order they were sent (one fixed latency). The
 * link sends one message at a time with three priorities: the faulted page (after the message in
 * progress), then predicted pages (ordered by the queue policy), then the background push. The link is
 * advanced lazily: before a request at source time r, everything that would have started sending
 * before r is scheduled; before a presence check at guest time t, everything starting before t - latency.
 * Neither decision can be changed by a later event, because requests arrive in order. Each footprint
 * page is committed exactly once (a page sent twice throws), so a prediction changes the order of
 * transfer, never the volume. With push `none` whatever is left is flushed when the guest finishes.
 *
 * Strategy calls (all at the source): train(history) once; at each request: onTouch for the
 * piggybacked feedback, then onFault; onPresent for every page the source commits to send (faulted,
 * predicted or pushed) at the moment it commits.
 */
import type { SimStrategy } from "../strategies/context.js";
import { createPush, type PushMode } from "./push.js";
import { summarizeStalls, type SimResult } from "./metrics.js";
import type { LinkConfig } from "./link.js";

export interface SimTrace {
  name: string;
  /** Guest-physical pages (after layout), the whole trace. */
  pages: Uint32Array;
  gaps: Uint32Array;
  streams: Uint16Array;
  pageCount: number;
}

export interface SimParams {
  /** Fraction of the trace before switch-over (history). */
  switchAt: number;
  /** Guest instructions per second. */
  ips: number;
  /** Most predicted pages taken per fault. */
  depth: number;
  push: PushMode;
  feedback: boolean;
  /**
   * Order of predicted pages still waiting for the link when a new fault brings new ones:
   * `fifo` (first come, first served), `newest` (the latest fault's batch first, then older
   * leftovers), `replace` (leftovers of older batches go back to the background pool; the strategy
   * hears onPresent for a predicted page only when it is actually sent).
   */
  queue: QueuePolicy;
  /**
   * Bytes the link takes ahead of the page on the wire (a NIC's or an emulator's FIFO queue): the
   * source hands pages to it in priority order, but once handed over a page cannot be overtaken, so a
   * fault's page waits behind them. 0 (the default): the link is preemptible at every page.
   */
  linkQueueBytes?: number;
  /**
   * Time a fault's round trip costs beyond the link's delay and serialization: the hosts' software
   * (a fault handler, event loops, a busy CPU), in microseconds. 0 (the default): none.
   */
  requestOverheadUs?: number;
}

export type QueuePolicy = "fifo" | "newest" | "replace";
export const QUEUE_POLICIES: readonly QueuePolicy[] = ["fifo", "newest", "replace"];

/**
 * Defaults. The push defaults to QEMU's scanner: every predicting strategy runs on top of QEMU's
 * postcopy as shipped (which is what the qemu-proxy does), so the link is never idle while pages are
 * missing and a prediction only changes the order of transfer. `demand`, `qemu` and `hines` carry
 * their own push (none, qemu, hines).
 */
export const DEFAULT_PARAMS: SimParams = { switchAt: 0.3, ips: 1e9, depth: 8, push: "qemu", feedback: true, queue: "fifo" };
export const DEFAULT_LATENCY_US = 50;
export const DEFAULT_PAGE_SIZE = 4096;
export const DEFAULT_HEADER_BYTES = 16;

/** Everything about a trace that does not depend on the strategy, computed once per (trace, layout). */
export interface Prepared {
  trace: SimTrace;
  switchIndex: number;
  /** Footprint (distinct pages of the whole trace), ascending. */
  footprint: Uint32Array;
  inFootprint: Uint8Array;
  /** Post-switch access indices grouped by stream: streamOrder[streamStart[k] .. streamStart[k+1]). */
  streamOrder: Uint32Array;
  streamStart: Uint32Array;
  streamIds: number[];
  /** Largest stream id + 1. */
  streamCount: number;
  /** Distinct pages touched after switch-over. */
  demandFaults: number;
  /** Run time after switch-over without migration (slowest stream), at the given ips. */
  baselineS: number;
  ips: number;
}

export function prepare(trace: SimTrace, switchAt: number, ips: number): Prepared {
  const n = trace.pages.length;
  const switchIndex = Math.min(n, Math.max(0, Math.floor(n * switchAt)));
  const inFootprint = new Uint8Array(trace.pageCount);
  let fp = 0;
  for (let i = 0; i < n; i++) { const p = trace.pages[i]; if (!inFootprint[p]) { inFootprint[p] = 1; fp++; } }
  const footprint = new Uint32Array(fp);
  for (let p = 0, k = 0; k < fp; p++) if (inFootprint[p]) footprint[k++] = p;
  // streams
  let maxS = 0;
  for (let i = 0; i < n; i++) if (trace.streams[i] > maxS) maxS = trace.streams[i];
  const counts = new Uint32Array(maxS + 1);
  for (let i = switchIndex; i < n; i++) counts[trace.streams[i]]++;
  const streamIds: number[] = [];
  for (let s = 0; s <= maxS; s++) if (counts[s] > 0) streamIds.push(s);
  const streamStart = new Uint32Array(streamIds.length + 1);
  const slot = new Int32Array(maxS + 1).fill(-1);
  streamIds.forEach((s, k) => { slot[s] = k; streamStart[k + 1] = streamStart[k] + counts[s]; });
  const fillAt = streamStart.slice(0, streamIds.length);
  const streamOrder = new Uint32Array(n - switchIndex);
  const busy = new Float64Array(streamIds.length);
  const seen = new Uint8Array(trace.pageCount);
  let demandFaults = 0;
  for (let i = switchIndex; i < n; i++) {
    const k = slot[trace.streams[i]];
    streamOrder[fillAt[k]++] = i;
    busy[k] += trace.gaps[i];
    const p = trace.pages[i];
    if (!seen[p]) { seen[p] = 1; demandFaults++; }
  }
  let baselineS = 0;
  for (let k = 0; k < busy.length; k++) baselineS = Math.max(baselineS, busy[k] / ips);
  return { trace, switchIndex, footprint, inFootprint, streamOrder, streamStart, streamIds, streamCount: maxS + 1, demandFaults, baselineS, ips };
}

/** The pre-switch-over history, as strategies receive it. */
export function history(p: Prepared): { pages: Uint32Array; streams: Uint16Array } {
  return { pages: p.trace.pages.subarray(0, p.switchIndex), streams: p.trace.streams.subarray(0, p.switchIndex) };
}

/** The post-switch-over future (for the oracle only). */
export function future(p: Prepared): { pages: Uint32Array; streams: Uint16Array } {
  return { pages: p.trace.pages.subarray(p.switchIndex), streams: p.trace.streams.subarray(p.switchIndex) };
}

const ABSENT = 0, QUEUED = 1, SENT = 2;
const BY_DEMAND = 1, BY_PREDICTION = 2, BY_PUSH = 3;

/** Run one strategy (already trained) over a prepared trace. */
export function simulate(prep: Prepared, strategy: SimStrategy, link: LinkConfig, params: SimParams): SimResult {
  const wall0 = performance.now();
  const { trace, footprint, inFootprint, streamOrder, streamStart } = prep;
  const { pages, gaps } = trace;
  const pageCount = trace.pageCount;
  const ips = params.ips;
  const L = link.latencyS;
  const txPage = ((link.pageSize + link.headerBytes) * 8) / link.bitsPerSecond;
  const txZero = (link.headerBytes * 8) / link.bitsPerSecond;
  const queueS = ((params.linkQueueBytes ?? 0) * 8) / link.bitsPerSecond;
  const overheadS = (params.requestOverheadUs ?? 0) * 1e-6;
  const pushMode: PushMode = strategy.push ?? params.push;
  const base = createPush(pushMode, footprint);
  let push = strategy.steerPush && pushMode !== "none" ? strategy.steerPush(base) : base;
  let pushing = pushMode !== "none";

  const state = new Uint8Array(pageCount);
  const arrival = new Float64Array(pageCount);
  const origin = new Uint8Array(pageCount);
  const requested = new Uint8Array(pageCount);
  const touched = new Uint8Array(pageCount);
  const policy = params.queue;
  const batches: { pages: number[]; i: number }[] = [];
  let bHead = 0; // fifo: first live batch
  const nextPredicted = (): number => {
    if (policy === "newest") {
      while (batches.length > 0) {
        const b = batches[batches.length - 1];
        while (b.i < b.pages.length) { const c = b.pages[b.i++]; if (state[c] === QUEUED) return c; }
        batches.pop();
      }
      return -1;
    }
    while (bHead < batches.length) {
      const b = batches[bHead];
      while (b.i < b.pages.length) { const c = b.pages[b.i++]; if (state[c] === QUEUED) return c; }
      bHead++;
    }
    batches.length = 0;
    bHead = 0;
    return -1;
  };
  let linkFree = 0;
  let lastArrival = 0;

  let faults = 0, inflightFaults = 0, demandPages = 0, predictedPages = 0, pushedPages = 0, zeroPages = 0;
  let footprintSent = 0, bytes = 0, prefetchedTouched = 0, stallSum = 0;
  let stalls = new Float64Array(1024);
  let nStalls = 0;
  const feedback: number[] = []; // page, stream pairs
  const onPresent = strategy.onPresent?.bind(strategy);
  const onTouch = strategy.onTouch?.bind(strategy);

  const send = (p: number, kind: number) => {
    if (state[p] === SENT) throw new Error(`simulator invariant: page ${p} sent twice`);
    const foot = inFootprint[p] === 1;
    const end = linkFree + (foot ? txPage : txZero);
    linkFree = end;
    arrival[p] = end + L;
    state[p] = SENT;
    origin[p] = kind;
    if (foot) {
      footprintSent++;
      bytes += link.pageSize + link.headerBytes;
      if (end + L > lastArrival) lastArrival = end + L;
    } else {
      zeroPages++;
      bytes += link.headerBytes;
    }
  };

  /** Schedule everything that starts sending before source time s. */
  const advance = (s: number) => {
    while (linkFree < s) {
      let p = nextPredicted();
      if (p >= 0) {
        if (policy === "replace") onPresent?.(p);
        send(p, BY_PREDICTION);
        predictedPages++;
        continue;
      }
      if (!pushing) return;
      p = push.next(state);
      if (p < 0) { pushing = false; return; }
      state[p] = QUEUED;
      onPresent?.(p);
      send(p, BY_PUSH);
      pushedPages++;
    }
  };

  const recordStall = (d: number) => {
    if (nStalls === stalls.length) { const s = new Float64Array(stalls.length * 2); s.set(stalls); stalls = s; }
    stalls[nStalls++] = d;
    stallSum += d;
  };

  /** A request for page p by stream s at guest time t; returns the page's arrival time. */
  const fault = (p: number, s: number, t: number): number => {
    requested[p] = 1;
    const r = t + L + overheadS;
    advance(r + queueS); // everything handed to the link before r is scheduled now, so SENT means "already committed"
    if (linkFree < r) linkFree = r;
    if (onTouch) for (let i = 0; i < feedback.length; i += 2) onTouch(feedback[i], feedback[i + 1]);
    feedback.length = 0;
    if (state[p] === SENT) { inflightFaults++; return arrival[p]; } // already on the wire: dropped
    faults++;
    if (state[p] === ABSENT) onPresent?.(p);
    send(p, BY_DEMAND);
    demandPages++;
    push.onFault(p);
    const preds = strategy.onFault(p, s);
    if (policy === "replace") {
      for (let k = bHead; k < batches.length; k++) {
        const b = batches[k];
        for (let j = b.i; j < b.pages.length; j++) if (state[b.pages[j]] === QUEUED) state[b.pages[j]] = ABSENT;
      }
      batches.length = 0;
      bHead = 0;
    }
    const batch: number[] = [];
    const n = preds.length;
    for (let i = 0; i < n && batch.length < params.depth; i++) {
      const q = preds[i];
      if (!(q >= 0 && q < pageCount) || q !== Math.floor(q) || state[q] !== ABSENT) continue;
      state[q] = QUEUED;
      if (policy !== "replace") onPresent?.(q);
      batch.push(q);
    }
    if (batch.length > 0) batches.push({ pages: batch, i: 0 });
    strategy.maintain?.(); // between faults (the simulator does not time the strategy)
    return arrival[p];
  };

  // Per-stream cursors and clocks (time of the stream's next access); a small binary heap by time.
  const K = prep.streamIds.length;
  const pos = new Uint32Array(K);
  const clock = new Float64Array(K);
  const finish = new Float64Array(K);
  const heap: number[] = [];
  for (let k = 0; k < K; k++) {
    pos[k] = streamStart[k];
    clock[k] = gaps[streamOrder[pos[k]]] / ips;
    heapPush(heap, clock, k);
  }
  const feedbackOn = params.feedback;
  while (heap.length > 0) {
    const k = heapPop(heap, clock);
    const s = prep.streamIds[k];
    const end = streamStart[k + 1];
    const topK = heap.length > 0 ? heap[0] : -1;
    const limit = topK >= 0 ? clock[topK] : Infinity;
    let t = clock[k];
    let i = pos[k];
    for (;;) {
      const p = pages[streamOrder[i]];
      if (state[p] !== SENT) advance(t - L + queueS);
      if (state[p] !== SENT || arrival[p] > t) {
        const at = requested[p] ? arrival[p] : fault(p, s, t);
        recordStall(at - t);
        t = at;
      }
      if (!touched[p]) {
        touched[p] = 1;
        if (origin[p] === BY_PREDICTION) {
          prefetchedTouched++;
          if (feedbackOn) feedback.push(p, s);
        }
      }
      i++;
      if (i === end) { finish[k] = t; break; }
      t += gaps[streamOrder[i]] / ips;
      if (t > limit || (t === limit && k > topK)) { pos[k] = i; clock[k] = t; heapPush(heap, clock, k); break; }
    }
  }
  let completionS = 0;
  for (let k = 0; k < K; k++) completionS = Math.max(completionS, finish[k]);

  // The guest is done: send what is queued, then push whatever is left (linear order when there was
  // no push; the source starts that flush when the guest finishes).
  advance(completionS);
  if (pushMode === "none" && linkFree < completionS) linkFree = completionS;
  if (!pushing || pushMode === "none") { push = createPush("linear", footprint); pushing = true; }
  advance(Infinity);
  if (footprintSent !== footprint.length) throw new Error(`simulator invariant: ${footprintSent} of ${footprint.length} footprint pages sent`);

  return {
    strategy: strategy.name,
    trace: trace.name,
    faults,
    inflightFaults,
    demandFaults: prep.demandFaults,
    stallS: stallSum,
    completionS,
    baselineS: prep.baselineS,
    migrationS: lastArrival,
    faultPathPages: demandPages + predictedPages,
    demandPages,
    predictedPages,
    pushedPages,
    zeroPages,
    footprintPagesSent: footprintSent,
    footprintPages: footprint.length,
    bytesOnWire: bytes,
    prefetchedTouched,
    accuracy: predictedPages > 0 ? prefetchedTouched / predictedPages : null,
    coverage: prep.demandFaults > 0 ? (prep.demandFaults - faults) / prep.demandFaults : 0,
    stall: summarizeStalls(stalls, nStalls),
    bitsPerSecond: link.bitsPerSecond,
    accesses: trace.pages.length - prep.switchIndex,
    wallMs: performance.now() - wall0,
  };
}

function less(clock: Float64Array, a: number, b: number): boolean {
  return clock[a] < clock[b] || (clock[a] === clock[b] && a < b);
}

function heapPush(h: number[], clock: Float64Array, k: number): void {
  h.push(k);
  let i = h.length - 1;
  while (i > 0) {
    const up = (i - 1) >> 1;
    if (!less(clock, h[i], h[up])) break;
    [h[i], h[up]] = [h[up], h[i]];
    i = up;
  }
}

function heapPop(h: number[], clock: Float64Array): number {
  const top = h[0];
  const last = h.pop()!;
  if (h.length > 0) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < h.length && less(clock, h[l], h[m])) m = l;
      if (r < h.length && less(clock, h[r], h[m])) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }
  return top;
}
