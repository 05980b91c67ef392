/**
 * `ppm-page`, `ppm-delta`, `ppm-hybrid`: the engine (createPredictor) behind the Strategy interface,
 * one alphabet each. train -> train per stream (the history split by vCPU), onFault -> predictNext,
 * onTouch -> observe (feedback of touched prefetched pages), onPresent -> markPresent.
 */
import type { Strategy } from "./types.js";
import type { SimStrategyContext } from "./context.js";
import type { Alphabet, PredictorOptions } from "../engine/types.js";
import { createPredictor } from "../engine/predictor.js";

export function createPpm(ctx: SimStrategyContext, alphabet: Alphabet, extra: Partial<PredictorOptions> = {}): Strategy {
  const streams = Math.max(1, Math.min(4096, ctx.streams ?? 1));
  const pred = createPredictor({ pageCount: ctx.pageCount, alphabet, depth: ctx.depth, streams, ...extra });
  const slot = (s: number) => s % streams;
  return {
    name: `ppm-${alphabet}`,
    train(pages, ss) {
      if (!ss || streams === 1) { pred.train(pages, 0); return; }
      const by = new Map<number, number[]>();
      for (let i = 0; i < pages.length; i++) {
        const k = slot(ss[i]);
        let a = by.get(k);
        if (!a) by.set(k, (a = []));
        a.push(pages[i]);
      }
      for (const [k, a] of [...by].sort((x, y) => x[0] - y[0])) pred.train(Uint32Array.from(a), k);
    },
    onFault: (p, s) => pred.predictNext(p, slot(s)),
    onTouch: (p, s) => pred.observe(p, slot(s)),
    onPresent: (p) => pred.markPresent(p),
    dispose: () => pred.dispose(),
  };
}

export const createPpmPage = (ctx: SimStrategyContext) => createPpm(ctx, "page");
export const createPpmDelta = (ctx: SimStrategyContext) => createPpm(ctx, "delta");
export const createPpmHybrid = (ctx: SimStrategyContext) => createPpm(ctx, "hybrid");
