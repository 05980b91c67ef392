// The quality table's markdown: the lowest figure of a row is bold, whoever has it; the oracle column is the true floor.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatQualityTable, type QualityRow } from "../../src/quality/table.js";

const row = (trace: string, demandFaults: number, ppm: number, next8: number, markov1: number, blend: number): QualityRow => {
  const r = (p: number) => ({ faults: 0, demandFaults, percentOfDemand: p, prefetched: 0, accuracy: 0 });
  return { trace, layout: "virtual", demandFaults, results: { ppm: r(ppm), next8: r(next8), markov1: r(markov1), blend: r(blend) } };
};

test("the lowest figure of each row is bold, ties included, and only it", () => {
  const lines = formatQualityTable([row("a", 443, 13.3, 15.1, 68.6, 13.0), row("b", 4780, 12.8, 20.3, 12.8, 14.8)]).trim().split("\n");
  assert.equal(lines[2], "| a | virtual | 443 | 13.3 | 15.1 | 68.6 | **13.0** | 11.3 |");
  assert.equal(lines[3], "| b | virtual | 4780 | **12.8** | 20.3 | **12.8** | 14.8 | 11.1 |");
  assert.equal(lines[4], "| **average** | | | **13.1** | 17.7 | 40.7 | 13.9 | |");
});

test("the oracle bound is ceil(demand / (depth + 1)) faults: 50% of 2 demand faults at depth 8, 100% of 1", () => {
  assert.match(formatQualityTable([row("tiny", 2, 50, 50, 50, 50)]), /\| tiny \| virtual \| 2 \| .* \| 50\.0 \|\n/);
  assert.match(formatQualityTable([row("one", 1, 100, 100, 100, 100)], 8), /\| 100\.0 \|\n/);
  assert.match(formatQualityTable([row("d2", 9, 50, 50, 50, 50)], 2), /\| 33\.3 \|\n/);
});

test("quality reads a binary trace as it reads the same trace in text", async () => {
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const { convertTrace } = await import("../../src/cli/convert.js");
  const { qualityTable } = await import("../../src/quality/table.js");
  const text = fileURLToPath(new URL("../fixtures/sqlite-300k.txt.gz", import.meta.url));
  const bin = join(mkdtempSync(join(tmpdir(), "ppm-q-")), "sqlite-300k.ppmt");
  await convertTrace(text, bin, "binary");
  const opts = { layouts: ["virtual" as const] };
  const [a] = await qualityTable([text], opts);
  const [b] = await qualityTable([bin], opts);
  assert.ok(a.demandFaults > 0);
  assert.deepEqual(b.results, a.results);
});
