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
  assert.match(lines[0], /^ppm against the best of qemu, hines, readahead \(push qemu, theirs; ppm orders its own/); // leap did not run
  assert.match(lines[1], /virtual: requests 36 vs 40 \(hines\) -10\.0% \(network faults 36 vs 40\); stall 25\.4 vs 27\.2 ms \(qemu\) -6\.6%$/);
  assert.match(lines[2], /4k: requests 143 vs 142 \(qemu\) \+0\.7% .*<- ppm behind$/);
});

test("the verdict says what the strategies trained on: a recordable history, or the full one named as unrecordable", () => {
  const rows: [string, number, number][] = [["qemu", 41, 0.0272], ["ppm", 36, 0.0254]];
  const withHistory = (history: object) => Object.assign(comp("virtual", "qemu", rows), { history, params: { push: "qemu", ips: 1e9 } });
  assert.match(formatVerdict([withHistory({ kind: "sets", interval: 1e7 })]), /; trained on the pages touched in each 10 ms before the switch-over, unordered, as access-bit sampling records \(sets:1e7\)\):\n/);
  assert.match(formatVerdict([withHistory({ kind: "full" })]), /; trained on every access before the switch-over, in order \(no hypervisor records that\)\):\n/);
  assert.match(formatVerdict([withHistory({ kind: "first-touch", interval: 1e6 })]), /; trained on first-touch:1e6\):\n/);
});

test("without a push ppm is judged against the predictors, and nothing is said when ppm did not run", () => {
  assert.deepEqual(anchorsFor("none"), ["readahead", "leap", "next8", "markov1"]);
  assert.equal(formatVerdict([comp("virtual", "qemu", [["qemu", 1, 1]])]), "");
  assert.match(formatVerdict([comp("2m", "none", [["markov1", 10, 1], ["qemu", 1, 0.1], ["ppm", 9, 0.5]])]), /2m: requests 9 vs 10 \(markov1\)/);
  // without a push nobody orders a push: nothing to say about it
  assert.match(formatVerdict([comp("2m", "none", [["markov1", 10, 1], ["ppm", 9, 0.5]])]), /\(push none\):\n/);
});

test("the verdict names only the anchors that ran", () => {
  const out = formatVerdict([comp("4k", "qemu", [["qemu", 142, 0.07], ["hines", 146, 0.072], ["ppm", 132, 0.0675]])]);
  assert.match(out, /^\nppm against the best of qemu, hines \(push qemu, theirs;[^\n]*\):\n  4k: requests 132 vs 142 \(qemu\) -7\.0%/);
});

test("a bandwidth sweep tags each verdict line with its bandwidth, as the summary's columns are", () => {
  const at = (bw: number, ppmStall: number) => Object.assign(comp("virtual", "qemu", [["qemu", 41, 0.027], ["ppm", 33, ppmStall]]), { bandwidthGbps: bw });
  const lines = formatVerdict([at(1, 0.03), at(10, 0.025)]).trim().split("\n");
  assert.match(lines[1], /^  virtual@1: .*<- ppm behind$/);
  assert.match(lines[2], /^  virtual@10: /);
  assert.doesNotMatch(lines[2], /behind/);
  // one bandwidth: the layout alone
  assert.match(formatVerdict([at(10, 0.025)]), /\n  virtual: requests/);
});

test("sub-millisecond stalls keep their difference in the verdict, and a tiny difference is never '-0.0%'", () => {
  const out = formatVerdict([comp("virtual", "qemu", [["qemu", 10, 0.00037], ["leap", 9, 0.00041], ["ppm", 8, 0.00035]])]);
  assert.match(out, /stall 0\.350 vs 0\.370 ms \(qemu\) -5\.4%/);
  const tie = formatVerdict([comp("virtual", "qemu", [["qemu", 10, 0.0034], ["ppm", 10, 0.0034]])]);
  assert.match(tie, /requests 10 vs 10 \(qemu\) 0\.00% \(network faults 10 vs 10\); stall 3\.40 vs 3\.40 ms \(qemu\) 0\.00%$/m);
  const close = formatVerdict([comp("virtual", "qemu", [["qemu", 100000, 0.0340], ["ppm", 99990, 0.034014]])]);
  assert.match(close, /requests 99990 vs 100000 \(qemu\) -0\.01% \(network faults 99990 vs 100000\); stall 34\.0 vs 34\.0 ms \(qemu\) \+0\.04%  <- ppm behind$/m);
  assert.doesNotMatch(close + tie, /-0\.0%/);
});

test("requests count the waits on pages in flight: fewer network faults with more in flight is not fewer requests", () => {
  const row = (strategy: string, faults: number, inflightFaults: number, stallS: number) => ({ strategy, faults, inflightFaults, stallS });
  const c = { layout: "virtual", params: { push: "qemu" }, results: [row("qemu", 41, 24, 0.0272), row("readahead", 43, 21, 0.0274), row("ppm", 35, 31, 0.0249)] } as unknown as Comparison;
  const line = formatVerdict([c]).trim().split("\n")[1];
  assert.match(line, /requests 66 vs 64 \(readahead\) \+3\.1% \(network faults 35 vs 43\); stall 24\.9 vs 27\.2 ms \(qemu\) -8\.5%  <- ppm behind$/);
});
