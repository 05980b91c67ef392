/**
 * A real loopback migration against the simulator's prediction of it, per strategy, with the same
 * push order on both sides (src/sim/push.ts: the source's background push is that PushOrder).
 *
 * The source is a separate `ppm-prefetch serve` process (strategy built and trained in its worker),
 * the destination runs in this process (runMigration, the code behind `migrate`). The image is
 * exactly the trace's footprint (layout virtual: the recorded pages are dense), so the push covers
 * the same pages as the simulator's. Both sides' links are emulated with `--delay-us` and
 * `--rate-gbps`; the simulator gets the same one-way latency, the same rate (raw, not scaled) and the
 * wire's 17-byte PAGE header.
 *
 * What is compared: faults = fault requests that sent their page (the source's `fault` pages; the
 * simulator's network faults), and the vCPU stall summed over streams (both count in-flight waits).
 *
 *   node --import tsx test/transport/push-compare.ts [--strategies demand,ppm] [--push qemu] [--reps 3]
 *     [--trace traces/xz.txt.gz] [--ips 1e9] [--delay-us 50] [--rate-gbps 1] [--switch-at 0.3] [--depth 8] [--json]
 *     [--sim-queue on|off] [--sim-overhead-us N|calibrate]
 *
 * The simulator models this transport's link as well as its rate and delay: its queue (`--sim-queue
 * on`, the default: a fault's page waits behind what the source already handed to the link emulator,
 * `--link-queue` bytes) and the host's software time per fault round trip (`--sim-overhead-us`,
 * default `calibrate`: one demand-paging migration without a push first, whose faults are exactly one
 * round trip each, so its stall beyond the simulator's, per fault, is that time).
 *
 * A strategy name is a registry name (ppm, ppm-hybrid, next8, ...) or demand; the simulator runs it
 * with the push serve runs: the strategy's own order when it carries one other than none (ppm steers
 * into Hines' bubbling), otherwise the push given here (demand's own `none` is overridden).
 * Prints a markdown table (medians over the repetitions) and the relative error of the simulator, also
 * with the simulator run at the guest speed the loopback replay actually reached (see replayIps).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runMigration, type MigrationResult } from "../../src/transport/destination.js";
import { readTrace } from "../../src/trace/read.js";
import { spawnServe } from "./helpers.js";
import { prepareRun } from "../../src/sim/run.js";
import { simulate, history } from "../../src/sim/simulator.js";
import { createStrategy } from "../../src/strategies/index.js";
import type { SimStrategy } from "../../src/strategies/context.js";
import type { PushMode } from "../../src/sim/push.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const { values: v } = parseArgs({
  options: {
    strategies: { type: "string" }, push: { type: "string" }, reps: { type: "string" }, trace: { type: "string" },
    ips: { type: "string" }, "delay-us": { type: "string" }, "rate-gbps": { type: "string" }, "switch-at": { type: "string" },
    depth: { type: "string" }, json: { type: "boolean" }, "push-window": { type: "string" }, "link-queue": { type: "string" },
    "sim-queue": { type: "string" }, "sim-overhead-us": { type: "string" },
  },
});
const strategies = (v.strategies ?? "demand,ppm-hybrid").split(",");
const push = (v.push ?? "qemu") as PushMode;
const reps = Number(v.reps ?? 3);
const tracePath = v.trace ?? join(ROOT, "traces/xz.txt.gz");
const ips = Number(v.ips ?? 1e9);
const delayUs = Number(v["delay-us"] ?? 50);
const rateGbps = Number(v["rate-gbps"] ?? 1);
const switchAt = Number(v["switch-at"] ?? 0.3);
const depth = Number(v.depth ?? 8);
const pushWindow = v["push-window"] ?? "32";
const linkQueue = v["link-queue"] ?? "65536";
// The simulator's model of this transport: its link queue (pages handed to the emulator cannot be
// overtaken) and the host's software time per fault round trip, measured by a calibration migration
// (demand paging without a push: every fault is one round trip, and the simulator's figure for it
// differs from the loopback's only by that time) unless given.
const simQueue = (v["sim-queue"] ?? "on") === "on" ? Number(linkQueue) : 0;
const overheadArg = v["sim-overhead-us"] ?? "calibrate";
if (!(rateGbps > 0)) throw new RangeError("--rate-gbps must be > 0: the simulator needs the link's rate");
const link = { delayUs, rateGbps };
const layout = "virtual" as const;

const trace = await readTrace(tracePath);
// the guest is the trace's span (recorded traces are renumbered densely): the image is the footprint
let span = 0;
for (let i = 0; i < trace.length; i++) if (trace.pages[i] >= span) span = trace.pages[i] + 1;
const prepared = (atIps: number) => prepareRun(trace, {
  layout, vmPages: span, switchAt, ips: atIps, depth, push, feedback: true, bandwidthGbps: rateGbps, rawBandwidth: true, latencyUs: delayUs,
  headerBytes: 17, pageSize: 4096,
});
const { prep } = prepared(ips);
const pageCount = prep.trace.pageCount;
if (prep.footprint.length !== pageCount) {
  process.stderr.write(`note: the footprint (${prep.footprint.length} pages) is not the whole guest (${pageCount}): the source pushes every page, the simulator only the footprint\n`);
}

const dir = mkdtempSync(join(tmpdir(), "ppm-push-compare-"));
const imagePath = join(dir, "image.bin");

function serve(strategy: string, generate: boolean, pushMode: PushMode = push): Promise<{ port: number; done: Promise<number> }> {
  const args = ["--image", imagePath, ...(generate ? ["--generate", String(pageCount * 4096)] : []),
    "--port", "0", "--strategy", strategy, "--push", pushMode, "--history", tracePath, "--history-source", "full", "--layout", layout, "--switch-at", String(switchAt),
    "--depth", String(depth), "--push-window", pushWindow, "--link-queue", linkQueue, "--exit-after", "1", "--quiet", "--delay-us", String(delayUs), "--rate-gbps", String(rateGbps)];
  return spawnServe(args);
}

/**
 * The guest speed the loopback replay actually ran at: its accesses are due at `ips`, but a replay
 * loop on a loaded host falls behind, and a slower guest gives the push more time per access (fewer
 * faults). The run time without stalls (completion - stall, exact for one stream) against the
 * trace's own duration at `ips` gives the effective rate the simulator can be run at.
 */
