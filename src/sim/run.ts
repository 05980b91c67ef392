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
  results: SimResult[];
}

export function prepareRun(trace: Trace, opts: RunOptions): { prep: Prepared; params: SimParams; link: LinkConfig; layout: LayoutName; nominalGbps: number } {
  const params: SimParams = { ...DEFAULT_PARAMS, ...definedOnly(opts) };
  const layout = opts.layout ?? "virtual";
  const placed = placePages(trace.pages, { layout, vmPages: opts.vmPages, seed: opts.seed });
  const prep = prepare({ name: trace.name, pages: placed.pages, gaps: trace.gaps, streams: trace.streams, pageCount: placed.pageCount }, params.switchAt, params.ips);
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  const nominalGbps = opts.bandwidthGbps ?? 10;
  const bitsPerSecond = opts.rawBandwidth ? nominalGbps * 1e9 : scaledBitsPerSecond(nominalGbps, prep.footprint.length, pageSize, prep.baselineS);
  const link: LinkConfig = { bitsPerSecond, latencyS: (opts.latencyUs ?? DEFAULT_LATENCY_US) * 1e-6, pageSize, headerBytes: opts.headerBytes ?? DEFAULT_HEADER_BYTES };
  return { prep, params, link, layout, nominalGbps };
}

/** Build, train and simulate one strategy. */
export async function runOne(name: string, prep: Prepared, params: SimParams, link: LinkConfig, adaptive = false): Promise<SimResult> {
  const maxDepth = adaptive ? params.depth * 2 : params.depth;
  const ctx = { pageCount: prep.trace.pageCount, depth: maxDepth, streams: Math.min(4096, prep.streamCount), push: params.push, future: name === "oracle" ? future(prep) : undefined };
  let strategy = await createStrategy(name, ctx);
  if (adaptive) strategy = withAdaptiveDepth(strategy, params.depth, maxDepth);
  try {
    const h = history(prep);
    strategy.train?.(h.pages, h.streams);
    return simulate(prep, strategy, link, adaptive ? { ...params, depth: maxDepth } : params);
  } finally {
    strategy.dispose?.();
  }
}

export async function compareStrategies(trace: Trace, names: string[], opts: RunOptions, progress?: (done: number, total: number, name: string) => void): Promise<Comparison> {
  const { prep, params, link, layout, nominalGbps } = prepareRun(trace, opts);
  const results: SimResult[] = [];
  for (let i = 0; i < names.length; i++) {
    progress?.(i, names.length, names[i]);
    results.push(await runOne(names[i], prep, params, link, opts.adaptive ?? false));
  }
  progress?.(names.length, names.length, "");
  return { trace: trace.name, layout, params, link, nominalGbps, footprintPages: prep.footprint.length, demandFaults: prep.demandFaults, baselineS: prep.baselineS, results };
}

function definedOnly(o: RunOptions): Partial<SimParams> {
  const out: Partial<SimParams> = {};
  if (o.switchAt !== undefined) out.switchAt = o.switchAt;
  if (o.ips !== undefined) out.ips = o.ips;
  if (o.depth !== undefined) out.depth = o.depth;
  if (o.push !== undefined) out.push = o.push;
  if (o.feedback !== undefined) out.feedback = o.feedback;
  if (o.queue !== undefined) out.queue = o.queue;
  return out;
}
