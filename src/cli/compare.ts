/**
 * `ppm-prefetch compare`: the same trace, the same link, every strategy side by side, in every layout.
 * Without --trace or --workload it runs on the bundled real trace traces/sqlite.txt.gz.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { UsageError, intOption, numberOption, choiceOption } from "./args.js";
import { synthesize, isWorkloadName, WORKLOADS } from "../trace/synth.js";
import { LAYOUTS, type LayoutName } from "../trace/layout.js";
import type { Trace } from "../trace/format.js";
import { PUSH_MODES, type PushMode } from "../sim/push.js";
import { STRATEGIES, STRATEGY_NAMES, isStrategyName } from "../strategies/index.js";
import { compareStrategies, type Comparison, type RunOptions } from "../sim/run.js";
import { DEFAULT_PARAMS, QUEUE_POLICIES, type QueuePolicy } from "../sim/simulator.js";
import { describeComparison, formatLegend, formatSummary, formatTable, formatVerdict, renderSvg, toJson, writeAtomic } from "./report.js";
import { parseHistorySpec, formatHistorySpec, needsWrites, intervalMs, DEFAULT_HISTORY, type HistorySpec } from "../history/sources.js";
import { MAX_GUEST_PAGES, checkAccesses, checkFits, checkInputFile, checkOutputDir, checkSpan, maxPageOf, readTraceFile } from "./input.js";

export const DEFAULT_TRACE = fileURLToPath(new URL("../../traces/sqlite.txt.gz", import.meta.url));

const USAGE = `usage: ppm-prefetch compare [--trace FILE | --workload NAME] [options]

  --trace FILE          text or binary trace (.gz ok); default: the bundled traces/sqlite.txt.gz
  --workload NAME       synthetic workload: ${WORKLOADS.join(", ")}
  --accesses N          workload length (default 200000)      --pages N   workload footprint (default 4096)
  --limit N             read only the first N accesses of --trace
  --switch-at F         switch-over as a fraction of the trace (default 0.3)
  --bandwidth-gbps B    nominal link bandwidth, or a comma list for a sweep (default 10)
  --raw-bandwidth       use the bandwidth literally instead of scaling it to the trace's footprint
  --latency-us U        one-way latency (default 50)
  --link-queue BYTES    bytes the link queues ahead of a fault's page (a NIC's or the transport's link
                          emulator's FIFO; serve's default is 65536); default 0: preemptible at every page
  --request-overhead-us U  software time of a fault's round trip beyond the link (fault handlers, event
                          loops); default 0
  --depth D             predicted pages per fault (default 8)
  --push MODE           background push: ${PUSH_MODES.join(", ")} (default qemu)
  --layout L            ${LAYOUTS.join(", ")} or all (default all)
  --vm-pages N          guest size in 4 KiB pages for 2m/4k (default 262144 = 1 GiB, or the trace's span
                        when larger; at most 2^28)
  --seed S              layout and workload seed (default 1)
  --strategies a,b      subset of: ${STRATEGY_NAMES.join(", ")}
  --feedback on|off     piggybacked feedback of touched prefetched pages (default on)
  --adaptive            adaptive depth from feedback (1..2 x depth)
  --queue POLICY        predicted pages still waiting when a new fault comes: fifo, newest, replace (default fifo)
  --ips N               guest instructions per second (default 1e9)
  --history SRC         what the strategies train on before the switch-over (default ${DEFAULT_HISTORY}:
                          what access-bit sampling records; no hypervisor records \`full\`):
                          full            every access, in order (more than any hypervisor records)
                          first-touch:T   first touch of each page per interval of T guest instructions
                                          (or 10ms, 100us), in order (NUMA-hinting faults, userfaultfd-wp)
                          sets:T          the pages touched per interval, unordered (access bits, DAMON)
                          writes:T        first-touch:T of written pages only (KVM dirty ring, Intel PML)
                          write-sets:T    sets:T of written pages only (dirty bitmaps); writes need r/w traces
                          earlier         the faults and feedback of an earlier post-copy migration
                          none            nothing: the strategy learns online from the faults
  --page-size N         bytes per page (default 4096)
  --json                print only JSON on stdout
  --svg FILE            write a chart (faults, stall, stall distribution)
`;

export interface CompareSetup {
  trace: Trace;
  names: string[];
  layouts: LayoutName[];
  bandwidths: number[];
  run: RunOptions;
  json: boolean;
  svg?: string;
  /** The strategies were named on the command line (not the default list). */
  explicitStrategies: boolean;
}

