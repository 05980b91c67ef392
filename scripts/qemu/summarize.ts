/**
 * `node --import tsx scripts/qemu/summarize.ts FILE.json...`: the markdown tables of RESULTS.md from
 * `npm run qemu-demo -- --json` outputs: per guest, regime and configuration, medians (min-max) of the
 * measured migration's destination requests, blocktime and injected pages, and the service times of
 * the destination's requests pooled over the runs (from each report's per-request timeline), split by
 * whether pages the proxy injected were still queued at the source when the request arrived; then each
 * configuration's paired ratios to QEMU alone with the 90% interval of their median and a sign test.
 */
import fs from "node:fs";
import { pairedVerdict, signTest } from "../../src/util/paired.js";

type Run = {
  guest?: string; regime: string; config: string; requests: number; blocktimeMs: number; injected: number; checksumOk: boolean;
  guestRunning: boolean; error?: string; phase?: string; strategy?: { gated?: number; origin?: string } | null;
  hops?: { config: string; requests: number; checksumOk: boolean; error?: string; faults?: number[] }[];
  service?: {
    dest: { median: number }; injected: { count: number; median: number }; destAlreadySent: number; timeline?: [number, number, number, number][];
    destQueueEmpty: { count: number; median: number }; destQueueBusy: { count: number; median: number };
  };
  timeline?: [number, number, number, number][];
};

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : NaN; };
const q = (xs: number[], f: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * f))] : NaN; };
const r1 = (x: number) => Math.round(x * 10) / 10;
const cell = (xs: number[]) => xs.length ? `${r1(median(xs))} (${r1(Math.min(...xs))}-${r1(Math.max(...xs))})` : "-";

const runs: Run[] = [];
for (const f of process.argv.slice(2)) runs.push(...(JSON.parse(fs.readFileSync(f, "utf8")).runs as Run[]));
const keys = [...new Set(runs.map((r) => `${r.guest ?? "md5"}|${r.regime}|${r.config}`))];
const out = [
  "| guest | regime | config | runs ok | requests | blocktime ms | injected pages | gated requests | service ms, all (median / p90, n) | queue empty of injected | injected queued ahead | injected pages' own |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
];
for (const k of keys) {
  const [guest, regime, config] = k.split("|");
  const rs = runs.filter((r) => `${r.guest ?? "md5"}|${r.regime}|${r.config}` === k);
  const ok = rs.filter((r) => !r.error && r.checksumOk && r.guestRunning);
  const all: number[] = [], empty: number[] = [], busy: number[] = [], inj: number[] = [];
  for (const r of rs) {
    for (const [, svc, queued] of r.service?.timeline ?? r.timeline ?? []) {
      if (svc < 0) continue;
      all.push(svc);
      (queued > 0 ? busy : empty).push(svc);
    }
    if (r.service?.injected.count) inj.push(r.service.injected.median);
  }
  // Without timelines (older --json), each run's medians stand in for its samples.
  const noTimeline = rs.every((r) => !r.service?.timeline && !r.timeline);
  if (noTimeline) {
    for (const r of rs) {
      if (!r.service) continue;
      if (r.service.destQueueEmpty.count) empty.push(...Array(r.service.destQueueEmpty.count).fill(r.service.destQueueEmpty.median));
      if (r.service.destQueueBusy.count) busy.push(...Array(r.service.destQueueBusy.count).fill(r.service.destQueueBusy.median));
    }
    all.push(...empty, ...busy);
  }
  const d = (xs: number[]) => xs.length ? `${r1(median(xs))} / ${r1(q(xs, 0.9))} (${xs.length})${noTimeline ? "*" : ""}` : "-";
  out.push(`| ${guest} | ${regime} | ${config} | ${ok.length}/${rs.length} | ${cell(rs.map((r) => r.requests))} | ${cell(rs.map((r) => r.blocktimeMs))} | ${cell(rs.map((r) => r.injected))} | ${cell(rs.map((r) => r.strategy?.gated ?? 0))} | ${d(all)} | ${d(empty)} | ${d(busy)} | ${inj.length ? `${r1(median(inj))} (run medians)` : "-"} |`);
}
process.stdout.write(out.join("\n") + "\n");

