/**
 * Reports for `compare` and `simulate`: the text table, the JSON record, and a hand-made SVG chart
 * (faults as % of demand paging and total stall per strategy, grouped by layout, plus each strategy's
 * stall distribution as p50-p90-p99-max on a log axis). The SVG is written atomically (tmp + rename).
 */
import { writeFile, rename, unlink } from "node:fs/promises";
import type { Comparison } from "../sim/run.js";
import type { SimResult } from "../sim/metrics.js";

const ms = (s: number) => s * 1e3;

export interface JsonStrategy {
  name: string;
  layout: string;
  faults: number;
  stallMs: number;
  completionMs: number;
  migrationMs: number;
  pagesSent: number;
  accuracy: number | null;
  coverage: number;
}

export function toJson(traceName: string, comps: Comparison[]): { trace: string; strategies: JsonStrategy[] } {
  const strategies: JsonStrategy[] = [];
  for (const c of comps) {
    for (const r of c.results) {
      strategies.push({
        name: r.strategy,
        layout: c.layout,
        faults: r.faults,
        stallMs: round(ms(r.stallS), 3),
        completionMs: round(ms(r.completionS), 3),
        migrationMs: round(ms(r.migrationS), 3),
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
  return bps >= 1e9 ? `${(bps / 1e9).toFixed(2)} Gbit/s` : `${(bps / 1e6).toFixed(1)} Mbit/s`;
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
  const head = ["strategy", "faults", "% demand", "in-flight", "stall ms", "p99 us", "completion ms", "slowdown", "migration ms", "fault-path pages", "accuracy", "coverage"];
  const rows = c.results.map((r) => [
    r.strategy,
    String(r.faults),
    pct(r.faults / Math.max(1, r.demandFaults)),
    String(r.inflightFaults),
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
 * All runs at a glance: strategies as rows, one column pair per (layout, bandwidth): faults as % of
 * demand paging and total stall in ms.
 */
export function formatSummary(comps: (Comparison & { bandwidthGbps?: number })[]): string {
  const names = [...new Set(comps.flatMap((c) => c.results.map((r) => r.strategy)))];
  const multiBw = new Set(comps.map((c) => c.bandwidthGbps)).size > 1;
  const head = ["strategy", ...comps.flatMap((c) => { const tag = multiBw ? `${c.layout}@${c.bandwidthGbps}` : c.layout; return [`${tag} faults`, `${tag} stall ms`]; })];
  const rows = names.map((n) => [n, ...comps.flatMap((c) => {
    const r = c.results.find((x) => x.strategy === n);
    return r ? [pct(r.faults / Math.max(1, r.demandFaults)), ms(r.stallS).toFixed(1)] : ["-", "-"];
  })]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n") + "\n";
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

const PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8, 10]) if (m * e >= x) return m * e; // four even gridline steps
  return 10 * e;
}

/** Grouped bar chart: one group per strategy, one bar per layout. */
function barPanel(title: string, unit: string, names: string[], layouts: string[], value: (name: string, layout: string) => number | undefined, x0: number, y0: number, width: number, height: number): string {
  const vals: number[] = [];
  for (const n of names) for (const l of layouts) { const v = value(n, l); if (v !== undefined) vals.push(v); }
  const top = niceMax(Math.max(0, ...vals));
  const left = 56, bottom = 70, plotW = width - left - 10, plotH = height - bottom - 28;
  const px = x0 + left, py = y0 + 28;
  let s = `<text x="${x0 + width / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">${esc(title)}</text>\n`;
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    const y = py + plotH - (plotH * k) / 4;
    s += `<line x1="${px}" y1="${y}" x2="${px + plotW}" y2="${y}" stroke="#ddd"/>`;
    s += `<text x="${px - 4}" y="${y + 4}" text-anchor="end" font-size="10">${+v.toPrecision(3)}</text>\n`;
  }
  s += `<text transform="translate(${x0 + 12},${py + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(unit)}</text>\n`;
  const gw = plotW / Math.max(1, names.length);
  const bw = Math.min(24, (gw * 0.8) / Math.max(1, layouts.length));
  names.forEach((n, i) => {
    const gx = px + i * gw + (gw - bw * layouts.length) / 2;
    layouts.forEach((l, j) => {
      const v = value(n, l);
      if (v === undefined) return;
      const h = (plotH * v) / top;
      s += `<rect x="${(gx + j * bw).toFixed(1)}" y="${(py + plotH - h).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${h.toFixed(1)}" fill="${PALETTE[j % PALETTE.length]}"><title>${esc(`${n} (${l}): ${+v.toPrecision(4)} ${unit}`)}</title></rect>`;
    });
    const cx = px + i * gw + gw / 2;
    s += `<text transform="translate(${cx.toFixed(1)},${py + plotH + 10}) rotate(40)" font-size="11">${esc(n)}</text>\n`;
  });
  s += `<line x1="${px}" y1="${py + plotH}" x2="${px + plotW}" y2="${py + plotH}" stroke="#333"/>\n`;
  return s;
}

/** Stall distribution: per strategy and layout, a p50-p99 bar with ticks at p90 and max, on a log axis. */
function stallPanel(names: string[], layouts: string[], get: (name: string, layout: string) => SimResult | undefined, x0: number, y0: number, width: number): { svg: string; height: number } {
  const rowH = 10, left = 110, right = 20;
  const rows: { label: string; r: SimResult; j: number }[] = [];
  for (const n of names) layouts.forEach((l, j) => { const r = get(n, l); if (r && r.stall.count > 0) rows.push({ label: n, r, j }); });
  const all = rows.flatMap((x) => [x.r.stall.p50, x.r.stall.max]).filter((v) => v > 0);
  const lo = Math.max(1e-6, Math.min(...all, 1e-4)), hi = Math.max(...all, 1e-3);
  const l0 = Math.floor(Math.log10(lo)), l1 = Math.ceil(Math.log10(hi));
  const plotW = width - left - right;
  const X = (v: number) => x0 + left + (plotW * (Math.log10(Math.max(v, 10 ** l0)) - l0)) / (l1 - l0);
  const py = y0 + 28;
  const height = 28 + rows.length * rowH + names.length * 4 + 30;
  let s = `<text x="${x0 + width / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">Stall per fault: p50-p99 bar, p90 and max ticks (log scale)</text>\n`;
  const steps = l1 - l0 <= 3 ? [1, 2, 5] : [1];
  for (let e = l0; e <= l1; e++) {
    for (const m of steps) {
      const v = m * 10 ** e;
      if (v > 10 ** l1 * 1.0001) break;
      const x = X(v);
      s += `<line x1="${x.toFixed(1)}" y1="${py}" x2="${x.toFixed(1)}" y2="${y0 + height - 24}" stroke="${m === 1 ? "#ccc" : "#eee"}"/>`;
      s += `<text x="${x.toFixed(1)}" y="${y0 + height - 10}" text-anchor="middle" font-size="10">${esc(us(v))}</text>\n`;
    }
  }
  let y = py, prev = "";
  for (const row of rows) {
    if (row.label !== prev) { if (prev) y += 4; s += `<text x="${x0 + left - 6}" y="${y + rowH - 1}" text-anchor="end" font-size="11">${esc(row.label)}</text>`; prev = row.label; }
    const st = row.r.stall, c = PALETTE[row.j % PALETTE.length];
    s += `<rect x="${X(st.p50).toFixed(1)}" y="${y + 1}" width="${Math.max(1, X(st.p99) - X(st.p50)).toFixed(1)}" height="${rowH - 2}" fill="${c}" opacity="0.8"><title>${esc(`${row.label} (${layouts[row.j]}): p50 ${us(st.p50)}, p90 ${us(st.p90)}, p99 ${us(st.p99)}, max ${us(st.max)}, ${st.count} stalls`)}</title></rect>`;
    s += `<line x1="${X(st.p90).toFixed(1)}" y1="${y}" x2="${X(st.p90).toFixed(1)}" y2="${y + rowH}" stroke="#000"/>`;
    s += `<line x1="${X(st.max).toFixed(1)}" y1="${y + 2}" x2="${X(st.max).toFixed(1)}" y2="${y + rowH - 2}" stroke="${c}" stroke-width="2"/>\n`;
    y += rowH;
  }
  return { svg: s, height };
}

export function renderSvg(traceName: string, comps: Comparison[], subtitle: string): string {
  const layouts = comps.map((c) => c.layout);
  const names = [...new Set(comps.flatMap((c) => c.results.map((r) => r.strategy)))];
  const get = (n: string, l: string) => comps.find((c) => c.layout === l)?.results.find((r) => r.strategy === n);
  const width = Math.max(720, 120 + names.length * 60);
  const panelH = 300;
  let body = "";
  body += barPanel("Network faults (% of demand paging)", "% of demand faults", names, layouts, (n, l) => { const r = get(n, l); return r ? (100 * r.faults) / Math.max(1, r.demandFaults) : undefined; }, 0, 50, width, panelH);
  body += barPanel("Total vCPU stall (blocktime)", "ms", names, layouts, (n, l) => { const r = get(n, l); return r ? r.stallS * 1e3 : undefined; }, 0, 50 + panelH, width, panelH);
  const sp = stallPanel(names, layouts, get, 0, 50 + 2 * panelH, width);
  body += sp.svg;
  let legend = "";
  layouts.forEach((l, j) => {
    const x = 20 + j * 110;
    legend += `<rect x="${x}" y="34" width="12" height="12" fill="${PALETTE[j % PALETTE.length]}"/><text x="${x + 16}" y="44" font-size="12">layout ${esc(l)}</text>`;
  });
  const height = 50 + 2 * panelH + sp.height + 10;
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n` +
    `<text x="20" y="20" font-size="15" font-weight="bold">${esc(`Post-copy prefetching on ${traceName}`)}</text>\n` +
    `<text x="${width - 10}" y="20" text-anchor="end" font-size="10" fill="#555">${esc(subtitle)}</text>\n` +
    legend + "\n" + body + `</svg>\n`
  );
}

/** Write a file atomically: a temporary sibling, then rename over the target. */
export async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