export async function parseCompareArgs(args: string[], single = false): Promise<CompareSetup | undefined> {
  const { values: v } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      trace: { type: "string" }, workload: { type: "string" }, accesses: { type: "string" }, pages: { type: "string" },
      limit: { type: "string" }, "switch-at": { type: "string" }, "bandwidth-gbps": { type: "string" },
      "raw-bandwidth": { type: "boolean" }, "latency-us": { type: "string" }, depth: { type: "string" },
      "link-queue": { type: "string" }, "request-overhead-us": { type: "string" },
      push: { type: "string" }, layout: { type: "string" }, "vm-pages": { type: "string" }, seed: { type: "string" },
      strategies: { type: "string" }, strategy: { type: "string" }, feedback: { type: "string" }, adaptive: { type: "boolean" },
      ips: { type: "string" }, history: { type: "string" }, queue: { type: "string" }, "page-size": { type: "string" }, json: { type: "boolean" }, svg: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) return undefined;
  if (v.trace !== undefined && v.workload !== undefined) throw new UsageError("give either --trace or --workload, not both");
  const seed = intOption("seed", v.seed, 1, 0, 0xffffffff);
  const switchAt = numberOption("switch-at", v["switch-at"], 0.3, 0, 0.99);
  const latencyUs = numberOption("latency-us", v["latency-us"], 50, 0, 1e7);
  const linkQueueBytes = intOption("link-queue", v["link-queue"], 0, 0, 1 << 30);
  const requestOverheadUs = numberOption("request-overhead-us", v["request-overhead-us"], 0, 0, 1e7);
  // adaptive depth goes up to twice --depth, and the engine takes at most 256
  let depth: number;
  try { depth = intOption("depth", v.depth, 8, 0, v.adaptive ? 128 : 256); } catch (e) {
    throw v.adaptive ? new UsageError(`${(e as Error).message} (with --adaptive, which goes up to twice --depth; 0..256 without it)`) : e;
  }
  const push = choiceOption<PushMode>("push", v.push, "qemu", PUSH_MODES);
  const vmPages = v["vm-pages"] === undefined ? undefined : intOption("vm-pages", v["vm-pages"], 0, 512, MAX_GUEST_PAGES);
  const ips = numberOption("ips", v.ips, 1e9, 1e3, 1e13);
  const pageSize = intOption("page-size", v["page-size"], 4096, 64, 1 << 21);
  const feedback = choiceOption("feedback", v.feedback, "on", ["on", "off"] as const) === "on";
  let history: HistorySpec;
  try {
    history = parseHistorySpec(v.history ?? DEFAULT_HISTORY, ips);
  } catch (e) {
    throw new UsageError(`--history: ${(e as Error).message}`);
  }
  const queue = choiceOption<QueuePolicy>("queue", v.queue, DEFAULT_PARAMS.queue, QUEUE_POLICIES);
  const layoutArg = choiceOption("layout", v.layout, single ? "virtual" : "all", [...LAYOUTS, "all"] as const);
  const layouts: LayoutName[] = layoutArg === "all" ? [...LAYOUTS] : [layoutArg];
  const bwRaw = v["bandwidth-gbps"] ?? "10";
  const bandwidths = bwRaw.split(",").map((x) => numberOption("bandwidth-gbps", x, 10, 1e-6, 1e6));
  if (single && bandwidths.length > 1) throw new UsageError("--bandwidth-gbps takes one value here");
  let names: string[];
  if (single) {
    if (v.strategies !== undefined) throw new UsageError(`--strategies is for \`compare\`; simulate runs one --strategy NAME, got --strategies ${JSON.stringify(v.strategies)}`);
    const s = v.strategy ?? "ppm"; // the product default, as compare lists it first
    if (!isStrategyName(s)) throw new UsageError(`--strategy must be one of ${STRATEGY_NAMES.join(", ")}, got ${JSON.stringify(s)}`);
    names = [s];
  } else {
    if (v.strategy !== undefined) throw new UsageError("--strategy is for `simulate`; use --strategies a,b here");
    names = v.strategies === undefined ? [...STRATEGY_NAMES] : v.strategies.split(",").map((x) => x.trim()).filter(Boolean);
    if (names.length === 0) throw new UsageError("--strategies is empty");
    for (const n of names) if (!isStrategyName(n)) throw new UsageError(`unknown strategy ${JSON.stringify(n)} in --strategies; known: ${STRATEGY_NAMES.join(", ")}`);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new UsageError(`--strategies names ${twice} twice, got ${JSON.stringify(v.strategies)}`);
  }
  if (v.svg !== undefined) await checkOutputDir(v.svg, "--svg");
  let trace: Trace;
  let source: string;
  if (v.workload !== undefined) {
    if (!isWorkloadName(v.workload)) throw new UsageError(`--workload must be one of ${WORKLOADS.join(", ")}, got ${JSON.stringify(v.workload)}`);
    if (v.limit !== undefined) throw new UsageError("--limit goes with a trace file, not --workload (its length is --accesses)");
    const accesses = intOption("accesses", v.accesses, 200_000, 100, 1e9);
    const pages = intOption("pages", v.pages, 4096, 16, 1 << 26);
    trace = synthesize(v.workload, { accesses, pages, seed });
    source = `workload ${v.workload}`;
  } else {
    if (v.accesses !== undefined || v.pages !== undefined) throw new UsageError("--accesses and --pages go with --workload");
    const path = v.trace ?? DEFAULT_TRACE;
    if (v.trace === undefined) await checkInputFile("the bundled trace", path, "give --trace FILE or --workload NAME");
    else await checkInputFile("--trace", path);
    const limit = v.limit === undefined ? undefined : intOption("limit", v.limit, 0, 1, 2 ** 40);
    trace = await readTraceFile(path, { limit });
    source = path;
  }
  checkAccesses(source, trace.length);
  if (needsWrites(history.kind) && !trace.writes) throw new UsageError(`--history ${formatHistorySpec(history)} needs a trace that records writes (the r/w kind column); ${source} does not`);
  checkSpan(source, maxPageOf(trace.pages), layouts, vmPages);
  if (vmPages !== undefined) checkFits(source, trace.pages, layouts, vmPages);
  return {
    trace, names, layouts, bandwidths, json: v.json ?? false, svg: v.svg, explicitStrategies: single || v.strategies !== undefined,
    run: { switchAt, latencyUs, linkQueueBytes, requestOverheadUs, depth, push, vmPages, seed, ips, pageSize, feedback, queue, history, adaptive: v.adaptive ?? false, rawBandwidth: v["raw-bandwidth"] ?? false },
  };
}

