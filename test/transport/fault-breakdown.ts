/**
 * Where one fault's stall goes on the loopback (investigation script, branch loop-investigation).
 *
 *   PPM_PROBE=/tmp/x/probe node --import tsx test/transport/fault-breakdown.ts [--strategies demand,ppm]
 *     [--push qemu] [--reps 3] [--trace traces/perl.txt.gz] [--delay-us 50] [--rate-gbps 1]
 *     [--push-window 32] [--link-queue 65536] [--serve-args "..."] [--json]
 *
 * Runs `serve` (a child process) and the destination (this process) as push-compare does (layout
 * virtual, the image = the footprint), both with the probe on (src/transport/probe.ts: events on the
 * host's monotonic clock, one file per process), then joins the events per fault and prints, per
 * strategy, median and p90 of each segment of a fault's life:
 *
 *   step      guest access found absent (stall starts) -> FAULT frame handed to the destination's link
 *   dLink     FAULT handed to the emulator -> written to the socket (50 us + serialization + poll lag)
 *   up        written to the destination's socket -> the source's onFault (kernel, source loop busy/CPU)
 *   service   onFault -> faulted page handed to the source's link
 *   sQueue    emulated serialization of the bytes already in the source's link queue ahead of it
 *   sLink     own serialization + delay (the emulator's promise: due - handed - sQueue)
 *   sLag      the emulator's poll lag (written to the socket - due)
 *   down      written to the source's socket -> the destination's data event that carried it
 *   parse     data event -> the page parsed (CRC + copy of the pages ahead in the same chunk)
 *   stall     the destination's stall (stall start -> page parsed)
 *   resume    page parsed -> the guest's next step (not in the stall figure)
 * and the bytes ahead of the faulted page: in the emulator's queue when handed over (not yet
 * serialized, and in all), in Node's socket buffer when written to the socket, and in the kernel
 * (source's stream offset of the page - bytes the destination had read when it was written).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runMigration, type MigrationResult } from "../../src/transport/destination.js";
import { readTrace } from "../../src/trace/read.js";
import { spawnServe } from "./helpers.js";
import { flushProbe } from "../../src/transport/probe.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const { values: v } = parseArgs({
  options: {
    strategies: { type: "string" }, push: { type: "string" }, reps: { type: "string" }, trace: { type: "string" },
    "delay-us": { type: "string" }, "rate-gbps": { type: "string" }, "push-window": { type: "string" }, "link-queue": { type: "string" },
    "serve-args": { type: "string" }, json: { type: "boolean" }, ips: { type: "string" },
  },
});
const PROBE_BASE = process.env.PPM_PROBE;
if (!PROBE_BASE) throw new Error("set PPM_PROBE=/some/dir/prefix");
const strategies = (v.strategies ?? "demand,ppm").split(",");
const push = v.push ?? "qemu";
const reps = Number(v.reps ?? 3);
const tracePath = v.trace ?? join(ROOT, "traces/perl.txt.gz");
const delayUs = Number(v["delay-us"] ?? 50);
const rateGbps = Number(v["rate-gbps"] ?? 1);
const ips = Number(v.ips ?? 1e9);
const link = { delayUs, rateGbps };
const trace = await readTrace(tracePath);
let span = 0;
for (let i = 0; i < trace.length; i++) if (trace.pages[i] >= span) span = trace.pages[i] + 1;
const dir = mkdtempSync(join(tmpdir(), "ppm-breakdown-"));
const imagePath = join(dir, "image.bin");
const extra = (v["serve-args"] ?? "").split(" ").filter(Boolean);

const results: { strategy: string; r: MigrationResult }[] = [];
let first = true;
process.stderr.write(`trace ${trace.name}; push ${push}; link ${delayUs} us / ${rateGbps} Gbit/s; window ${v["push-window"] ?? 32}; queue ${v["link-queue"] ?? 65536}; ${extra.join(" ")}; load ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
try {
  for (let i = 0; i < reps; i++) {
    for (const strategy of strategies) {
      const s = await spawnServe(["--image", imagePath, ...(first ? ["--generate", String(span * 4096)] : []), "--port", "0", "--strategy", strategy,
        "--push", push, "--history", tracePath, "--history-source", "full", "--layout", "virtual", "--switch-at", "0.3", "--depth", "8",
        "--push-window", v["push-window"] ?? "32", "--link-queue", v["link-queue"] ?? "65536", "--exit-after", "1", "--quiet",
        "--delay-us", String(delayUs), "--rate-gbps", String(rateGbps), ...extra]);
      first = false;
      const r = await runMigration({ port: s.port, trace, layout: "virtual", switchAt: 0.3, ips, link, timeoutMs: 300_000 });
      await s.done;
      if (!r.verified || r.duplicatePages !== 0) throw new Error("not verified");
      results.push({ strategy, r });
      process.stderr.write(`  ${strategy}: fault pages ${r.received.fault} (faults ${r.faults}, in-flight waits ${r.inflightWaits}) stall ${r.stallMs.toFixed(1)} ms migration ${r.migrationMs.toFixed(1)} ms completion ${r.completionMs.toFixed(1)} ms\n`);
    }
  }
} finally { rmSync(dir, { recursive: true, force: true }); }
flushProbe();

// ---- join the events
type Ev = Record<string, number | string> & { ev: string; pid: number };
const probeDir = PROBE_BASE.slice(0, PROBE_BASE.lastIndexOf("/"));
const prefix = PROBE_BASE.slice(PROBE_BASE.lastIndexOf("/") + 1);
const evs: Ev[] = [];
for (const f of readdirSync(probeDir)) {
  if (!f.startsWith(prefix + ".")) continue;
  for (const line of readFileSync(join(probeDir, f), "utf8").split("\n")) if (line) evs.push(JSON.parse(line) as Ev);
}
const bySid = new Map<string, string>(results.map(({ strategy, r }) => [r.sessionId, strategy]));
const key = (sid: unknown, page: unknown) => `${sid}:${page}`;
const idx = (ev: string) => { const m = new Map<string, Ev>(); for (const e of evs) if (e.ev === ev) m.set(key(e.sid, e.page), e); return m; };
const dFault = idx("d_fault"), dReq = idx("d_req"), sFault = idx("s_fault"), dArrive = idx("d_arrive"), dResume = idx("d_resume");
const deliver = new Map<string, Ev>();
for (const e of evs) if (e.ev === "deliver") { const [sid, what, page] = String(e.tag).split(":"); deliver.set(`${what}:${sid}:${page}`, e); }
const data = new Map<string, { t: number; end: number }[]>();
for (const e of evs) if (e.ev === "d_data") { const a = data.get(String(e.sid)) ?? []; a.push({ t: e.t as number, end: (e.cum as number) + (e.len as number) }); data.set(String(e.sid), a); }
// run-queue wait series per process (samples at its events): wait accumulated in [t1, t2] where t2 is a sample
const series = new Map<number, { t: number; w: number }[]>();
const addS = (pid: number, t: unknown, w: unknown) => { if (typeof t !== "number" || typeof w !== "number") return; const a = series.get(pid) ?? []; a.push({ t, w }); series.set(pid, a); };
for (const e of evs) {
  if (e.ev === "deliver") addS(e.pid, e.real, e.w);
  else if (e.ev === "s_fault") { addS(e.pid, e.read, e.wRead); addS(e.pid, e.written, e.w); }
  else if (e.ev.startsWith("d_") || e.ev === "s_data") addS(e.pid, e.t, e.w);
}
for (const a of series.values()) a.sort((x, y) => x.t - y.t);
const waitBefore = (pid: number, t: number) => { let w = NaN; for (const s of series.get(pid) ?? []) { if (s.t <= t) w = s.w; else break; } return w; };
const readBy = (sid: string, t: number) => { let b = 0; for (const d of data.get(sid) ?? []) { if (d.t <= t) b = d.end; else break; } return b; };

const SEGS = ["step", "dLink", "up", "service", "sQueue", "sLink", "sLag", "down", "parse", "stall", "resume"] as const;
const WAITS = ["wUp", "wSrv", "wSLag", "wDown", "wStallDest"] as const;
const BYTES = ["queueAheadB", "linkBacklogB", "nodeBufB", "kernelAheadB", "pagesBeforeInChunk", "unacked"] as const;
type Row = Record<(typeof SEGS)[number] | (typeof BYTES)[number] | (typeof WAITS)[number], number>;
const rows = new Map<string, Row[]>();
const inflight = new Map<string, number[]>();
for (const [k, f] of dFault) {
  const sid = String(f.sid);
  const strategy = bySid.get(sid);
  if (!strategy) continue;
  const a = dArrive.get(k);
  if (!a) continue;
  const sf = sFault.get(k);
  if (!sf) { const l = inflight.get(strategy) ?? []; l.push(((a.t as number) - (f.t as number)) / 1e3); inflight.set(strategy, l); continue; }
  const rq = dReq.get(k);
  const dr = deliver.get(`req:${sid}:${f.page}`);
  const dp = deliver.get(`page:${sid}:${f.page}`);
  const rs = dResume.get(k);
  if (!rq || !dp) continue;
  const n = (x: unknown) => x as number;
  const row: Row = {
    step: (n(rq.t) - n(f.t)) / 1e3,
    dLink: dr ? (n(dr.real) - n(rq.t)) / 1e3 : NaN,
    up: dr ? (n(sf.read) - n(dr.real)) / 1e3 : NaN,
    service: (n(sf.written) - n(sf.read)) / 1e3,
    sQueue: n(dp.aheadNs) / 1e3,
    sLink: (n(dp.due) - n(dp.at) - n(dp.aheadNs)) / 1e3,
    sLag: (n(dp.real) - n(dp.due)) / 1e3,
    down: (n(a.dataAt) - n(dp.real)) / 1e3,
    parse: (n(a.t) - n(a.dataAt)) / 1e3,
    stall: (n(a.t) - n(f.t)) / 1e3,
    resume: rs ? (n(rs.t) - n(a.t)) / 1e3 : NaN,
    queueAheadB: n(dp.aheadNs) * rateGbps / 8,
    linkBacklogB: n(dp.ahead),
    nodeBufB: n(dp.userBuf),
    kernelAheadB: n(dp.offset) - readBy(sid, n(dp.real)),
    pagesBeforeInChunk: n(a.pagesBefore) - 1,
    unacked: n(sf.unacked),
    // run-queue waits (us) of the process that should act in each segment (an upper bound: from its last sample before the segment)
    wUp: dr ? (n(sf.wRead) - waitBefore(sf.pid, n(dr.real))) / 1e3 : NaN,
    wSrv: (n(sf.w) - n(sf.wRead)) / 1e3,
    wSLag: (n(dp.w) - n(sf.w)) / 1e3,
    wDown: (n(a.w) - waitBefore(a.pid, n(dp.real))) / 1e3,
    wStallDest: (n(a.w) - n(f.w)) / 1e3,
  };
  const l = rows.get(strategy) ?? []; l.push(row); rows.set(strategy, l);
}
const q = (xs: number[], f: number) => { const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(f * s.length))] : NaN; };
const ends = evs.filter((e) => e.ev === "d_end" && bySid.has(String(e.sid)));
const tick = evs.filter((e) => e.ev === "ticker");
const out: Record<string, unknown> = {};
for (const strategy of strategies) {
  const rs = rows.get(strategy) ?? [];
  const med: Record<string, number> = {}, p90: Record<string, number> = {};
  const mean: Record<string, number> = {};
  for (const s of [...SEGS, ...WAITS, ...BYTES]) {
    med[s] = q(rs.map((r) => r[s]), 0.5); p90[s] = q(rs.map((r) => r[s]), 0.9);
    const ok = rs.map((r) => r[s]).filter((x) => !Number.isNaN(x)); mean[s] = ok.reduce((a, b) => a + b, 0) / Math.max(1, ok.length);
  }
  const mine = results.filter((x) => x.strategy === strategy);
  const de = ends.filter((e) => bySid.get(String(e.sid)) === strategy);
  out[strategy] = {
    mean, rows: rs, faults: rs.length, inflightWaits: (inflight.get(strategy) ?? []).length, inflightMedUs: q(inflight.get(strategy) ?? [], 0.5), med, p90,
    stallMs: mine.map((x) => +x.r.stallMs.toFixed(1)), migrationMs: mine.map((x) => +x.r.migrationMs.toFixed(1)),
    faultPages: mine.map((x) => x.r.received.fault),
    destRunqueueWaitMs: de.map((e) => +(((e.waitNs as number) / 1e6).toFixed(1))), destRunMs: de.map((e) => +(((e.runNs as number) / 1e6).toFixed(1))),
    destWallMs: de.map((e) => +((((e.lastPage as number) > (e.replayEnd as number) ? (e.lastPage as number) : (e.replayEnd as number)) - (e.t0 as number)) / 1e6).toFixed(1)),
  };
}
const sStarts = evs.filter((e) => e.ev === "s_start"), sEnds = evs.filter((e) => e.ev === "s_end");
const srcSched = sEnds.map((e) => { const s = sStarts.find((x) => x.sid === e.sid); return s ? { strategy: bySid.get(String(e.sid)), waitMs: +(((e.waitNs as number) - (s.waitNs as number)) / 1e6).toFixed(1), runMs: +(((e.runNs as number) - (s.runNs as number)) / 1e6).toFixed(1), wallMs: +(((e.t as number) - (s.t as number)) / 1e6).toFixed(1) } : null; });
out.sourceSched = srcSched;
out.tickers = tick.map((e) => ({ pid: e.pid, polls: e.polls, pollMs: +((e.pollNs as number) / 1e6).toFixed(1), timers: e.timers }));
process.stderr.write(`load at the end ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
if (v.json) process.stdout.write(JSON.stringify(out) + "\n");
else {
  const cols = [...SEGS, ...WAITS, ...BYTES];
  const lines = [`| segment | ${strategies.map((s) => `${s} median / p90 / mean`).join(" | ")} |`, `|---|${strategies.map(() => "---:").join("|")}|`];
  for (const c of cols) {
    lines.push(`| ${c} | ${strategies.map((st) => { const o = out[st] as { med: Record<string, number>; p90: Record<string, number>; mean: Record<string, number> }; return `${o.med[c].toFixed(0)} / ${o.p90[c].toFixed(0)} / ${o.mean[c].toFixed(0)}`; }).join(" | ")} |`);
  }
  process.stdout.write(lines.join("\n") + "\n(us, or bytes / pages; over the faults that wrote their page)\n");
  for (const strategy of strategies) { const o = { ...(out[strategy] as Record<string, unknown>) }; delete o.med; delete o.p90; delete o.mean; delete o.rows; process.stdout.write(`${strategy}: ${JSON.stringify(o)}\n`); }
  if (process.env.BREAKDOWN_ROWS) writeFileSync(process.env.BREAKDOWN_ROWS, JSON.stringify(out));
  process.stdout.write(`source sched: ${JSON.stringify(out.sourceSched)}\ntickers: ${JSON.stringify(out.tickers)}\n`);
}
