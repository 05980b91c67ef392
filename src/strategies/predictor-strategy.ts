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

/** Wrap an existing predictor. */
export function predictorStrategy(pred: Predictor, name: string = `ppm-${pred.options.alphabet}`): PredictorStrategy {
  const streams = pred.options.streams;
  const slot = streams === 1 ? () => 0 : (s: number) => s % streams;
  const learnHistory = (pages: Uint32Array, ss?: Uint16Array): void => {
    if (!ss || streams === 1) { pred.train(pages, 0); return; }
    const by = new Map<number, number[]>();
    for (let i = 0; i < pages.length; i++) {
      const k = slot(ss[i]);
      let a = by.get(k);
      if (!a) by.set(k, (a = []));
      a.push(pages[i]);
    }
    for (const [k, a] of [...by].sort((x, y) => x[0] - y[0])) pred.train(Uint32Array.from(a), k);
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
    dispose: () => pred.dispose(),
  };
}

/** A fresh predictor with these options, as a Strategy. */
export function createPredictorStrategy(options: FullPredictorOptions): PredictorStrategy {
  return predictorStrategy(createPredictor(options));
}
