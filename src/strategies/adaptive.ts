/**
 * Adaptive depth around any strategy, driven by the destination's feedback. The inner strategy is
 * asked for up to `maxDepth` pages; the wrapper passes on the first d of them, where d follows the
 * measured accuracy: d = round(maxDepth x (hits + 1) / (sent + 2)), clamped to 1..maxDepth, with
 * `hits` (touched prefetched pages reported) and `sent` (pages passed on) both decayed by 0.9 at
 * every fault. Hits grow the depth, misses shrink it, and a page touched a few faults after it was
 * sent still counts (feedback arrives late, piggybacked on a later request). Without feedback
 * nothing is ever reported as touched and d falls to 1.
 *
 * An inner strategy with `setDepth` is asked for exactly d pages. Any other one is asked for its
 * full depth and cut to d, which is only sound if it does not mark its answers as sent: most do (a
 * strategy must not offer a page twice), so the cut pages are lost to it for good. The Strategy
 * interface has no per-call depth yet; until it has, adaptive depth is meaningful only for
 * strategies with `setDepth` (readahead, leap).
 */
import type { Strategy } from "./types.js";
import type { SimStrategy } from "./context.js";

const DECAY = 0.9;

export type DepthSettable = SimStrategy & { setDepth?(d: number): void };

export function withAdaptiveDepth(inner: DepthSettable, depth: number, maxDepth: number): SimStrategy & { readonly depth: number } {
  let d = Math.max(1, Math.min(depth, maxDepth));
  let hits = 0, sent = 0;
  const s: Strategy & { push?: SimStrategy["push"]; steerPush?: SimStrategy["steerPush"]; readonly depth: number } = {
    name: `${inner.name}+adaptive`,
    push: inner.push,
    steerPush: inner.steerPush?.bind(inner),
    maintain: inner.maintain?.bind(inner),
    get depth() { return d; },
    train: inner.train?.bind(inner),
    onPresent: inner.onPresent?.bind(inner),
    dispose: inner.dispose?.bind(inner),
    onTouch(p, st) { hits++; inner.onTouch?.(p, st); },
    onFault(p, st) {
      if (sent > 0) d = Math.max(1, Math.min(maxDepth, Math.round((maxDepth * (hits + 1)) / (sent + 2))));
      hits *= DECAY;
      sent *= DECAY;
      inner.setDepth?.(d);
      const out = Array.from(inner.onFault(p, st)).slice(0, d);
      sent += out.length;
      return out;
    },
  };
  return s;
}
