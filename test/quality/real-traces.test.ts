// Quality on the bundled real traces (sqlite, xz), as recorded and scattered at 4 KiB over 1 GiB:
// train on the first 30%, replay the rest as post-copy with no background push.
import { test } from "node:test";
import assert from "node:assert/strict";
import { qualityTable, type QualityRow } from "../../src/quality/table.js";
import { BUNDLED_TRACES } from "../../src/cli/quality.js";

let rows: QualityRow[];
const table = async () => (rows ??= await qualityTable(BUNDLED_TRACES, { layouts: ["virtual", "4k"] }));
const pct = (r: QualityRow, k: "ppm" | "next8" | "markov1" | "blend") => r.results[k].percentOfDemand;

test("the engine takes no more faults than next-8 on every trace and layout", async () => {
  for (const r of await table()) assert.ok(pct(r, "ppm") <= pct(r, "next8"), `${r.trace}/${r.layout}: ppm ${pct(r, "ppm")} vs next8 ${pct(r, "next8")}`);
});

test("the engine takes no more faults than first-order Markov, except the known sqlite/4k gap (within 5%)", async () => {
  for (const r of await table()) {
    const ppm = pct(r, "ppm"), m = pct(r, "markov1");
    // sqlite/4k: markov1 learns 3.2M raw transitions, the engine ~450 history misses (RESULTS.md).
    const bound = r.trace === "sqlite" && r.layout === "4k" ? m * 1.05 : m;
    assert.ok(ppm <= bound, `${r.trace}/${r.layout}: ppm ${ppm} vs markov1 ${m}`);
  }
});

test("on average the engine takes at least 10% fewer faults than the two-signal blend", async () => {
  const rs = await table();
  const avg = (k: "ppm" | "blend") => rs.reduce((s, r) => s + pct(r, k), 0) / rs.length;
  assert.ok(avg("ppm") <= 0.9 * avg("blend"), `ppm ${avg("ppm")} vs blend ${avg("blend")}`);
});

test("nothing beats the oracle's bound, and demand faults are the distinct pages after switch-over", async () => {
  for (const r of await table()) {
    for (const k of ["ppm", "next8", "markov1", "blend"] as const) assert.ok(pct(r, k) >= 100 / 9 - 0.5, `${r.trace}/${r.layout} ${k}`);
    assert.equal(r.demandFaults, r.results.next8.demandFaults);
  }
});
