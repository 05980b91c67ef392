/**
 * `warmUp()`: run the Wasm core's hot paths on a throwaway predictor before a fault path needs them.
 *
 * V8 compiles Wasm in tiers: a function starts in the baseline compiler and is recompiled by the
 * optimising one once it has run enough. The predictions of a fresh process pay for that switch:
 * call 83 of a 1M-call run took 2.4-2.9 ms in 4 of 4 runs, and 12 of 16 runs had a call over 1 ms
 * among their first 1000; after a warm-up, 5 of 19 (BENCHMARKS.md, "Ninth session"). In a migration those
 * first calls are the first faults after the switch-over. Every predictor of a thread shares the
 * compiled module, so one warm-up serves them all (a worker thread has its own and needs its own).
 * It is not part of `createPredictor` (which stays under 20 ms) because it takes 20-30 ms: call it
 * when the process or worker starts, before the switch-over. It touches no other predictor.
 */
import { createPredictor } from "./predictor.js";
import { describeValue } from "../util/describe.js";

let warmed = false;

/**
 * Learn a small synthetic history and make `calls` predictions with the default options on a
 * throwaway predictor. Once per thread: later calls return 0 at once unless `force`. Returns the
 * milliseconds it took.
 */
export function warmUp(calls = 3000, force = false): number {
  if (typeof calls !== "number") throw new TypeError(`calls must be a number, got ${describeValue(calls)}`);
  if (!Number.isInteger(calls) || calls < 1 || calls > 1e7) throw new RangeError(`calls must be an integer in [1, 1e7], got ${calls}`);
  if (typeof force !== "boolean") throw new TypeError(`force must be a boolean, got ${describeValue(force)}`);
  if (warmed && !force) return 0;
  const t0 = performance.now();
  const pages = 1 << 16;
  const p = createPredictor({ pageCount: pages, maxContexts: 1 << 14 });
  try {
    // Runs, strides and a repeating scattered walk: both alphabets, every order, escapes, a full search.
    const history = new Uint32Array(20_000);
    for (let i = 0; i < history.length; i++) {
      const k = i % 400;
      history[i] = k < 200 ? (i >> 3) % pages : k < 300 ? (k * 97 + 13) % pages : ((i >> 5) * 4096 + k * 3) % pages;
    }
    p.train(history);
    p.rehearse();
    p.compact();
    for (let i = 0; i < calls; i++) {
      if (i % 500 === 0) p.clearPresent();
      // Every other call in two parts, so that predictFirst/predictRest's own code is compiled too.
      const f = history[(i * 7919) % history.length];
      if (i & 1) { p.predictFirst(f, 1); p.predictRest(); } else p.predictInto(f);
    }
  } finally {
    p.dispose();
  }
  warmed = true;
  return performance.now() - t0;
}