/** One line on what the strategies trained on. */
export function describeHistory(c: Comparison): string {
  const what = c.history.kind === "full" ? "every access before the switch-over, in order (no hypervisor records this)"
    : c.history.kind === "none" ? "nothing (online learning from the faults only)"
    : c.history.kind === "earlier" ? "the faults and feedback of an earlier simulated migration over the pre-switch-over part"
    : c.history.kind === "sets" ? `${c.historyPages} entries (page x interval): the pages touched in each interval before the switch-over, unordered (access-bit sampling)`
    : `${c.historyPages} pages derived from the pre-switch-over accesses`;
  const t = intervalMs(c.history, c.params.ips);
  const every = t === undefined ? "" : ` (every ${t} ms at ${c.params.ips} guest instructions/s)`;
  return `history: ${formatHistorySpec(c.history)}${every}: ${what}\n`;
}

function progressBar(): ((label: string, done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (label, done, total) => {
    const w = 30, f = Math.round((w * done) / Math.max(1, total));
    process.stderr.write(`\r[${"#".repeat(f)}${".".repeat(w - f)}] ${done}/${total} ${label}`.padEnd(100).slice(0, 100));
    if (done === total) process.stderr.write("\r" + " ".repeat(100) + "\r");
  };
}

export async function run(args: string[]): Promise<number> {
  const setup = await parseCompareArgs(args);
  if (!setup) { process.stdout.write(USAGE); return 0; }
  const { trace, layouts, bandwidths, run: opts } = setup;
  let names = setup.names;
  if (!setup.explicitStrategies) {
    // The default list skips a strategy whose module cannot be loaded (say so); a named one must load.
    const ok: string[] = [];
    for (const n of names) {
      try { await STRATEGIES[n].load(); ok.push(n); } catch (e) { process.stderr.write(`compare: skipping ${n}: ${(e as Error).message.split("\n")[0]}\n`); }
    }
    names = ok;
  }
  const bar = progressBar();
  const total = layouts.length * bandwidths.length * names.length;
  let done = 0;
  const comps: (Comparison & { bandwidthGbps: number })[] = [];
  for (const bw of bandwidths) {
    for (const layout of layouts) {
      const c = await compareStrategies(trace, names, { ...opts, layout, bandwidthGbps: bw }, (i, _n, name) => {
        if (i < names.length) bar?.(`${layout} ${bw} Gbit/s: ${name}`, done + i, total);
      });
      done += names.length;
      comps.push({ ...c, bandwidthGbps: bw });
    }
  }
  bar?.("", total, total);
  if (setup.json) {
    const j: ReturnType<typeof toJson> & { history?: string } = toJson(trace.name, comps);
    j.history = formatHistorySpec(opts.history ?? parseHistorySpec(DEFAULT_HISTORY, opts.ips)); // (parseCompareArgs always sets it)
    if (bandwidths.length > 1) {
      let k = 0;
      for (const c of comps) for (let i = 0; i < c.results.length; i++) (j.strategies[k++] as unknown as Record<string, unknown>).bandwidthGbps = c.bandwidthGbps;
    }
    process.stdout.write(JSON.stringify({ trace: j.trace, history: j.history, strategies: j.strategies }, null, 2) + "\n");
  } else {
    if (comps.length > 0) process.stdout.write(`\n${formatLegend(comps[0].params.push)}`);
    for (const c of comps) process.stdout.write(`\n${describeComparison(c, opts.rawBandwidth ?? false)}\n${describeHistory(c)}${formatTable(c)}`);
    if (comps.length > 1) process.stdout.write(`\nsummary (${trace.name}): network faults as % of demand paging, and total stall (requests, which add the waits on pages in flight, are in the tables above)\n${formatSummary(comps)}`);
    else process.stdout.write(formatVerdict(comps)); // one layout: no summary table, the verdict still
  }
  if (setup.svg) {
    const first = comps.filter((c) => c.bandwidthGbps === bandwidths[0]);
    const sub = `push ${opts.push}, depth ${opts.depth}, ${bandwidths[0]} Gbit/s nominal${opts.rawBandwidth ? "" : " (scaled)"}, latency ${opts.latencyUs} us`;
    await writeAtomic(setup.svg, await renderSvg(trace.name, first, sub));
    if (!setup.json) process.stdout.write(`\nwrote ${setup.svg}\n`);
  }
  return 0;
}