// Paired ratios: each configuration's i-th run against the i-th run of the baseline (`proxy`, the
// counter) of the same file, guest, regime and QEMU version (qemu-demo runs the configurations of run i
// one after the other), median over the pairs.
const pairs = new Map<string, { req: number[]; bt: number[] }>();
let fileNo = 0;
for (const f of process.argv.slice(2)) {
  fileNo++;
  const rs = JSON.parse(fs.readFileSync(f, "utf8")).runs as (Run & { qemuVersion?: string })[];
  const seen = new Map<string, number>();
  const base = new Map<string, Run[]>();
  for (const r of rs) {
    const g = `${r.qemuVersion ?? ""}|${r.guest ?? "md5"}|${r.regime}`;
    if (r.config === "proxy") (base.get(g) ?? base.set(g, []).get(g)!).push(r);
  }
  for (const r of rs) {
    const g = `${r.qemuVersion ?? ""}|${r.guest ?? "md5"}|${r.regime}`;
    const i = seen.get(`${g}|${r.config}`) ?? 0;
    seen.set(`${g}|${r.config}`, i + 1);
    const b = base.get(g)?.[i];
    if (r.config === "proxy" || !b || b.error || r.error || !b.requests || !b.blocktimeMs) continue;
    const k = `${r.qemuVersion ? `QEMU ${r.qemuVersion} ` : ""}${r.guest ?? "md5"} ${r.regime} ${r.config}`;
    const e = pairs.get(k) ?? pairs.set(k, { req: [], bt: [] }).get(k)!;
    e.req.push(r.requests / b.requests);
    e.bt.push(r.blocktimeMs / b.blocktimeMs);
  }
}
if (pairs.size) {
  const r2 = (x: number) => Math.round(x * 100) / 100;
  // Whether a difference is resolved: the median's distribution-free 90% interval and the sign test
  // (src/util/paired.ts); an interval that holds 1 is a difference these runs cannot tell from noise.
  const ci = (xs: number[]) => { const v = pairedVerdict(xs); return Number.isNaN(v.lo) ? "-" : `${r2(v.lo)}-${r2(v.hi)}`; };
  const sign = (xs: number[]) => { const t = signTest(xs); return `${t.below} / ${t.above}, p ${r2(t.p)}`; };
  const lines = [
    "| configuration against proxy (QEMU alone) | pairs | requests, paired ratio median (min-max) | 90% interval of that median | lower / higher, sign test | blocktime, paired ratio median (min-max) | 90% interval of that median | lower / higher, sign test |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const [k, e] of pairs) {
    lines.push(`| ${k} | ${e.req.length} | ${r2(median(e.req))} (${r2(Math.min(...e.req))}-${r2(Math.max(...e.req))}) | ${ci(e.req)} | ${sign(e.req)} | ${r2(median(e.bt))} (${r2(Math.min(...e.bt))}-${r2(Math.max(...e.bt))}) | ${ci(e.bt)} | ${sign(e.bt)} |`);
  }
  process.stdout.write("\n" + lines.join("\n") + "\n");
}
if (runs.some((r) => r.service && !r.service.timeline)) process.stdout.write("\n* from each run's median (runs recorded without the per-request timeline), weighted by its count\n");
const hopErr = runs.flatMap((r) => (r.hops ?? []).filter((h) => h.error || !h.checksumOk).map((h) => `${r.config}: ${h.config} ${h.error ?? "checksum"}`));
const hopsTotal = runs.reduce((s, r) => s + (r.hops?.length ?? 1), 0);
process.stdout.write(`\nmigrations in these runs: ${hopsTotal}; failed or checksum mismatch: ${hopErr.length}${hopErr.length ? ": " + hopErr.join("; ") : ""}\n`);
