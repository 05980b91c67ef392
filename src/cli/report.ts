/**
 * Reports for `compare` and `simulate`: the text table, the JSON record, and an SVG chart drawn with
 * vega-lite (faults as % of demand paging and total stall per strategy, grouped by layout, plus each
 * strategy's stall distribution as p50-p90-p99-max on a log axis). The SVG is written atomically.
 */
import { writeFile, rename, unlink } from "node:fs/promises";
import type { Comparison } from "../sim/run.js";
import type { SimResult } from "../sim/metrics.js";
import { formatHistorySpec, intervalMs } from "../history/sources.js";
import { nameFile } from "./errors.js";
import { atomicTarget, trackTempFile, tempPathFor } from "../util/temp-files.js";

const ms = (s: number) => s * 1e3;

export interface JsonStrategy {
  name: string;
  layout: string;
  faults: number;
  /** Requests for pages already on the link (the vCPU waits on them; a real source counts them). */
  inflightFaults: number;
  /** faults + inflightFaults: the destination's page requests, what the verdict compares. */
  requests: number;
  stallMs: number;
  completionMs: number;
  migrationMs: number;
  pagesSent: number;
  accuracy: number | null;
  coverage: number;
}

/**
 * A result's times in milliseconds, rounded as compare's record has them: `simulate --json` prints
 * them beside the result's own keys in seconds (stallS, completionS, baselineS, migrationS).
 */
export function msTwins(r: SimResult): { stallMs: number; completionMs: number; baselineMs: number; migrationMs: number } {
  return { stallMs: round(ms(r.stallS), 3), completionMs: round(ms(r.completionS), 3), baselineMs: round(ms(r.baselineS), 3), migrationMs: round(ms(r.migrationS), 3) };
}

