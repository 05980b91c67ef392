/**
 * The PPM engine behind the Strategy interface, for the page server: onFault -> predictNext,
 * onTouch -> observe (the destination's feedback of touched prefetched pages), onPresent ->
 * markPresent, train -> train per stream (the history split by vCPU). Streams beyond the
 * predictor's are folded onto its histories (stream % streams).
 */
import type { Strategy } from "./types.js";
import type { Predictor } from "../engine/types.js";
import { createPredictor } from "../engine/predictor.js";
import type { FullPredictorOptions } from "../engine/options.js";

export type PredictorStrategy = Strategy & { readonly predictor: Predictor };

export interface AdapterOptions {
  /** Feed the history in train() calls of this many pages, as a recorder would (0: one call per stream). */
  trainChunk?: number;
}

/** Wrap an existing predictor. */
export function predictorStrategy(pred: Predictor, name: string = `ppm-${pred.options.alphabet}`, { trainChunk = 0 }: AdapterOptions = {}): PredictorStrategy {
  const streams = pred.options.streams;
  const slot = streams === 1 ? () => 0 : (s: number) => s % streams;
  const feed = (pages: Uint32Array, s: number): void => {
    if (trainChunk === 0) pred.train(pages, s);
    else for (let at = 0; at < pages.length; at += trainChunk) pred.train(pages.subarray(at, Math.min(pages.length, at + trainChunk)), s);
  };
  const learnHistory = (pages: Uint32Array, ss?: Uint16Array): void => {
    if (!ss || streams === 1) { feed(pages, 0); return; }
    const by = new Map<number, number[]>();
    for (let i = 0; i < pages.length; i++) {
      const k = slot(ss[i]);
      let a = by.get(k);
      if (!a) by.set(k, (a = []));
      a.push(pages[i]);
    }
    for (const [k, a] of [...by].sort((x, y) => x[0] - y[0])) feed(Uint32Array.from(a), k);
  };
  return {
    name,
    predictor: pred,
    train(pages: Uint32Array, ss?: Uint16Array): void {
      learnHistory(pages, ss);
      // The history is in: rehearse it (off the first fault) and lay the model out for the fault path.
      pred.rehearse();
      pred.compact();
    },
    onFault: (p, s) => pred.predictNext(p, slot(s)),
    onTouch: (p, s) => pred.observe(p, slot(s)),
    onPresent: (p) => pred.markPresent(p),
    maintain: () => { pred.maintain(); },
    dispose: () => pred.dispose(),
  };
}

/** A fresh predictor with these options, as a Strategy. */
export function createPredictorStrategy(options: FullPredictorOptions, adapter?: AdapterOptions): PredictorStrategy {
  const pred = createPredictor(options);
  return predictorStrategy(pred, undefined, adapter);
}
