/**
 * Concurrent migrations on one page server: the stall of each of N simultaneous migrations against
 * the stall of one alone. The source is a separate `ppm-prefetch serve` process (each migration's
 * strategy built and trained in its own worker thread); each destination is a `migrate --json` process.
 *
 *   node --import tsx test/transport/concurrency.ts [--n 8] [--reps 3] [--alone-reps 2*reps]
 *     [--strategy ppm] [--trace test/fixtures/sqlite-300k.txt.gz] [--layout 4k] [--image-size 64M]
 *     [--ips 1e9] [--push linear] [--main src/cli/main.ts] [--serve-args=--serve-while-training]
 *     [--no-timeline] [--json]
 *
 * Alone and together runs are interleaved (each rep: alone-reps/reps alone runs, then one together).
 * With the timeline (default; `--main` must then accept `serve --json --timeline` and `migrate
 * --timeline`) every fault request is split, on the host's monotonic clock shared by the processes:
 *   up       destination wrote the FAULT -> the source read it (kernel, and the source's event loop
 *            busy with other work or its process waiting for a CPU: its queueing)
 *   service  the source read the FAULT -> wrote the faulted page to the socket
 *   down     the source wrote the page -> the destination's replay saw it (kernel, and the destination
 *            busy or waiting for a CPU: its own contention)
 *   inflight requests whose page the source had already sent (pushed or predicted): sent -> arrived
 * summed per migration, with the source's HELLO -> WELCOME (waiting for its strategy's training), its
 * event loop (delay p99, utilization) and CPU time, and the destinations' CPU time.
 *
 * `--main` runs another checkout's CLI (for before/after figures); it must accept the same flags.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { MigrationResult } from "../../src/transport/destination.js";
import { readTrace } from "../../src/trace/read.js";
import type { LayoutName } from "../../src/trace/layout.js";
import { LISTENING } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const { values: v } = parseArgs({
  options: {
    n: { type: "string" }, reps: { type: "string" }, strategy: { type: "string" }, trace: { type: "string" }, layout: { type: "string" },
    "image-size": { type: "string" }, ips: { type: "string" }, main: { type: "string" }, json: { type: "boolean" }, push: { type: "string" },
    "alone-reps": { type: "string" }, "no-timeline": { type: "boolean" }, "serve-args": { type: "string" },
  },
});
const n = Number(v.n ?? 8);
const reps = Number(v.reps ?? 3);
const aloneReps = Number(v["alone-reps"] ?? 2 * reps);
const timeline = !v["no-timeline"];
const strategy = v.strategy ?? "ppm";
const tracePath = v.trace ?? join(ROOT, "test/fixtures/sqlite-300k.txt.gz");
const layout = (v.layout ?? "4k") as LayoutName;
const size = v["image-size"] ?? "64M";
const ips = Number(v.ips ?? 1e9);
const push = v.push ?? "linear";
const MAIN = v.main ? resolve(v.main) : join(ROOT, "src/cli/main.ts");
const dir = mkdtempSync(join(tmpdir(), "ppm-concurrency-"));
const imagePath = join(dir, "image.bin");

interface ServeReport {
  loop: { delayMs: { p50: number; p99: number; max: number }; utilization: number; cpuMs: { user: number; system: number }; wallMs: number };
  sessions: { id: string; helloToWelcomeMs: number; trainMs?: number; serviceUs: { mean: number; max: number }; loopMs: { push: number; fault: number; answer: number };
    timeline?: { read: number[]; written: number[]; page: number[] } }[];
}

function serve(generate: boolean, exitAfter: number): Promise<{ port: number; done: Promise<ServeReport | null> }> {
  const args = [...(MAIN.endsWith(".ts") ? ["--import", "tsx"] : []), MAIN, "serve", "--image", imagePath, ...(generate ? ["--generate", size] : []), "--port", "0",
    "--strategy", strategy, "--push", push, ...(strategy === "demand" ? [] : ["--history", tracePath, "--layout", layout]), "--exit-after", String(exitAfter), "--quiet",
    ...(timeline ? ["--json", "--timeline"] : []), ...(v["serve-args"] ? v["serve-args"].split(" ").filter(Boolean) : [])];
  const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const done = new Promise<ServeReport | null>((r, j) => p.on("close", (c) => {
    if (c !== 0) return j(new Error(`serve exited ${c}`));
    const last = out.trim().split("\n").pop()!;
    r(timeline ? JSON.parse(last) as ServeReport : null);
  }));
  return new Promise((res, rej) => {
    p.stdout.on("data", (d) => { out += d; const m = LISTENING.exec(out); if (m) res({ port: Number(m[1] ?? m[2]), done }); });
    done.catch(rej);
  });
}

/** One destination process (`migrate --json`): destinations do not share an event loop, as in a real migration. */
type Dest = MigrationResult & { cpuMs?: number };
function migrate(port: number): Promise<Dest> {
  const args = [...(MAIN.endsWith(".ts") ? ["--import", "tsx"] : []), MAIN, "migrate", "--connect", `127.0.0.1:${port}`, "--trace", tracePath,
    "--layout", layout, "--ips", String(ips), "--json", ...(timeline ? ["--timeline"] : [])];
  const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  p.stdout.on("data", (d) => { out += d; });
  return new Promise((res, rej) => p.on("close", (c) => {
    if (c !== 0) return rej(new Error(`migrate exited ${c}: ${out}`));
    const r = JSON.parse(out);
    res({ ...r, stall: { maxUs: NaN } } as Dest);
  }));
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const trace = await readTrace(tracePath);
const check = (r: Dest) => { if (!r.verified || r.duplicatePages !== 0) throw new Error(`not verified: ${JSON.stringify(r)}`); return r; };

/** One migration's figures (ms), the destination's and the source's matched by session id. */
interface Row { stall: number; faults: number; up: number; service: number; down: number; inflight: number; matched: number; helloToWelcome: number; trainMs: number; destCpu: number }
interface Run { rows: Row[]; loopPushMs: number; loopFaultMs: number; loopAnswerMs: number; loopDelayP99: number; loopDelayMax: number; utilization: number; serverCpuMs: number; wallMs: number }

function split(dests: Dest[], rep: ServeReport | null): Run {
  const rows = dests.map((d): Row => {
    const row: Row = { stall: d.stallMs, faults: d.faults, up: 0, service: 0, down: 0, inflight: 0, matched: 0, helloToWelcome: NaN, trainMs: NaN, destCpu: d.cpuMs ?? NaN };
    const s = rep?.sessions.find((x) => x.id === d.sessionId);
    if (!s) return row;
    row.helloToWelcome = s.helloToWelcomeMs;
    row.trainMs = s.trainMs ?? 0;
    const t = d.timeline, st = s.timeline;
    if (!t || !st) return row;
    for (let k = 0; k < t.page.length && k < st.page.length; k++) {
      if (t.page[k] !== st.page[k] || t.arrivedNs[k] < 0) continue;
      row.matched++;
      if (st.written[k] < 0) { row.inflight += (t.arrivedNs[k] - t.sentNs[k]) / 1e6; continue; }
      row.up += (st.read[k] - t.sentNs[k]) / 1e6;
      row.service += (st.written[k] - st.read[k]) / 1e6;
      row.down += (t.arrivedNs[k] - st.written[k]) / 1e6;
    }
    return row;
  });
  const l = rep?.loop;
  const sum = (f: (x: ServeReport["sessions"][number]) => number) => rep ? rep.sessions.reduce((a, x) => a + f(x), 0) : NaN;
  return { rows, loopPushMs: sum((x) => x.loopMs.push), loopFaultMs: sum((x) => x.loopMs.fault), loopAnswerMs: sum((x) => x.loopMs.answer), loopDelayP99: l?.delayMs.p99 ?? NaN, loopDelayMax: l?.delayMs.max ?? NaN, utilization: l?.utilization ?? NaN, serverCpuMs: l ? l.cpuMs.user + l.cpuMs.system : NaN, wallMs: l?.wallMs ?? NaN };
}

async function once(count: number, generate: boolean): Promise<Run> {
  const s = await serve(generate, count);
  const ds = (await Promise.all(Array.from({ length: count }, () => migrate(s.port)))).map(check);
  return split(ds, await s.done);
}

const alone: Run[] = [];
const together: Run[] = [];
const f1 = (x: number) => x.toFixed(1);
try {
  process.stderr.write(`${strategy}, push ${push}${v["serve-args"] ? `, serve ${v["serve-args"]}` : ""}, ${trace.name}, layout ${layout}, image ${size}, ips ${ips}, ${MAIN}; load ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
  let first = true;
  let aloneLeft = aloneReps;
  for (let i = 0; i < reps; i++) {
    const k = Math.ceil(aloneLeft / (reps - i));
    for (let j = 0; j < k; j++) {
      const r = await once(1, first);
      first = false;
      alone.push(r);
      aloneLeft--;
      const x = r.rows[0];
      process.stderr.write(`  alone ${f1(x.stall)} ms (${x.faults} faults; up ${f1(x.up)} service ${x.service.toFixed(2)} down ${f1(x.down)} inflight ${f1(x.inflight)})\n`);
    }
    const r = await once(n, first);
    first = false;
    together.push(r);
    process.stderr.write(`  ${n} together: ${r.rows.map((x) => `${f1(x.stall)} (${x.faults})`).join(" ")} ms; load ${loadavg()[0].toFixed(1)}\n`);
  }
} finally { rmSync(dir, { recursive: true, force: true }); }

const col = (runs: Run[], f: (r: Row) => number) => median(runs.flatMap((r) => r.rows.map(f)));
const colRun = (runs: Run[], f: (r: Run) => number) => median(runs.map(f));
const summary = (runs: Run[]) => ({
  stallMs: col(runs, (r) => r.stall), stallMsAll: runs.flatMap((r) => r.rows.map((x) => x.stall)), faults: col(runs, (r) => r.faults),
  upMs: col(runs, (r) => r.up), serviceMs: col(runs, (r) => r.service), downMs: col(runs, (r) => r.down), inflightMs: col(runs, (r) => r.inflight),
  helloToWelcomeMs: col(runs, (r) => r.helloToWelcome), helloToWelcomeMaxMs: Math.max(...runs.flatMap((r) => r.rows.map((x) => x.helloToWelcome))),
  trainMs: col(runs, (r) => r.trainMs), destCpuMs: col(runs, (r) => r.destCpu),
  serverLoopDelayP99Ms: colRun(runs, (r) => r.loopDelayP99), serverLoopDelayMaxMs: colRun(runs, (r) => r.loopDelayMax),
  serverLoopUtilization: colRun(runs, (r) => r.utilization),
  serverLoopPushMs: colRun(runs, (r) => r.loopPushMs), serverLoopFaultMs: colRun(runs, (r) => r.loopFaultMs), serverLoopAnswerMs: colRun(runs, (r) => r.loopAnswerMs), serverCpuMs: colRun(runs, (r) => r.serverCpuMs), serverWallMs: colRun(runs, (r) => r.wallMs),
});
const A = summary(alone), T = summary(together);
const res = {
  strategy, push, n, reps, aloneReps, alone: A, together: T,
  aloneMedianMs: A.stallMs, togetherMedianMs: T.stallMs, togetherMaxMs: Math.max(...T.stallMsAll),
  ratioMedian: T.stallMs / A.stallMs, ratioWorst: Math.max(...T.stallMsAll) / A.stallMs, load: loadavg(),
};
const line = (name: string, x: typeof A) =>
  `${name.padEnd(9)} stall ${f1(x.stallMs).padStart(7)} | up ${f1(x.upMs).padStart(6)} service ${x.serviceMs.toFixed(2).padStart(5)} down ${f1(x.downMs).padStart(6)} inflight ${f1(x.inflightMs).padStart(6)} | ` +
  `faults ${x.faults} | HELLO->WELCOME ${f1(x.helloToWelcomeMs)} (max ${f1(x.helloToWelcomeMaxMs)}) train ${f1(x.trainMs)} | dest CPU ${f1(x.destCpuMs)} | ` +
  `server loop delay p99 ${f1(x.serverLoopDelayP99Ms)} max ${f1(x.serverLoopDelayMaxMs)} util ${x.serverLoopUtilization.toFixed(2)} (push ${f1(x.serverLoopPushMs)} fault ${f1(x.serverLoopFaultMs)} answer ${f1(x.serverLoopAnswerMs)} ms) CPU ${f1(x.serverCpuMs)}/${f1(x.serverWallMs)} ms`;
process.stdout.write(v.json ? JSON.stringify(res) + "\n" :
  `stall alone: median ${A.stallMs.toFixed(1)} ms [${A.stallMsAll.map(f1).join(", ")}]; ${n} concurrent: median ${T.stallMs.toFixed(1)} ms, ` +
  `worst ${res.togetherMaxMs.toFixed(1)} ms; ratio median ${res.ratioMedian.toFixed(2)}, worst ${res.ratioWorst.toFixed(2)}\n` +
  `medians per migration (ms):\n${line("alone", A)}\n${line("together", T)}\n`);
