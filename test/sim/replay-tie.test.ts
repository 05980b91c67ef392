// One model of a post-copy replay: the simulator, with its clock made irrelevant (no push, no
// latency, an unbounded link, one stream, no feedback), takes exactly the faults of the quality
// table's untimed replay, for the spatial baseline, a learned baseline and the engine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readTrace } from "../../src/trace/read.js";
import { placePages } from "../../src/trace/layout.js";
import { compareStrategies } from "../../src/sim/run.js";
import { replay } from "../../src/quality/replay.js";
import { createStrategy } from "../../src/strategies/index.js";

test("the simulator without timing takes the quality replay's faults (next8, markov1, ppm-hybrid; virtual and 4k)", async () => {
  const trace = await readTrace(fileURLToPath(new URL("../fixtures/sqlite-300k.txt.gz", import.meta.url)));
  trace.streams.fill(0);
  const names = ["next8", "markov1", "ppm-hybrid"];
  for (const layout of ["virtual", "4k"] as const) {
    const c = await compareStrategies(trace, names, { layout, push: "none", feedback: false, latencyUs: 0, rawBandwidth: true, bandwidthGbps: 1e9 });
    const placed = placePages(trace.pages, { layout, seed: 1 });
    for (const r of c.results) {
      const s = await createStrategy(r.strategy, { pageCount: placed.pageCount, depth: 8, streams: 1 });
      const q = replay(placed.pages, placed.pageCount, s, { switchAt: 0.3, feedback: false });
      s.dispose?.();
      assert.equal(r.inflightFaults, 0, `${layout} ${r.strategy}: nothing is in flight without latency`);
      assert.equal(r.faults, q.faults, `${layout} ${r.strategy}: simulator ${r.faults} vs replay ${q.faults}`);
      if (r.strategy !== "next8" || layout === "virtual") assert.ok(q.faults < q.demandFaults, `${layout} ${r.strategy}: it predicted something`);
      assert.equal(r.demandFaults, q.demandFaults, `${layout} ${r.strategy}: demand`);
    }
  }
});