function replayIps(r: MigrationResult): number {
  const ran = r.completionMs - r.stallMs;
  return r.guestMs > 0 && ran > 0 ? ips * Math.min(1, r.guestMs / ran) : ips;
}

async function simulated(name: string, atIps = ips, pushMode: PushMode = push, overheadUs = requestOverheadUs): Promise<{ faults: number; stallMs: number }> {
  const { prep, params: base, link: simLink } = prepared(atIps);
  const params = { ...base, push: pushMode, linkQueueBytes: simQueue, requestOverheadUs: overheadUs };
  const s = await createStrategy(name, { pageCount, depth, streams: Math.min(4096, prep.streamCount), push } as Parameters<typeof createStrategy>[1]);
  try {
    const h = history(prep);
    s.train?.(h.pages, h.streams);
    // the push the source runs, as serve chooses it: the strategy's own order when it carries one and
    // a push runs at all (ppm steers into Hines' bubbling, hines and qemu carry theirs), else --push
    // (demand's own is none: it then runs on --push, as the real source does)
    const own = s.push;
    const runs: PushMode = own !== undefined && own !== "none" && pushMode !== "none" ? own : pushMode;
    const withPush: SimStrategy = {
      name: s.name, push: runs, onFault: s.onFault.bind(s), train: undefined, steerPush: s.steerPush?.bind(s),
      onTouch: s.onTouch?.bind(s), onPresent: s.onPresent?.bind(s), maintain: s.maintain?.bind(s),
    };
    const r = simulate(prep, withPush, simLink, params);
    return { faults: r.faults, stallMs: r.stallS * 1e3 };
  } finally { s.dispose?.(); }
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const rows: Record<string, unknown>[] = [];
let requestOverheadUs = overheadArg === "calibrate" ? 0 : Number(overheadArg);
if (!(requestOverheadUs >= 0)) throw new RangeError(`--sim-overhead-us must be a number >= 0 or calibrate, got ${overheadArg}`);
try {
  process.stderr.write(`trace ${trace.name}: ${trace.length} accesses, ${pageCount} pages; push ${push}; link ${delayUs} us / ${rateGbps} Gbit/s (queue ${linkQueue} B, push window ${pushWindow}); ips ${ips}; depth ${depth}; load ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
  const runs = new Map<string, MigrationResult[]>(strategies.map((x) => [x, []]));
  let first = true;
  if (overheadArg === "calibrate") {
    const s = await serve("demand", first, "none");
    first = false;
    const r = await runMigration({ port: s.port, trace, layout, switchAt, ips, link, timeoutMs: 300_000 });
    await s.done;
    if (!r.verified) throw new Error(`calibration run not verified: ${JSON.stringify(r)}`);
    const sim0 = await simulated("demand", ips, "none", 0);
    requestOverheadUs = Math.max(0, ((r.stallMs - sim0.stallMs) / Math.max(1, r.received.fault)) * 1e3);
    process.stderr.write(`  calibration (demand, no push): ${r.received.fault} faults (simulator ${sim0.faults}), stall ${r.stallMs.toFixed(1)} ms against ${sim0.stallMs.toFixed(1)} simulated: ${requestOverheadUs.toFixed(0)} us of software time per fault round trip\n`);
  }
  for (let i = 0; i < reps; i++) {
    for (const strategy of strategies) {
      const s = await serve(strategy, first);
      first = false;
      const r = await runMigration({ port: s.port, trace, layout, switchAt, ips, link, timeoutMs: 300_000 });
      await s.done;
      if (!r.verified || r.duplicatePages !== 0) throw new Error(`run not verified: ${JSON.stringify(r)}`);
      runs.get(strategy)!.push(r);
      process.stderr.write(`  ${strategy}: fault pages ${r.received.fault} (in-flight waits ${r.inflightWaits}) stall ${r.stallMs.toFixed(1)} ms predicted ${r.received.predicted} migration ${r.migrationMs.toFixed(1)} ms\n`);
    }
  }
  for (const strategy of strategies) {
    const rs = runs.get(strategy)!;
    const sim = await simulated(strategy);
    const effIps = median(rs.map(replayIps));
    const simEff = await simulated(strategy, effIps);
    const faults = median(rs.map((r) => r.received.fault));
    const stallMs = median(rs.map((r) => r.stallMs));
    rows.push({
      strategy, faults, faultsRange: [Math.min(...rs.map((r) => r.received.fault)), Math.max(...rs.map((r) => r.received.fault))],
      stallMs, stallRange: [Math.min(...rs.map((r) => r.stallMs)), Math.max(...rs.map((r) => r.stallMs))],
      inflightWaits: median(rs.map((r) => r.inflightWaits)), predicted: median(rs.map((r) => r.received.predicted)),
      migrationMs: median(rs.map((r) => r.migrationMs)),
      simFaults: sim.faults, simStallMs: sim.stallMs,
      faultsErr: sim.faults / faults - 1, stallErr: sim.stallMs / stallMs - 1,
      replayIps: effIps, simAtReplayFaults: simEff.faults, simAtReplayStallMs: simEff.stallMs,
      faultsErrAtReplay: simEff.faults / faults - 1, stallErrAtReplay: simEff.stallMs / stallMs - 1,
    });
  }
} finally { rmSync(dir, { recursive: true, force: true }); }
process.stderr.write(`load at the end ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
const pct = (x: unknown) => `${(100 * (x as number)).toFixed(1)}%`;
if (v.json) process.stdout.write(JSON.stringify({ trace: trace.name, pageCount, push, delayUs, rateGbps, ips, depth, reps, simQueue, requestOverheadUs, rows }) + "\n");
else {
  process.stdout.write([
    `| strategy | fault pages (loopback, median [range]) | simulator | error | stall ms (loopback) | simulator | error | migration ms | replay's guest speed | simulator at it: faults (error) | stall ms (error) |`,
    `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
    ...rows.map((r) => `| ${r.strategy} | ${r.faults} [${(r.faultsRange as number[]).join("-")}] | ${r.simFaults} | ${pct(r.faultsErr)} | ` +
      `${(r.stallMs as number).toFixed(1)} [${(r.stallRange as number[]).map((x) => x.toFixed(1)).join("-")}] | ${(r.simStallMs as number).toFixed(1)} | ${pct(r.stallErr)} | ${(r.migrationMs as number).toFixed(1)} | ` +
      `${((r.replayIps as number) / ips).toFixed(3)}x | ${r.simAtReplayFaults} (${pct(r.faultsErrAtReplay)}) | ${(r.simAtReplayStallMs as number).toFixed(1)} (${pct(r.stallErrAtReplay)}) |`),
    "",
  ].join("\n"));
}
