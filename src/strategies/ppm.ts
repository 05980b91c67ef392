/**
 * `ppm-page`, `ppm-delta`, `ppm-hybrid`: the engine behind the Strategy interface, one alphabet each
 * (the adapter is src/strategies/predictor-strategy.ts).
 */
import type { Strategy } from "./types.js";
import type { SimStrategyContext } from "./context.js";
import type { Alphabet, PredictorOptions } from "../engine/types.js";
import { createPredictorStrategy } from "./predictor-strategy.js";

export function createPpm(ctx: SimStrategyContext, alphabet: Alphabet, extra: Partial<PredictorOptions> = {}): Strategy {
  const streams = Math.max(1, Math.min(4096, ctx.streams ?? 1));
  return createPredictorStrategy({ pageCount: ctx.pageCount, alphabet, depth: ctx.depth, streams, ...extra });
}

export const createPpmPage = (ctx: SimStrategyContext) => createPpm(ctx, "page");
export const createPpmDelta = (ctx: SimStrategyContext) => createPpm(ctx, "delta");
export const createPpmHybrid = (ctx: SimStrategyContext) => createPpm(ctx, "hybrid");
