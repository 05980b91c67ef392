/**
 * Transport measurements for docs/results/transport.md: a real trace over TCP (loopback), the source
 * as a separate `ppm-prefetch serve` process, the destination in this process (runMigration, the code
 * behind `ppm-prefetch migrate`), for demand paging and the PPM engine, over emulated links.
 *
 *   node --import tsx test/transport/measure.ts [--reps 3] [--trace FILE] [--layout 4k] [--image-size 64M]
 *     [--ips 1e9] [--push linear] [--push-window 32] [--links 0:0,50:10,200:1] [--strategies demand,ppm]
 *
 * Prints one markdown row per (link, strategy): medians over the repetitions.
 */
import { existsSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runMigration, type MigrationResult } from "../../src/transport/destination.js";
import { readTrace } from "../../src/trace/read.js";
import { spawnServe } from "./helpers.js";
import type { LayoutName } from "../../src/trace/layout.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const { values: v } = parseArgs({
  options: {
    reps: { type: "string" }, trace: { type: "string" }, layout: { type: "string" }, "image-size": { type: "string" },
    ips: { type: "string" }, push: { type: "string" }, "push-window": { type: "string" }, links: { type: "string" }, strategies: { type: "string" },
  },
});
const reps = Number(v.reps ?? 3);
const tracePath = v.trace ?? join(ROOT, "test/fixtures/sqlite-300k.txt.gz");
const layout = (v.layout ?? "4k") as LayoutName;
const size = v["image-size"] ?? "64M";
const ips = Number(v.ips ?? 1e9);
const push = v.push ?? "linear";
const pushWindow = v["push-window"] ?? "32";
const links = (v.links ?? "0:0,50:10,200:1").split(",").map((s) => { const [d, r] = s.split(":").map(Number); return { delayUs: d, rateGbps: r }; });
const strategies = (v.strategies ?? "demand,ppm").split(",");
const imagePath = join(tmpdir(), `ppm-transport-${size}.bin`);

function serve(strategy: string, link: { delayUs: number; rateGbps: number }): Promise<{ port: number; done: Promise<number> }> {
  const args = ["--image", imagePath, ...(existsSync(imagePath) ? [] : ["--generate", size]),
    "--port", "0", "--strategy", strategy, "--push", push, "--push-window", pushWindow, "--history", tracePath, "--history-source", "full", "--layout", layout, "--exit-after", "1", "--quiet",
    "--delay-us", String(link.delayUs), "--rate-gbps", String(link.rateGbps)];
  return spawnServe(args);
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };

const trace = await readTrace(tracePath);
const rows: string[] = [];
process.stderr.write(`trace ${trace.name}: ${trace.length} accesses; layout ${layout}; image ${size}; ips ${ips}; push ${push} (window ${pushWindow}); load ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
for (const link of links) {
  // strategies interleaved within each repetition, so that a change in the machine's load hits both
  const runs = new Map<string, MigrationResult[]>(strategies.map((x) => [x, []]));
  for (let i = 0; i < reps; i++) {
    for (const strategy of strategies) {
      const s = await serve(strategy, link);
      const r = await runMigration({ port: s.port, trace, layout, ips, link, timeoutMs: 300_000 });
      await s.done;
      if (!r.verified || r.duplicatePages !== 0) throw new Error(`run not verified: ${JSON.stringify(r)}`);
      runs.get(strategy)!.push(r);
      process.stderr.write(`  ${link.delayUs}us/${link.rateGbps}G ${strategy}: faults ${r.faults} stall ${r.stallMs.toFixed(1)} ms completion ${r.completionMs.toFixed(1)} migration ${r.migrationMs.toFixed(1)} predictorUs ${r.predictorUs.toFixed(0)}\n`);
    }
  }
  for (const strategy of strategies) {
    const rs = runs.get(strategy)!;
    const m = (f: (r: MigrationResult) => number, d = 1) => median(rs.map(f)).toFixed(d);
    const linkName = link.delayUs === 0 && link.rateGbps === 0 ? "loopback (no emulation)" : `${link.delayUs} us / ${link.rateGbps} Gbit/s`;
    rows.push(`| ${linkName} | ${strategy} | ${m((r) => r.faults, 0)} | ${m((r) => r.stallMs)} | ${m((r) => r.stall.p50Us, 0)} / ${m((r) => r.stall.p99Us, 0)} | ${m((r) => r.completionMs)} | ${m((r) => r.migrationMs)} | ${m((r) => r.received.predicted, 0)} | ${m((r) => 100 * r.accuracy, 0)}% | ${m((r) => r.predictorUs, 0)} | ${m((r) => (r.requests ? r.predictorUs / r.requests : 0), 1)} |`);
  }
}
process.stderr.write(`load at the end ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
process.stdout.write([
  `| link | strategy | faults | stall ms | stall p50 / p99 us | completion ms | migration ms | predicted pages | accuracy | predictorUs | us/fault |`,
  `|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
  ...rows, "",
].join("\n"));
