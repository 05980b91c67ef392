/**
 * History sources: what a hypervisor can actually record of a guest before the switch-over, derived
 * from the pre-switch-over part of a recorded trace. Each source gives the sequence (and the vCPU of
 * each entry) that a strategy's `train()` receives.
 *
 *  - `full`            every access, in order (what no hypervisor records; not a bound on the
 *                      figures: an exact replay can stream pages too late to beat a coarser one).
 *  - `first-touch:T`   the guest's memory is re-armed every T guest instructions and the first touch of
 *                      each page in each interval is seen, in order, with its vCPU: NUMA-hinting faults,
 *                      userfaultfd write-protect re-armed per interval, KVM's dirty ring / Intel PML (for
 *                      writes) deliver this.
 *  - `sets:T`          which pages were touched in each interval, without order and without vCPU (idle
 *                      page tracking, DAMON-style access-bit sampling, precopy dirty bitmaps). Each
 *                      interval's set is given in ascending page order (a bitmap scan's order), stream 0.
 *  - `writes:T`        first touches per interval restricted to lines that wrote (dirty ring, PML).
 *  - `write-sets:T`    sets per interval restricted to written pages (the dirty bitmap of precopy).
 *  - `earlier`         the faults and feedback an earlier post-copy migration of the same workload saw
 *                      (see run.ts: a simulated migration over the pre-switch-over part of the trace).
 *  - `none`            nothing: the strategy starts empty and learns online from post-copy faults.
 *
 * Time: an access happens `gap` guest instructions after the previous access of its own stream (gaps
 * count per stream, as in the simulator), so an access's time is its stream's cumulative gap sum; the
 * interval of an access is floor(time / T). Re-arming is per page for the whole guest (not per vCPU):
 * a page's first touch in an interval is seen once whichever vCPU makes it. Entries come out in
 * (interval, trace order) order.
 *
 * Pure functions: no I/O, nothing kept.
 */

export type HistoryKind = "full" | "first-touch" | "sets" | "writes" | "write-sets" | "earlier" | "none";
export const HISTORY_KINDS: readonly HistoryKind[] = ["full", "first-touch", "sets", "writes", "write-sets", "earlier", "none"];

export interface HistorySpec {
  kind: HistoryKind;
  /** Guest instructions per interval (first-touch, sets, writes, write-sets). */
  interval?: number;
}

/** The part of a trace a history is derived from (pages after layout). */
export interface HistoryInput {
  pages: Uint32Array;
  gaps: Uint32Array;
  streams: Uint16Array;
  writes?: Uint8Array;
}

export interface DerivedHistory {
  pages: Uint32Array;
  streams: Uint16Array;
}

/**
 * What `compare` and `simulate` (and so `npm start`) train on unless told: which pages the guest
 * touched in each 10 ms before the switch-over, unordered, as access-bit sampling (DAMON, idle page
 * tracking) gives a source during precopy. A real migration cannot have `full` (every access in
 * order): the product's figures are judged on what a hypervisor can record. `full` is there by
 * name; `quality` (the engine's own replay table) keeps it.
 */
export const DEFAULT_HISTORY = "sets:10ms";

/** A source's interval in milliseconds of guest time at `ips` (3 significant digits), if it has one. */
export function intervalMs(spec: HistorySpec, ips: number): number | undefined {
  return spec.interval === undefined || !(ips > 0) ? undefined : Number(((spec.interval / ips) * 1e3).toPrecision(3));
}

export const INTERVAL_KINDS: readonly HistoryKind[] = ["first-touch", "sets", "writes", "write-sets"];

export function needsInterval(kind: HistoryKind): boolean {
  return INTERVAL_KINDS.includes(kind);
}

export function needsWrites(kind: HistoryKind): boolean {
  return kind === "writes" || kind === "write-sets";
}

/**
 * Parse `full`, `none`, `earlier`, `first-touch:T`, `sets:T`, `writes:T`, `write-sets:T`. T is guest
 * instructions (`1e7`, `10000000`) or a time with a unit (`10ms`, `100us`, `1s`), converted at `ips`
 * guest instructions per second. Throws a RangeError naming what is wrong.
 */
export function parseHistorySpec(text: string, ips = 1e9): HistorySpec {
  if (typeof text !== "string") throw new TypeError(`history must be a string (full, first-touch:T, ...), got ${text === null ? "null" : typeof text}`);
  if (typeof ips !== "number" || !Number.isFinite(ips) || ips <= 0) throw new RangeError(`ips must be a positive number of guest instructions per second, got ${String(ips)}`);
  const m = /^([a-z-]+)(?::(.+))?$/.exec(text.trim());
  const kind = m?.[1] as HistoryKind | undefined;
  if (!m || !kind || !HISTORY_KINDS.includes(kind)) {
    throw new RangeError(`history must be one of full, first-touch:T, sets:T, writes:T, write-sets:T, earlier, none; got ${JSON.stringify(text)}`);
  }
  if (!needsInterval(kind)) {
    if (m[2] !== undefined) throw new RangeError(`history ${kind} takes no interval; got ${JSON.stringify(text)}`);
    return { kind };
  }
  if (m[2] === undefined) throw new RangeError(`history ${kind} needs an interval (${kind}:1e7 guest instructions, or ${kind}:10ms); got ${JSON.stringify(text)}`);
  const interval = parseInterval(m[2], ips);
  return { kind, interval };
}

/**
 * A count of guest instructions must be a whole number (`1e7`, `10000000`; `0.5` is refused, not
 * rounded); a time is converted at `ips` and rounded to whole instructions, and must come to at least one.
 */
