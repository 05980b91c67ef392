/**
 * One comparison: place a trace in a layout, prepare it once, then build, train and simulate each
 * strategy in turn on the same link. Shared by `compare` and `simulate`.
 */
import type { Trace } from "../trace/format.js";
import { placePages, type LayoutName } from "../trace/layout.js";
import { createStrategy } from "../strategies/index.js";
import { withAdaptiveDepth } from "../strategies/adaptive.js";
import { prepare, simulate, history, future, DEFAULT_PARAMS, DEFAULT_LATENCY_US, DEFAULT_PAGE_SIZE, DEFAULT_HEADER_BYTES, type SimParams, type Prepared } from "./simulator.js";
import { scaledBitsPerSecond, type LinkConfig } from "./link.js";
import type { SimResult } from "./metrics.js";
import { deriveHistory, needsWrites, type DerivedHistory, type HistoryKind, type HistorySpec } from "../history/sources.js";
import type { SimStrategy } from "../strategies/context.js";
import { eventLog, recording } from "../history/earlier.js";

export interface RunOptions extends Partial<SimParams> {
  layout?: LayoutName;
  vmPages?: number;
  seed?: number;
  /** Nominal bandwidth (Gbit/s); scaled to the trace unless `rawBandwidth`. */
  bandwidthGbps?: number;
  rawBandwidth?: boolean;
  latencyUs?: number;
  pageSize?: number;
  headerBytes?: number;
  /** Adaptive depth from feedback, 1..2 x depth. */
  adaptive?: boolean;
  /** What the strategies train on (src/history/sources.ts); default `full`, every pre-switch-over access. */
  history?: HistorySpec;
}

/** How a run's strategies are trained: a derived history, `earlier` (a first simulated migration), or none. */
export interface TrainingPlan {
  spec: HistorySpec;
  /** The derived history (full, first-touch, sets, writes, write-sets); undefined for earlier and none. */
  derived?: DerivedHistory;
}

export interface Comparison {
  trace: string;
  layout: LayoutName;
  params: SimParams;
  link: LinkConfig;
  nominalGbps: number;
  footprintPages: number;
  demandFaults: number;
  baselineS: number;
  /** What the strategies trained on, and how many pages the derived history held (earlier, none: undefined). */
  history: HistorySpec;
  historyPages?: number;
  results: SimResult[];
}

export function prepareRun(trace: Trace, opts: RunOptions): { prep: Prepared; params: SimParams; link: LinkConfig; layout: LayoutName; nominalGbps: number; plan: TrainingPlan } {
  const params: SimParams = { ...DEFAULT_PARAMS, ...definedOnly(opts) };
  const layout = opts.layout ?? "virtual";
  const placed = placePages(trace.pages, { layout, vmPages: opts.vmPages, seed: opts.seed });
  const prep = prepare({ name: trace.name, pages: placed.pages, gaps: trace.gaps, streams: trace.streams, pageCount: placed.pageCount }, params.switchAt, params.ips);
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  const nominalGbps = opts.bandwidthGbps ?? 10;
  const bitsPerSecond = opts.rawBandwidth ? nominalGbps * 1e9 : scaledBitsPerSecond(nominalGbps, prep.footprint.length, pageSize, prep.baselineS);
  const link: LinkConfig = { bitsPerSecond, latencyS: (opts.latencyUs ?? DEFAULT_LATENCY_US) * 1e-6, pageSize, headerBytes: opts.headerBytes ?? DEFAULT_HEADER_BYTES };
  return { prep, params, link, layout, nominalGbps, plan: trainingPlan(trace, prep, opts.history) };
}

/**
 * The training history of a prepared run. The derived sources read the placed pages before the
 * switch-over with the trace's gaps, streams and (for writes, write-sets) access kinds.
 */
export function trainingPlan(trace: Trace, prep: Prepared, spec: HistorySpec = { kind: "full" }): TrainingPlan {
  if (spec.kind === "full") return { spec, derived: history(prep) };
  if (spec.kind === "earlier" || spec.kind === "none") return { spec };
  if (needsWrites(spec.kind) && !trace.writes) throw new RangeError(`history ${spec.kind} needs a trace that records writes (the r/w kind column); ${trace.name} does not`);
  const n = prep.switchIndex;
  const input = { pages: prep.trace.pages.subarray(0, n), gaps: prep.trace.gaps.subarray(0, n), streams: prep.trace.streams.subarray(0, n), writes: trace.writes?.subarray(0, n) };
  return { spec, derived: deriveHistory(input, spec) };
}

