// The search does not create dead states (assembly/predict.ts, the reference model's `deadBar`): once
// the frontier holds `depth - out` absent pages at probability >= bar, a new state of probability
// <= bar is claimed never to be popped before the search ends, so it is neither output nor expanded.
// This checks that claim on the search without the prune: every state it creates is recorded with
// the bar at its creation, and none at or below its bar may ever be popped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createReferencePredictor, ReferencePredictor } from "../../src/reference/ppm.js";
import { mixedStream, BENCH_PAGES } from "../../src/trace/mixed-stream.js";
import { Rng } from "../../src/util/random.js";

type State = { p: number; anchor: number; ctx: unknown; done: boolean };
// The reference model's internals the unpruned search drives (private there).
interface Internals {
  streamStates: { last: number; ctx: unknown[][] }[];
  options: { lookahead: number; threshold: number; depth: number };
  present: Set<number>;
  candidates(st: State, bar: number): [number, number][];
  advance(src: State, page: number, p: number): State;
  deadBar(states: readonly State[], room: number): number;
}

/** The search as it was before the prune (dead states created), recording what the claim needs. */
function unprunedSearch(m: Internals, stream: number, seen: { dead: number; deadPopped: number }): void {
  const s = m.streamStates[stream];
  const states: (State & { bar: number })[] = [{ p: 1, anchor: s.last, ctx: [s.ctx[0].slice(), s.ctx[1].slice()], done: false, bar: -1 }];
  const followed = new Set([s.last]);
  const present = new Set(m.present); // the model's own set stays as it was
  let out = 0, expansions = 0;
  while (out < m.options.depth) {
    let best = -1;
    for (let i = 0; i < states.length; i++) if (!states[i].done && (best < 0 || states[i].p > states[best].p)) best = i;
    if (best < 0) break;
    const cur = states[best];
    cur.done = true;
    if (cur.p <= cur.bar) seen.deadPopped++;
    if (!present.has(cur.anchor)) { present.add(cur.anchor); out++; }
    if (out === m.options.depth || expansions >= m.options.lookahead) continue;
    expansions++;
    const bar = (m.deadBar as (st: readonly State[], room: number) => number).call({ present }, states, m.options.depth - out);
    for (const [page, q] of m.candidates(cur, -1)) {
      const p = cur.p * q;
      if (p < m.options.threshold) break;
      if (followed.has(page)) continue;
      followed.add(page);
      if (p <= bar) seen.dead++;
      states.push({ ...m.advance(cur, page, p), done: false, bar });
    }
  }
}

function check(r: ReferencePredictor, faults: ArrayLike<number>): { dead: number; deadPopped: number } {
  const m = r as unknown as Internals;
  const seen = { dead: 0, deadPopped: 0 };
  for (let i = 0; i < faults.length; i++) {
    unprunedSearch(m, 0, seen); // from the stream's context before this fault
    r.predictNext(faults[i]);
  }
  return seen;
}

test("no state at or below the dead-state bar is ever popped (mixed runs, strides, loops and jumps)", () => {
  const r = createReferencePredictor({ pageCount: BENCH_PAGES });
  r.train(mixedStream(30000, 1));
  r.rehearse();
  const seen = check(r, mixedStream(400, 2));
  assert.ok(seen.dead > 0, "the histories give the prune something to cut");
  assert.equal(seen.deadPopped, 0);
});

test("no state at or below the dead-state bar is ever popped (random small models, every alphabet)", () => {
  const rng = new Rng(7);
  let dead = 0;
  for (const alphabet of ["page", "delta", "hybrid"] as const) {
    for (let trial = 0; trial < 4; trial++) {
      const pageCount = 64 + rng.below(512);
      const r = createReferencePredictor({ pageCount, alphabet, order: 1 + rng.below(4), depth: 1 + rng.below(12), lookahead: 1 + rng.below(12), filter: 0 });
      // Short runs and repeats over a small page set: many equal counts, so ties at the bar occur.
      const h = Array.from({ length: 3000 }, (_, i) => (rng.below(4) === 0 ? rng.below(pageCount) : (i * (1 + (trial & 1))) % pageCount));
      r.train(h);
      const seen = check(r, Array.from({ length: 150 }, () => rng.below(pageCount)));
      assert.equal(seen.deadPopped, 0, `${alphabet}, trial ${trial}`);
      dead += seen.dead;
    }
  }
  assert.ok(dead > 0);
});
