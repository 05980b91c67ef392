/**
 * The engine's quality table: on each real trace and layout, faults as % of demand paging for the
 * PPM engine (default options) and the baselines it must beat: next-8 pages, first-order Markov, and
 * the two-signal blend of shared/research/findings.md. The oracle's floor, ceil(demand / (depth + 1))
 * faults, is given for scale.
 */
import { readTrace } from "../trace/read.js";
import { placePages, type LayoutName } from "../trace/layout.js";
import { replay, type ReplayResult } from "./replay.js";
import { createPredictorStrategy } from "../strategies/predictor-strategy.js";
import type { FullPredictorOptions } from "../engine/options.js";
import { createNextPages } from "../strategies/next-pages.js";
import { createMarkov1 } from "../strategies/markov1.js";
import { createBlend } from "../strategies/blend.js";
import type { Strategy } from "../strategies/types.js";
import type { Trace } from "../trace/format.js";
import { deriveHistory, needsWrites, type HistorySpec } from "../history/sources.js";
import { eventLog, recording } from "../history/earlier.js";

export const QUALITY_STRATEGIES = ["ppm", "next8", "markov1", "blend"] as const;
export type QualityStrategy = (typeof QUALITY_STRATEGIES)[number];

export interface QualityRow {
  trace: string;
  layout: LayoutName;
  demandFaults: number;
  results: Record<QualityStrategy, ReplayResult>;
}

export interface QualityOptions {
  layouts?: LayoutName[];
  switchAt?: number;
  depth?: number;
  feedback?: boolean;
  seed?: number;
  /** Extra engine options (the defaults are what is judged). */
  engine?: Partial<FullPredictorOptions>;
  /** Feed the engine its history in train() calls of this many pages (as a recorder would); 0: one call. */
  trainChunk?: number;
  /** What every strategy trains on (src/history/sources.ts); default full (every pre-switch-over access). */
  history?: HistorySpec;
  onProgress?: (msg: string) => void;
}

/** The table for traces given as paths (each read once) or already read. */
export async function qualityTable(paths: (string | Trace)[], opts: QualityOptions = {}): Promise<QualityRow[]> {
  const layouts = opts.layouts ?? ["virtual", "4k"];
  const depth = opts.depth ?? 8;
  const rows: QualityRow[] = [];
  for (const path of paths) {
    const trace = typeof path === "string" ? await readTrace(path) : path;
    for (const layout of layouts) {
      const placed = placePages(trace.pages, { layout, seed: opts.seed ?? 1 });
      const ctx = { pageCount: placed.pageCount, depth };
      const make: Record<QualityStrategy, () => Strategy> = {
        ppm: () => createPredictorStrategy({ ...ctx, streams: 1, ...opts.engine }, { trainChunk: opts.trainChunk }),
        next8: () => createNextPages(ctx),
        markov1: () => createMarkov1(ctx),
        blend: () => createBlend(ctx),
      };
      const results = {} as Record<QualityStrategy, ReplayResult>;
      for (const name of QUALITY_STRATEGIES) {
        opts.onProgress?.(`${trace.name} ${layout} ${name}`);
        const history = qualityHistory(trace, placed.pages, placed.pageCount, make[name], opts);
        const s = make[name]();
        results[name] = replay(placed.pages, placed.pageCount, s, { switchAt: opts.switchAt, feedback: opts.feedback, history });
        s.dispose?.();
      }
      rows.push({ trace: trace.name, layout, demandFaults: results.ppm.demandFaults, results });
    }
  }
  return rows;
}

/**
 * The history a quality replay trains on: undefined for full (the replay's own prefix), null for none,
 * the derived pages for first-touch/sets/writes/write-sets (placed pages, the trace's gaps, streams
 * and kinds), and for earlier the faults and feedback of a first replay over the pre-switch-over part
 * with a fresh strategy that learns online (switch-over at the start of the trace).
 */
export function qualityHistory(trace: Trace, placed: Uint32Array, pageCount: number, make: () => Strategy, opts: QualityOptions): Uint32Array | null | undefined {
  const spec = opts.history ?? { kind: "full" };
  const switchAt = opts.switchAt ?? 0.3;
  const split = Math.floor(placed.length * switchAt);
  switch (spec.kind) {
    case "full": return undefined;
    case "none": return null;
    case "earlier": {
      const log = eventLog();
      const first = make();
      try {
        replay(placed.subarray(0, split), pageCount, recording(first, log), { switchAt: 0, feedback: opts.feedback, history: null });
      } finally {
        first.dispose?.();
      }
      return log.history().pages;
    }
    default: {
      if (needsWrites(spec.kind) && !trace.writes) throw new RangeError(`history ${spec.kind} needs a trace that records writes (the r/w kind column); ${trace.name} does not`);
      const input = { pages: placed.subarray(0, split), gaps: trace.gaps.subarray(0, split), streams: trace.streams.subarray(0, split), writes: trace.writes?.subarray(0, split) };
      return deriveHistory(input, spec).pages;
    }
  }
}

/**
 * The table as markdown: in each row the lowest figure is bold (every one that ties for it, as
 * printed). The oracle bound is the floor of any strategy at this depth: each fault brings at most
 * depth + 1 new pages, so faults >= ceil(demand / (depth + 1)).
 */
export function formatQualityTable(rows: QualityRow[], depth = 8): string {
  const lines = [
    `| trace | layout | demand faults | PPM engine | next-8 | markov1 | blend | oracle bound |`,
    `|---|---|---:|---:|---:|---:|---:|---:|`,
  ];
  const boldLowest = (xs: number[]): string[] => {
    const shown = xs.map((x) => x.toFixed(1));
    const low = Math.min(...shown.map(Number));
    return shown.map((t) => (Number(t) === low ? `**${t}**` : t));
  };
  for (const r of rows) {
    const cells = boldLowest(QUALITY_STRATEGIES.map((k) => r.results[k].percentOfDemand));
    const floor = r.demandFaults > 0 ? ((100 * Math.ceil(r.demandFaults / (depth + 1))) / r.demandFaults).toFixed(1) : "-";
    lines.push(`| ${r.trace} | ${r.layout} | ${r.demandFaults} | ${cells.join(" | ")} | ${floor} |`);
  }
  const avg = (k: QualityStrategy) => rows.reduce((s, r) => s + r.results[k].percentOfDemand, 0) / rows.length;
  lines.push(`| **average** | | | ${boldLowest(QUALITY_STRATEGIES.map(avg)).join(" | ")} | |`);
  return lines.join("\n") + "\n";
}
