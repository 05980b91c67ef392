// The summary's verdict line: ppm against the best anchor, per layout, computed from the results.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatVerdict, anchorsFor } from "../../src/cli/report.js";
import type { Comparison } from "../../src/sim/run.js";

const comp = (layout: string, push: string, rows: [string, number, number][]) =>
  ({ layout, params: { push }, results: rows.map(([strategy, faults, stallS]) => ({ strategy, faults, stallS })) }) as unknown as Comparison;

test("the verdict names each measure's best anchor and marks a layout where ppm is behind", () => {
  const out = formatVerdict([
    comp("virtual", "qemu", [["qemu", 41, 0.0272], ["hines", 40, 0.0285], ["ppm", 36, 0.0254], ["oracle", 11, 0.02]]),
    comp("4k", "qemu", [["qemu", 142, 0.07], ["readahead", 142, 0.0702], ["ppm", 143, 0.0675]]),
  ]);
  const lines = out.trim().split("\n");
  assert.equal(lines[0], "ppm against the best of qemu, hines, readahead (push qemu):"); // leap did not run
  assert.match(lines[1], /virtual: faults 36 vs 40 \(hines\) -10\.0%; stall 25\.4 vs 27\.2 ms \(qemu\) -6\.6%$/);
  assert.match(lines[2], /4k: faults 143 vs 142 \(qemu\) \+0\.7%; .*<- ppm behind$/);
});

test("without a push ppm is judged against the predictors, and nothing is said when ppm did not run", () => {
  assert.deepEqual(anchorsFor("none"), ["readahead", "leap", "next8", "markov1"]);
  assert.equal(formatVerdict([comp("virtual", "qemu", [["qemu", 1, 1]])]), "");
  assert.match(formatVerdict([comp("2m", "none", [["markov1", 10, 1], ["qemu", 1, 0.1], ["ppm", 9, 0.5]])]), /2m: faults 9 vs 10 \(markov1\)/);
});

test("the verdict names only the anchors that ran", () => {
  const out = formatVerdict([comp("4k", "qemu", [["qemu", 142, 0.07], ["hines", 146, 0.072], ["ppm", 132, 0.0675]])]);
  assert.match(out, /^\nppm against the best of qemu, hines \(push qemu\):\n  4k: faults 132 vs 142 \(qemu\) -7\.0%/);
});

test("a bandwidth sweep tags each verdict line with its bandwidth, as the summary's columns are", () => {
  const at = (bw: number, ppmStall: number) => Object.assign(comp("virtual", "qemu", [["qemu", 41, 0.027], ["ppm", 33, ppmStall]]), { bandwidthGbps: bw });
  const lines = formatVerdict([at(1, 0.03), at(10, 0.025)]).trim().split("\n");
  assert.match(lines[1], /^  virtual@1: .*<- ppm behind$/);
  assert.match(lines[2], /^  virtual@10: /);
  assert.doesNotMatch(lines[2], /behind/);
  // one bandwidth: the layout alone
  assert.match(formatVerdict([at(10, 0.025)]), /\n  virtual: faults/);
});

test("sub-millisecond stalls keep their difference in the verdict, and a tiny difference is never '-0.0%'", () => {
  const out = formatVerdict([comp("virtual", "qemu", [["qemu", 10, 0.00037], ["leap", 9, 0.00041], ["ppm", 8, 0.00035]])]);
  assert.match(out, /stall 0\.350 vs 0\.370 ms \(qemu\) -5\.4%/);
  const tie = formatVerdict([comp("virtual", "qemu", [["qemu", 10, 0.0034], ["ppm", 10, 0.0034]])]);
  assert.match(tie, /faults 10 vs 10 \(qemu\) 0\.00%; stall 3\.40 vs 3\.40 ms \(qemu\) 0\.00%$/m);
  const close = formatVerdict([comp("virtual", "qemu", [["qemu", 100000, 0.0340], ["ppm", 99990, 0.034014]])]);
  assert.match(close, /faults 99990 vs 100000 \(qemu\) -0\.01%; stall 34\.0 vs 34\.0 ms \(qemu\) \+0\.04%  <- ppm behind$/m);
  assert.doesNotMatch(close + tie, /-0\.0%/);
});
