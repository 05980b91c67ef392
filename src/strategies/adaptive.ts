/**
 * Adaptive depth around any strategy, driven by the destination's feedback: the inner strategy is
 * asked for up to `maxDepth` pages and the wrapper passes on the first `d` of them. Between two faults
 * it counts the touched prefetched pages it hears about: at least half of the last batch touched
 * doubles d (up to maxDepth), none halves it (down to 1). Without feedback d never moves.
 */
import type { Strategy } from "./types.js";
import type { SimStrategy } from "./context.js";

export function withAdaptiveDepth(inner: SimStrategy, depth: number, maxDepth: number): SimStrategy {
  let d = Math.max(1, depth);
  let hits = 0, lastBatch = 0;
  const s: Strategy & { push?: SimStrategy["push"] } = {
    name: `${inner.name}+adaptive`,
    push: inner.push,
    train: inner.train?.bind(inner),
    onPresent: inner.onPresent?.bind(inner),
    dispose: inner.dispose?.bind(inner),
    onTouch(p, st) { hits++; inner.onTouch?.(p, st); },
    onFault(p, st) {
      if (lastBatch > 0) {
        if (hits * 2 >= lastBatch) d = Math.min(maxDepth, d * 2);
        else if (hits === 0) d = Math.max(1, d >> 1);
      }
      hits = 0;
      const all = inner.onFault(p, st);
      const out = Array.from(all).slice(0, d);
      lastBatch = out.length;
      return out;
    },
  };
  return s;
}
