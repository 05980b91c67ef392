// The reference model's search-shape diagnostic (bench/search-shape.ts): expansions and levels of
// the expansion tree, on two models whose trees are known: a chain and a star.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createReferencePredictor } from "../../src/reference/ppm.js";

test("a cycle makes the search a chain: every expansion is one level deeper", () => {
  const r = createReferencePredictor({ pageCount: 1000, alphabet: "page", filter: 0 });
  const cycle = Array.from({ length: 100 }, (_, i) => i * 7);
  r.train([...cycle, ...cycle, ...cycle]);
  const out = r.predictNext(0);
  assert.deepEqual(Array.from(out), [7, 14, 21, 28, 35, 42, 49, 56]);
  assert.equal(r.lastSearch.expansions, 8);
  assert.equal(r.lastSearch.levels, 8);
});

test("a star (16 equally likely successors) spends the budget on one level: two levels", () => {
  const r = createReferencePredictor({ pageCount: 1000, alphabet: "page", order: 1, filter: 0 });
  // 0 is followed by 10..25, each once (1/32 each under escape D), and each of those by its own page
  // (then 0 again): a grandchild's path probability is half its parent's, so the 7 expansions after the
  // root all go to siblings on the first level.
  const h: number[] = [];
  for (let i = 0; i < 16; i++) h.push(0, 10 + i, 500 + i * 3);
  r.train(h);
  r.predictNext(0);
  assert.ok(r.lastSearch.expansions >= 2, `expansions ${r.lastSearch.expansions}`);
  assert.equal(r.lastSearch.levels, 2);
  // With lookahead 1 only the root is expanded.
  const one = createReferencePredictor({ pageCount: 1000, alphabet: "page", order: 1, filter: 0, lookahead: 1 });
  one.train(h);
  one.predictNext(0);
  assert.deepEqual(one.lastSearch, { expansions: 1, levels: 1 });
});
