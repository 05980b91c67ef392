import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { createPredictorStrategy, type PredictorStrategy } from "../../src/strategies/predictor-strategy.js";
import { Rng } from "../../src/util/random.js";
import { image } from "./helpers.js";

const PAGES = 4096;

/** A scattered loop: the same 400 random pages in the same order, again and again, with noise. */
function loopTrace(length: number, seed = 5) {
  const rng = new Rng(seed);
  const cycle = Array.from({ length: 400 }, () => rng.below(PAGES));
  const pages = new Uint32Array(length), gaps = new Uint32Array(length).fill(100);
  for (let i = 0; i < length; i++) pages[i] = rng.next() < 0.05 ? rng.below(PAGES) : cycle[i % cycle.length];
  return { pages, gaps, streams: new Uint16Array(length), length };
}

test("the PPM engine behind the page server: trained on the history, fed back, fewer faults than demand paging", { timeout: 60_000 }, async () => {
  const trace = loopTrace(6000);
  const history = trace.pages.slice(0, Math.floor(trace.length * 0.3));
  const img = image(PAGES, 11);
  const made: PredictorStrategy[] = [];
  let stats: ReturnType<PredictorStrategy["predictor"]["stats"]> | undefined;
  const ppm = await startPageServer({
    image: img, push: "none",
    strategy: ({ pageCount }) => {
      const s = createPredictorStrategy({ pageCount, maxContexts: 1 << 15, streams: 1, depth: 16 });
      s.train!(history);
      made.push(s);
      // keep the predictor's counters: the session disposes of its strategy when it ends
      return { ...s, dispose: () => { stats = s.predictor.stats(); s.dispose!(); } };
    },
  });
  const demand = await startPageServer({ image: img, push: "none" });
  try {
    const d = await runMigration({ port: demand.port, trace, ips: 0, timeoutMs: 40_000 });
    const p = await runMigration({
      port: ppm.port, trace, ips: 0, timeoutMs: 40_000,
    });
    for (const r of [d, p]) {
      assert.equal(r.verified, true);
      assert.equal(r.duplicatePages, 0);
      assert.equal(r.pagesReceived, PAGES);
    }
    assert.equal(made.length, 1);
    assert.ok(p.received.predicted > 100, `predicted ${p.received.predicted}`);
    assert.ok(p.used.predicted > 100 && p.accuracy > 0.05, `accuracy ${p.accuracy}`);
    // the loop's pages are predicted; what still faults is mostly the 5% noise
    assert.ok(p.faults * 2 < d.faults, `ppm ${p.faults} faults, demand ${d.faults}`);
    assert.ok(p.predictorUs > 0);
    assert.ok(stats, "the session disposed of its predictor");
    assert.equal(stats.faults, p.requests, "one predictNext per fault request");
    assert.equal(stats.observed, p.used.predicted + p.used.push, "every touched prefetched page is observed once");
    assert.equal(stats.presentPages, PAGES, "every page sent was marked present");
  } finally { await ppm.close(); await demand.close(); }
});

test("the adapter maps the Strategy calls onto the predictor", () => {
  const s = createPredictorStrategy({ pageCount: 64, maxContexts: 1 << 12, streams: 2, depth: 4 });
  try {
    const seq = Uint32Array.from({ length: 200 }, (_, i) => [3, 9, 27, 50][i % 4]);
    s.train!(seq, new Uint16Array(200));
    assert.deepEqual(Array.from(s.onFault(3, 0)).slice(0, 1), [9]);
    s.onPresent!(9);
    assert.equal(s.predictor.isPresent(9), true);
    assert.ok(!Array.from(s.onFault(3, 0)).includes(9), "a present page is never predicted");
    s.onTouch!(27, 5); // stream 5 folds onto one of the predictor's 2 histories
    assert.equal(s.predictor.stats().observed, 1);
  } finally { s.dispose!(); }
});

test("PPM engine, emulated link, several vCPUs and random link failures: the session and its predictor survive", { timeout: 60_000 }, async () => {
  const { killAfter, syntheticTrace } = await import("./helpers.js");
  const rng = new Rng(7);
  let made = 0;
  const link = { delayUs: 50, rateGbps: 10 };
  const srv = await startPageServer({
    image: image(PAGES, 3), link,
    strategy: ({ pageCount }) => { made++; return createPredictorStrategy({ pageCount, maxContexts: 1 << 15, streams: 4 }); },
  });
  try {
    for (let run = 0; run < 2; run++) {
      const r = await runMigration({
        port: srv.port, trace: syntheticTrace(12000, PAGES, 30 + run, 4), ips: 1e8, link, timeoutMs: 40_000,
        onSocket: (s, attempt) => { if (attempt < 3) killAfter(s, 1 + rng.below(PAGES * 4096 / 3)); },
      });
      assert.equal(r.verified, true);
      assert.equal(r.duplicatePages, 0);
      assert.equal(r.pagesReceived, PAGES);
      assert.ok(r.reconnects >= 3);
    }
    assert.equal(made, 2, "one predictor per migration, kept across reconnections");
  } finally { await srv.close(); }
});