export function toJson(traceName: string, comps: Comparison[]): { trace: string; strategies: JsonStrategy[] } {
  const strategies: JsonStrategy[] = [];
  for (const c of comps) {
    for (const r of c.results) {
      const t = msTwins(r);
      strategies.push({
        name: r.strategy,
        layout: c.layout,
        faults: r.faults,
        inflightFaults: r.inflightFaults,
        requests: r.faults + r.inflightFaults,
        stallMs: t.stallMs,
        completionMs: t.completionMs,
        migrationMs: t.migrationMs,
        pagesSent: r.faultPathPages,
        accuracy: r.accuracy === null ? null : round(r.accuracy, 4),
        coverage: round(r.coverage, 4),
      });
    }
  }
  return { trace: traceName, strategies };
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

function fmtBits(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  if (bps >= 1e5) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${Number((bps / 1e3).toPrecision(3))} kbit/s`; // (a tiny --ips or bandwidth: "0.0 Mbit/s" said nothing)
}

export function describeComparison(c: Comparison, raw: boolean): string {
  return (
    `${c.trace}, layout ${c.layout}: footprint ${c.footprintPages} pages, demand faults ${c.demandFaults}, ` +
    `run without migration ${ms(c.baselineS).toFixed(1)} ms; link ${fmtBits(c.link.bitsPerSecond)}` +
    (raw ? "" : ` (${c.nominalGbps} Gbit/s nominal, scaled to the footprint)`) +
    `, latency ${(c.link.latencyS * 1e6).toFixed(0)} us; push ${c.params.push}, depth ${c.params.depth}, ` +
    `switch-over at ${c.params.switchAt}, feedback ${c.params.feedback ? "on" : "off"}`
  );
}

/** One table, strategies as rows. */
export function formatTable(c: Comparison): string {
  const head = ["strategy", "faults", "% demand", "in-flight", "requests", "stall ms", "p99 us", "completion ms", "slowdown", "migration ms", "fault-path pages", "accuracy", "coverage"];
  const rows = c.results.map((r) => [
    r.strategy,
    String(r.faults),
    pct(r.faults / Math.max(1, r.demandFaults)),
    String(r.inflightFaults),
    String(r.faults + r.inflightFaults),
    ms(r.stallS).toFixed(2),
    (r.stall.p99 * 1e6).toFixed(0),
    ms(r.completionS).toFixed(2),
    r.baselineS > 0 ? `+${pct(r.completionS / r.baselineS - 1)}` : "-",
    ms(r.migrationS).toFixed(2),
    String(r.faultPathPages),
    r.accuracy === null ? "-" : pct(r.accuracy),
    pct(r.coverage),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n") + "\n";
}

/**
 * What the table's columns and rows are, printed once above the first table: a first-time reader
 * meets "in-flight", "requests" and rows that read the future before any text explains them.
 */
export function formatLegend(push: string): string {
  const lines = [
    "columns: faults = network faults (a round trip that sends the page); in-flight = waits on a page already on",
    "  the wire; requests = both (what the destination sends: the verdict's measure); stall ms = the vCPUs' total wait",
  ];
  if (push === "none") {
    lines.push("rows: no background push, but qemu and hines are push orders and run theirs (QEMU's scanner, Hines' bubbling);",
      "  oracle* rows read the future (bounds: the true next pages per fault, not a perfect order)");
  } else {
    lines.push(
      `rows: readahead, leap and the other fault-path strategies run the push named (${push}); qemu and hines are push`,
      "  orders alone (QEMU's scanner, Hines' bubbling); ppm, history-push and oracle-push order their own push;",
      "  oracle* rows read the future (bounds of one lever each: the true next pages per fault can stall more than a",
      "  better push order)",
    );
  }
  return lines.join("\n") + "\n";
}

/** A stall in ms for the summary and the verdict: three significant digits (one decimal from 10 ms on), so sub-ms stalls keep their differences. */
export function stallMs(seconds: number): string {
  const x = ms(seconds);
  return x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}

/**
 * All runs at a glance: strategies as rows, one column pair per (layout, bandwidth): faults as % of
 * demand paging and total stall in ms.
 */
export function formatSummary(comps: (Comparison & { bandwidthGbps?: number })[]): string {
  const names = [...new Set(comps.flatMap((c) => c.results.map((r) => r.strategy)))];
  const multiBw = new Set(comps.map((c) => c.bandwidthGbps)).size > 1;
  const head = ["strategy", ...comps.flatMap((c) => { const tag = multiBw ? `${c.layout}@${c.bandwidthGbps}` : c.layout; return [`${tag} faults`, `${tag} stall ms`]; })];
  const rows = names.map((n) => [n, ...comps.flatMap((c) => {
    const r = c.results.find((x) => x.strategy === n);
    return r ? [pct(r.faults / Math.max(1, r.demandFaults)), stallMs(r.stallS)] : ["-", "-"];
  })]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n") + "\n" + formatVerdict(comps);
}

/** The anchors `ppm` is judged against: without a push, the best predictors; with one, the spatial methods. */
export function anchorsFor(push: string): string[] {
  return push === "none" ? ["readahead", "leap", "next8", "markov1"] : ["qemu", "hines", "leap", "readahead"];
}

/**
 * One line per layout: `ppm` against the best anchor of that run, in requests and in stall (each
 * measure's own best, which may be two different anchors). Requests are what a destination sends and
 * QEMU counts: network faults plus waits on pages already in flight (the vCPU blocks on those too,
 * for less); the network faults (full round trips) follow in parentheses. Empty when ppm or every
 * anchor is missing.
 */
export function formatVerdict(comps: (Comparison & { bandwidthGbps?: number })[]): string {
  const lines: string[] = [];
  // A bandwidth sweep runs each layout several times: tag the lines as the summary's columns are.
  const multiBw = new Set(comps.map((c) => c.bandwidthGbps)).size > 1;
  const requests = (r: { faults: number; inflightFaults?: number }) => r.faults + (r.inflightFaults ?? 0);
  let ownPush = false;
  for (const c of comps) {
    const ppm = c.results.find((r) => r.strategy === "ppm");
    const rs = c.results.filter((r) => anchorsFor(c.params.push).includes(r.strategy));
    if (!ppm || rs.length === 0) continue;
    if (c.params.push !== "none") ownPush = true;
    const bestR = rs.reduce((a, r) => (requests(r) < requests(a) ? r : a));
    const bestS = rs.reduce((a, r) => (r.stallS < a.stallS ? r : a));
    // the sign from the comparison itself (never "-0.0%"), and a second decimal for differences under 0.1%
    const rel = (x: number, y: number) => {
      if (!(y > 0)) return "-";
      const v = Math.abs((100 * (x - y)) / y);
      return `${x > y ? "+" : x < y ? "-" : ""}${v.toFixed(v < 0.1 ? 2 : 1)}%`;
    };
    const behind = requests(ppm) > requests(bestR) || ppm.stallS > bestS.stallS;
    lines.push(`  ${multiBw ? `${c.layout}@${c.bandwidthGbps}` : c.layout}: requests ${requests(ppm)} vs ${requests(bestR)} (${bestR.strategy}) ${rel(requests(ppm), requests(bestR))} ` +
      `(network faults ${ppm.faults} vs ${bestR.faults}); ` +
      `stall ${stallMs(ppm.stallS)} vs ${stallMs(bestS.stallS)} ms (${bestS.strategy}) ${rel(ppm.stallS, bestS.stallS)}` +
      (behind ? "  <- ppm behind" : ""));
  }
  if (lines.length === 0) return "";
  const ran = new Set(comps.flatMap((c) => c.results.map((r) => r.strategy)));
  const named = anchorsFor(comps[0].params.push).filter((a) => ran.has(a)); // only the anchors this run has
  // With a push the anchors run the one given; ppm, as a source that owns its push would, orders its own.
  const how = ownPush ? `, theirs; ppm orders its own: Hines' bubbling with the history's replay. ppm-given-push is ppm on theirs, history-push that order alone` : "";
  // What the strategies trained on: the figures are only as real as the history a hypervisor has.
  const h = comps[0].history, ips = comps[0].params.ips;
  const t = h === undefined ? undefined : intervalMs(h, ips);
  const every = t === undefined ? "each interval" : `each ${t} ms`;
  const trained = h === undefined ? ""
    : h.kind === "full" ? "; trained on every access before the switch-over, in order (no hypervisor records that)"
    : h.kind === "sets" ? `; trained on the pages touched in ${every} before the switch-over, unordered, as access-bit sampling records (${formatHistorySpec(h)})`
    : `; trained on ${formatHistorySpec(h)}`;
  return `\nppm against the best of ${named.join(", ")} (push ${comps[0].params.push}${how}${trained}):\n${lines.join("\n")}\n`;
}

/** The detail view of one run (`simulate`). */
export function formatDetail(r: SimResult): string {
  const lines = [
    `strategy ${r.strategy} on ${r.trace}: ${r.accesses} accesses after switch-over`,
    `  network faults        ${r.faults} (${pct(r.faults / Math.max(1, r.demandFaults))} of demand paging's ${r.demandFaults}), ${r.inflightFaults} on pages already in flight`,
    `  stall (blocktime)     ${ms(r.stallS).toFixed(3)} ms over ${r.stall.count} stalls; p50 ${us(r.stall.p50)}, p90 ${us(r.stall.p90)}, p99 ${us(r.stall.p99)}, max ${us(r.stall.max)}`,
    `  completion            ${ms(r.completionS).toFixed(3)} ms (without migration ${ms(r.baselineS).toFixed(3)} ms)`,
    `  migration             ${ms(r.migrationS).toFixed(3)} ms until all ${r.footprintPages} footprint pages are present`,
    `  pages sent            ${r.demandPages} faulted + ${r.predictedPages} predicted (${r.zeroPages} of them zero pages) + ${r.pushedPages} pushed; ${r.footprintPagesSent} footprint pages, ${r.bytesOnWire} bytes`,
    `  prefetch accuracy     ${r.accuracy === null ? "-" : pct(r.accuracy)} (${r.prefetchedTouched} of ${r.predictedPages} predicted pages touched)`,
    `  coverage              ${pct(r.coverage)}`,
    `  link                  ${fmtBits(r.bitsPerSecond)}`,
    `  stall distribution`,
  ];
  const maxC = Math.max(1, ...r.stall.histogram.map((b) => b.count));
  for (const b of r.stall.histogram) {
    if (b.count === 0) continue;
    lines.push(`    <= ${us(b.le).padStart(10)}  ${String(b.count).padStart(8)}  ${"#".repeat(Math.ceil((40 * b.count) / maxC))}`);
  }
  return lines.join("\n") + "\n";
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

function us(s: number): string {
  return s >= 1e-3 ? `${(s * 1e3).toFixed(2)} ms` : `${(s * 1e6).toFixed(1)} us`;
}

// ---------------------------------------------------------------------------------------------- SVG

/**
 * The chart, drawn by vega-lite (compiled to a vega spec and rendered to SVG headless, in pure JS):
 * network faults as % of demand paging and total stall per strategy, bars grouped by layout, and each
 * strategy's stall distribution (p50-p99 bar, p90 tick, max point) on a log axis.
 */
export async function renderSvg(traceName: string, comps: Comparison[], subtitle: string): Promise<string> {
  const names = [...new Set(comps.flatMap((c) => c.results.map((r) => r.strategy)))];
  const rows = comps.flatMap((c) =>
    c.results.map((r) => ({
      strategy: r.strategy,
      layout: c.layout,
      faultsPct: (100 * r.faults) / Math.max(1, r.demandFaults),
      stallMs: ms(r.stallS),
      p50: r.stall.count ? ms(r.stall.p50) : null,
      p90: r.stall.count ? ms(r.stall.p90) : null,
      p99: r.stall.count ? ms(r.stall.p99) : null,
      max: r.stall.count ? ms(r.stall.max) : null,
    })));
  const strategyX = { field: "strategy", type: "nominal", sort: names, title: null, axis: { labelAngle: -40 } };
  const layoutColor = { field: "layout", type: "nominal", title: "layout" };
  const bars = (field: string, title: string) => ({
    width: Math.max(480, names.length * 48),
    height: 220,
    title,
    mark: { type: "bar", tooltip: true },
    encoding: {
      x: strategyX,
      xOffset: { field: "layout", type: "nominal" },
      y: { field, type: "quantitative", title },
      color: layoutColor,
    },
  });
  const stallRows = rows.filter((r) => r.p50 !== null && r.p50 > 0);
  const y = { field: "strategy", type: "nominal", sort: names, title: null };
  const yOffset = { field: "layout", type: "nominal" };
  const logX = (field: string) => ({ field, type: "quantitative", scale: { type: "log" }, title: "stall per fault (ms, log scale)" });
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: { text: `Post-copy prefetching on ${traceName}`, subtitle },
    data: { values: rows },
    config: { font: "Helvetica, Arial, sans-serif", background: "white" },
    vconcat: [
      bars("faultsPct", "Network faults (% of demand paging)"),
      bars("stallMs", "Total vCPU stall (blocktime, ms)"),
      {
        width: Math.max(480, names.length * 48),
        title: "Stall per fault: p50-p99 bar, p90 tick, max point",
        data: { values: stallRows },
        layer: [
          { mark: { type: "bar", height: 6, tooltip: true }, encoding: { y, yOffset, x: logX("p50"), x2: { field: "p99" }, color: layoutColor } },
          { mark: { type: "tick", color: "black", thickness: 1 }, encoding: { y, yOffset, x: logX("p90") } },
          { mark: { type: "point", filled: true }, encoding: { y, yOffset, x: logX("max"), color: layoutColor } },
        ],
      },
    ],
  };
  const [vega, vegaLite] = await Promise.all([import("vega"), import("vega-lite")]);
  const view = new vega.View(vega.parse(vegaLite.compile(spec as never).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return `<?xml version="1.0" encoding="UTF-8"?>\n${svg}${svg.endsWith("\n") ? "" : "\n"}`;
}

/** Write PATH.tmp-PID, then rename it to PATH (a device or FIFO: written in place); on an error or an interruption the temp file is removed. */
export async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const target = atomicTarget(path); // a device or FIFO is written in place, never replaced
  if (target.direct) {
    try { await writeFile(target.path, data); } catch (e) { throw nameFile(e, path, true); }
    return;
  }
  const tmp = tempPathFor(target.path);
  const untrack = trackTempFile(tmp);
  try {
    await writeFile(tmp, data);
    await rename(tmp, target.path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw nameFile(e, path, true);
  } finally {
    untrack();
  }
}
