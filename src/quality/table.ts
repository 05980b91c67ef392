/**
 * The engine's quality table: on each real trace and layout, faults as % of demand paging for the
 * PPM engine (default options) and the baselines it must beat: next-8 pages, first-order Markov, and
 * the two-signal blend of shared/research/findings.md. The oracle's 1/(depth+1) is given for scale.
 */
import { readTextTrace } from "../trace/format.js";
import { placePages, type LayoutName } from "../trace/layout.js";
import { replay, type ReplayResult } from "./replay.js";
import { createPredictorStrategy } from "../strategies/predictor-strategy.js";
import type { FullPredictorOptions } from "../engine/options.js";
import { createNextPages } from "../strategies/next-pages.js";
import { createMarkov1 } from "../strategies/markov1.js";
import { createBlend } from "../strategies/blend.js";
import type { Strategy } from "../strategies/types.js";

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
  onProgress?: (msg: string) => void;
}

export async function qualityTable(paths: string[], opts: QualityOptions = {}): Promise<QualityRow[]> {
  const layouts = opts.layouts ?? ["virtual", "4k"];
  const depth = opts.depth ?? 8;
  const rows: QualityRow[] = [];
  for (const path of paths) {
    const trace = await readTextTrace(path);
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
        const s = make[name]();
        results[name] = replay(placed.pages, placed.pageCount, s, { switchAt: opts.switchAt, feedback: opts.feedback });
        s.dispose?.();
      }
      rows.push({ trace: trace.name, layout, demandFaults: results.ppm.demandFaults, results });
    }
  }
  return rows;
}

export function formatQualityTable(rows: QualityRow[], depth = 8): string {
  const pct = (r: ReplayResult) => r.percentOfDemand.toFixed(1);
  const lines = [
    `| trace | layout | demand faults | PPM engine | next-8 | markov1 | blend | oracle bound |`,
    `|---|---|---:|---:|---:|---:|---:|---:|`,
  ];
  for (const r of rows) {
    lines.push(`| ${r.trace} | ${r.layout} | ${r.demandFaults} | **${pct(r.results.ppm)}** | ${pct(r.results.next8)} | ${pct(r.results.markov1)} | ${pct(r.results.blend)} | ${(100 / (depth + 1)).toFixed(1)} |`);
  }
  const avg = (k: QualityStrategy) => (rows.reduce((s, r) => s + r.results[k].percentOfDemand, 0) / rows.length).toFixed(1);
  lines.push(`| **average** | | | **${avg("ppm")}** | ${avg("next8")} | ${avg("markov1")} | ${avg("blend")} | |`);
  return lines.join("\n") + "\n";
}
