// A page server trains a history's model once: later migrations with the same spec restore a copy in
// their worker instead of training, and that copy answers every fault exactly as a trained one does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { shareHistory, startRemoteStrategy, type RemoteStrategy } from "../../src/transport/remote-strategy.js";
import { createPpmPolicy } from "../../src/strategies/ppm-policy.js";

/** A history with learnable structure: a fixed pseudo-random tour of 600 pages, repeated. */
function tour(n: number, pages: number, seed: number): Uint32Array {
  const order = Array.from({ length: pages }, (_, i) => i);
  let x = seed;
  for (let i = pages - 1; i > 0; i--) { x = (x * 1103515245 + 12345) >>> 0; const j = x % (i + 1); [order[i], order[j]] = [order[j], order[i]]; }
  return Uint32Array.from({ length: n }, (_, i) => order[i % pages]);
}

async function answers(s: RemoteStrategy, faults: number[]): Promise<number[][]> {
  const out: number[][] = [];
  for (const p of faults) out.push(Array.from((await s.fault(p, 0, new Uint32Array(0))).pages));
  return out;
}

test("the second migration of a history restores the first one's trained model and predicts exactly as it does", { timeout: 60_000 }, async () => {
  const history = shareHistory({ pages: tour(30_000, 600, 3) });
  const spec = { kind: "registry" as const, name: "ppm", pageCount: 4096, depth: 8, streams: 1, push: "qemu" as const };
  const first = await startRemoteStrategy(spec, history);
  const second = await startRemoteStrategy(spec, history);
  const other = await startRemoteStrategy({ ...spec, push: "none" }, history); // another spec: its own training
  const fresh = await startRemoteStrategy(spec, shareHistory({ pages: history.pages.slice() })); // another history object
  try {
    assert.equal(first.fromModel, false);
    assert.equal(second.fromModel, true);
    assert.equal(other.fromModel, false);
    assert.equal(fresh.fromModel, false);
    const faults = Array.from(tour(200, 600, 3)).filter((_, i) => i % 3 === 0);
    const a = await answers(first, faults), b = await answers(second, faults), c = await answers(fresh, faults);
    assert.deepEqual(b, a);
    assert.deepEqual(c, a, "a copy answers as a model trained from scratch does");
    assert.ok(a.some((x) => x.length > 0), "the trained model predicts something");
  } finally { first.dispose(); second.dispose(); other.dispose(); fresh.dispose(); }
});

test("a model built with other options is not used: the policy builds and trains its own", () => {
  const ctx = { pageCount: 4096, depth: 8, streams: 1, push: "qemu" as const };
  const noPush = createPpmPolicy({ ...ctx, push: "none" }); // hybrid alphabet, depth 8
  noPush.train?.(tour(5000, 600, 5));
  const model = noPush.predictor.snapshot();
  noPush.dispose?.();
  const withPush = createPpmPolicy({ ...ctx, model }); // page alphabet, depth 2: not the same model
  const same = createPpmPolicy({ ...ctx, push: "none", model });
  try {
    assert.equal(withPush.fromModel, false);
    assert.equal(withPush.predictor.options.alphabet, "page");
    assert.equal(same.fromModel, true);
    assert.equal(same.predictor.options.alphabet, "hybrid");
  } finally { withPush.dispose?.(); same.dispose?.(); }
});