/**
 * `earlier`: an earlier post-copy migration of the same workload, switched over at the start of the
 * trace and run over its pre-switch-over part with the same strategy, link and parameters, the
 * strategy starting empty; what its source saw (faults and feedback, in order) is returned.
 */
export async function earlierMigration(name: string, prep: Prepared, params: SimParams, link: LinkConfig, adaptive = false): Promise<DerivedHistory> {
  const n = prep.switchIndex;
  if (n === 0) return { pages: new Uint32Array(0), streams: new Uint16Array(0) };
  const t = prep.trace;
  const first = prepare({ name: t.name, pages: t.pages.subarray(0, n), gaps: t.gaps.subarray(0, n), streams: t.streams.subarray(0, n), pageCount: t.pageCount }, 0, prep.ips);
  const log = eventLog();
  await withStrategy(name, prep, params, adaptive, "none", (strategy, run) => simulate(first, recording(strategy, log), link, run), first);
  return log.history();
}

/**
 * Build one strategy for a prepared run (adaptive depth: asked for up to twice the depth), hand it
 * to `use` with the parameters to simulate it with, and dispose of it. `history`: what train() will
 * receive, a hint a strategy may read (e.g. an LRU filter is for a full access stream); the oracle
 * reads the future of `replayed` (the run it will be simulated on).
 */
async function withStrategy<T>(name: string, prep: Prepared, params: SimParams, adaptive: boolean, history: HistoryKind,
    use: (strategy: SimStrategy, run: SimParams) => T, replayed: Prepared = prep): Promise<T> {
  const maxDepth = adaptive ? params.depth * 2 : params.depth;
  const ctx = { pageCount: prep.trace.pageCount, depth: maxDepth, streams: Math.min(4096, prep.streamCount), push: params.push, future: name.startsWith("oracle") ? future(replayed) : undefined, history };
  let strategy = await createStrategy(name, ctx);
  if (adaptive) strategy = withAdaptiveDepth(strategy, params.depth, maxDepth);
  try {
    return use(strategy, adaptive ? { ...params, depth: maxDepth } : params);
  } finally {
    strategy.dispose?.();
  }
}

/** Build, train and simulate one strategy. */
export async function runOne(name: string, prep: Prepared, params: SimParams, link: LinkConfig, adaptive = false, plan?: TrainingPlan): Promise<SimResult> {
  const h = plan === undefined ? history(prep)
    : plan.spec.kind === "earlier" ? await earlierMigration(name, prep, params, link, adaptive)
    : plan.derived;
  return withStrategy(name, prep, params, adaptive, plan?.spec.kind ?? "full", (strategy, run) => {
    if (h) strategy.train?.(h.pages, h.streams); // none: no train() call at all
    return simulate(prep, strategy, link, run);
  });
}

export async function compareStrategies(trace: Trace, names: string[], opts: RunOptions, progress?: (done: number, total: number, name: string) => void): Promise<Comparison> {
  const { prep, params, link, layout, nominalGbps, plan } = prepareRun(trace, opts);
  const results: SimResult[] = [];
  for (let i = 0; i < names.length; i++) {
    progress?.(i, names.length, names[i]);
    results.push(await runOne(names[i], prep, params, link, opts.adaptive ?? false, plan));
  }
  progress?.(names.length, names.length, "");
  return { trace: trace.name, layout, params, link, nominalGbps, footprintPages: prep.footprint.length, demandFaults: prep.demandFaults, baselineS: prep.baselineS, history: plan.spec, historyPages: plan.derived?.pages.length, results };
}

function definedOnly(o: RunOptions): Partial<SimParams> {
  const out: Partial<SimParams> = {};
  if (o.switchAt !== undefined) out.switchAt = o.switchAt;
  if (o.ips !== undefined) out.ips = o.ips;
  if (o.depth !== undefined) out.depth = o.depth;
  if (o.push !== undefined) out.push = o.push;
  if (o.feedback !== undefined) out.feedback = o.feedback;
  if (o.queue !== undefined) out.queue = o.queue;
  if (o.linkQueueBytes !== undefined) out.linkQueueBytes = o.linkQueueBytes;
  if (o.requestOverheadUs !== undefined) out.requestOverheadUs = o.requestOverheadUs;
  return out;
}