function parseInterval(s: string, ips: number): number {
  const u = /^([0-9.eE+]+)\s*(ns|us|ms|s)?$/.exec(s.trim());
  const v = u ? Number(u[1]) : NaN;
  if (!u || !Number.isFinite(v) || v <= 0) throw new RangeError(`history interval must be a positive number of guest instructions or a time (10ms, 100us); got ${JSON.stringify(s)}`);
  if (u[2] === undefined && !Number.isInteger(v)) {
    throw new RangeError(`history interval must be a whole number of guest instructions (or a time: 10ms, 100us); got ${JSON.stringify(s)} (${v})`);
  }
  const scale = u[2] === undefined ? 1 : { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1 }[u[2]]! * ips;
  if (v * scale < 1 - 1e-9) { // (a tolerance for the float product: 1ns at 1e9 per second is one instruction)
    throw new RangeError(`history interval must come to at least 1 guest instruction; got ${JSON.stringify(s)} (${v * scale} at ${ips} instructions per second)`);
  }
  const t = Math.round(v * scale);
  if (!(t >= 1) || t > 2 ** 53) throw new RangeError(`history interval must come to 1 .. 2^53 guest instructions; got ${JSON.stringify(s)} (${t})`);
  return t;
}

/** A short label: `full`, `first-touch:1e7`, ... */
export function formatHistorySpec(spec: HistorySpec): string {
  if (spec.interval === undefined) return spec.kind;
  const t = spec.interval;
  const e = Math.log10(t);
  return `${spec.kind}:${Number.isInteger(e) ? `1e${e}` : String(t)}`;
}

/**
 * The interval index of each access: floor(stream's cumulative gaps / T). Float64 so that sums past
 * 2^32 instructions stay exact (up to 2^53).
 */
export function intervalsOf(input: HistoryInput, interval: number): Float64Array {
  const n = input.pages.length;
  const clock = new Map<number, number>();
  const out = new Float64Array(n);
  let single = -1, t = 0; // fast path: one stream
  for (let i = 0; i < n; i++) {
    const s = input.streams[i];
    if (single === -1) single = s;
    if (s === single) { t += input.gaps[i]; out[i] = Math.floor(t / interval); continue; }
    const c = (clock.get(s) ?? 0) + input.gaps[i];
    clock.set(s, c);
    out[i] = Math.floor(c / interval);
  }
  return out;
}

/** Access indices in (interval, trace order) order; identity when the intervals never go back. */
function byInterval(iv: Float64Array, keep: (i: number) => boolean): number[] {
  const idx: number[] = [];
  let sorted = true;
  for (let i = 0; i < iv.length; i++) {
    if (!keep(i)) continue;
    if (idx.length > 0 && iv[i] < iv[idx[idx.length - 1]]) sorted = false;
    idx.push(i);
  }
  if (!sorted) idx.sort((a, b) => iv[a] - iv[b] || a - b); // stable on trace order
  return idx;
}

/**
 * Derive the history a strategy trains on from the pre-switch-over part of a trace, for the sources
 * that are functions of the trace alone (full, first-touch, sets, writes, write-sets; `none` gives an
 * empty history). `earlier` needs a simulated migration: run.ts builds it.
 */
export function deriveHistory(input: HistoryInput, spec: HistorySpec): DerivedHistory {
  switch (spec.kind) {
    case "full":
      return { pages: input.pages, streams: input.streams };
    case "none":
      return { pages: new Uint32Array(0), streams: new Uint16Array(0) };
    case "earlier":
      throw new RangeError("history earlier is built by a simulated migration (run.ts), not derived from the trace");
    default:
      break;
  }
  const interval = spec.interval;
  if (interval === undefined || !(interval >= 1)) throw new RangeError(`history ${spec.kind} needs an interval >= 1 guest instruction`);
  const writesOnly = needsWrites(spec.kind);
  const w = input.writes;
  if (writesOnly && !w) throw new RangeError(`history ${spec.kind} needs a trace that records writes (the kind column, r/w); this one does not`);
  const iv = intervalsOf(input, interval);
  const idx = byInterval(iv, writesOnly ? (i) => w![i] === 1 : () => true);
  const ordered = spec.kind === "first-touch" || spec.kind === "writes";
  // The stamp of a page: 1 + the last interval it was seen in (Map: pages may be sparse and large).
  const seen = new Map<number, number>();
  const pages: number[] = [];
  const streams: number[] = [];
  if (ordered) {
    for (const i of idx) {
      const p = input.pages[i], k = iv[i] + 1;
      if (seen.get(p) === k) continue;
      seen.set(p, k);
      pages.push(p);
      streams.push(input.streams[i]);
    }
    return { pages: Uint32Array.from(pages), streams: Uint16Array.from(streams) };
  }
  // Sets: each interval's distinct pages, ascending (a bitmap scan's order); no vCPU: stream 0.
  let from = 0;
  while (from < idx.length) {
    const k = iv[idx[from]];
    let to = from;
    const set: number[] = [];
    for (; to < idx.length && iv[idx[to]] === k; to++) {
      const p = input.pages[idx[to]];
      if (seen.get(p) === k + 1) continue;
      seen.set(p, k + 1);
      set.push(p);
    }
    set.sort((a, b) => a - b);
    for (const p of set) pages.push(p);
    from = to;
  }
  return { pages: Uint32Array.from(pages), streams: new Uint16Array(pages.length) };
}
