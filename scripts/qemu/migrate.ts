/**
 * One real post-copy migration between two local QEMUs (TCG), optionally through the return-path
 * proxy, with the guest's own checksums as the proof that memory arrived intact.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { QemuProxy, type MigrationReport } from "../../src/qemu/proxy.js";
import { loadEngine, strategyFactory, type PredictKind } from "../../src/qemu/strategies.js";
import type { Guest } from "./guest.js";
import { Qmp } from "./qmp.js";

export type ConfigName = "no-proxy" | "proxy" | "proxy-ppm" | "proxy-next8";

export interface RunOptions {
  guest: Guest;
  config: ConfigName;
  /** One-way delay on the proxied link (proxy configs only). */
  delayMs?: number;
  /** Delay of the return path only (overrides delayMs there). */
  returnDelayMs?: number;
  rateMbps?: number;
  /** QEMU max-postcopy-bandwidth, bytes per second (0: unlimited). */
  postcopyBandwidth?: number;
  preempt?: boolean;
  memMb?: number;
  accel?: string;
  /** Predictor options for proxy-ppm. */
  engine?: Record<string, unknown>;
  /** Iterations (full md5/sort/gzip sets) to wait for on the destination after migration. */
  afterSets?: number;
  timeoutMs?: number;
  log?: (s: string) => void;
  keepDir?: boolean;
}

export interface RunResult {
  config: ConfigName;
  regime?: string;
  preempt: boolean;
  /** The destination's own page requests (network faults). */
  requests: number;
  /** ram.postcopy-requests at the source (includes injected requests). */
  sourceRequests: number;
  blocktimeMs: number;
  totalMs: number;
  downtimeMs: number;
  injected: number;
  checksumOk: boolean;
  guestRunning: boolean;
  status: string;
  sums: { before: Record<string, string>; after: Record<string, string[]> };
  proxy?: MigrationReport;
  error?: string;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `R <i> <kind> <md5>` lines of a serial log. */
export function readResults(file: string): { i: number; kind: string; sum: string }[] {
  if (!fs.existsSync(file)) return [];
  const out: { i: number; kind: string; sum: string }[] = [];
  for (const m of fs.readFileSync(file, "latin1").matchAll(/^R (\d+) (\w+) ([0-9a-f]{32})\s*$/gm)) {
    out.push({ i: Number(m[1]), kind: m[2], sum: m[3] });
  }
  return out;
}

export function qemuBinary(): string | null {
  for (const d of (process.env.PATH ?? "").split(":")) {
    const p = path.join(d, "qemu-system-x86_64");
    if (fs.existsSync(p)) return p;
  }
  return null;
}

function startQemu(o: RunOptions, dir: string, name: string, extra: string[]): ChildProcess {
  const args = [
    "-accel", o.accel ?? "tcg", "-m", String(o.memMb ?? 512), "-smp", "1", "-nodefaults",
    "-kernel", o.guest.kernel, "-initrd", o.guest.initrd,
    "-append", "console=ttyS0 rdinit=/init quiet",
    "-serial", `file:${path.join(dir, name + ".log")}`, "-display", "none", "-no-reboot",
    "-qmp", `unix:${path.join(dir, name + ".qmp")},server=on,wait=off`, ...extra,
  ];
  const p = spawn(qemuBinary() ?? "qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr!.on("data", (d) => { err += d; });
  (p as ChildProcess & { errText: () => string }).errText = () => err;
  return p;
}

export async function runMigration(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? (() => {});
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ppm-qemu-"));
  const preempt = !!o.preempt;
  const deadline = Date.now() + (o.timeoutMs ?? 180000);
  const procs: ChildProcess[] = [];
  const qmps: Qmp[] = [];
  let proxy: QemuProxy | null = null;
  const res: RunResult = {
    config: o.config, preempt, requests: 0, sourceRequests: 0, blocktimeMs: 0, totalMs: 0, downtimeMs: 0,
    injected: 0, checksumOk: false, guestRunning: false, status: "none", sums: { before: {}, after: {} },
  };
  const until = async (what: string, f: () => Promise<boolean> | boolean, every = 100) => {
    for (;;) {
      if (await f()) return;
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
      for (const p of procs) if (p.exitCode !== null) throw new Error(`QEMU exited (${p.exitCode}) while waiting for ${what}: ${(p as any).errText()}`);
      await sleep(every);
    }
  };
  try {
    const dport = await freePort();
    const dst = startQemu(o, dir, "dst", ["-incoming", "defer"]);
    const src = startQemu(o, dir, "src", []);
    procs.push(dst, src);
    const qd = await Qmp.connect(path.join(dir, "dst.qmp"));
    const qs = await Qmp.connect(path.join(dir, "src.qmp"));
    qmps.push(qd, qs);
    const caps = (names: string[]) => ({ capabilities: names.map((capability) => ({ capability, state: true })) });
    await qs.cmd("migrate-set-capabilities", caps(preempt ? ["postcopy-ram", "postcopy-preempt"] : ["postcopy-ram"]));
    await qd.cmd("migrate-set-capabilities", caps(preempt ? ["postcopy-ram", "postcopy-blocktime", "postcopy-preempt"] : ["postcopy-ram", "postcopy-blocktime"]));
    if (o.postcopyBandwidth) await qs.cmd("migrate-set-parameters", { "max-postcopy-bandwidth": o.postcopyBandwidth });
    await qd.cmd("migrate-incoming", { uri: `tcp:127.0.0.1:${dport}` });

    let uriPort = dport;
    if (o.config !== "no-proxy") {
      const kind: PredictKind = o.config === "proxy-ppm" ? "ppm" : o.config === "proxy-next8" ? "next8" : "none";
      if (kind === "ppm") await loadEngine();
      proxy = new QemuProxy({
        listenPort: 0, targetHost: "127.0.0.1", targetPort: dport, delayMs: o.delayMs ?? 0, returnDelayMs: o.returnDelayMs, rateMbps: o.rateMbps,
        makeStrategy: strategyFactory(kind, { depth: 16, ...(o.engine ?? {}) }), log,
      });
      uriPort = (await proxy.listen()).port;
    }

    // Reference sums: one full set printed by the source guest.
    const srcLog = path.join(dir, "src.log");
    await until("the guest's first results", () => new Set(readResults(srcLog).map((r) => r.kind)).size >= 3, 250);
    for (const r of readResults(srcLog)) res.sums.before[r.kind] ??= r.sum;
    log(`${o.config}: guest ready, reference ${JSON.stringify(res.sums.before)}; migrating`);

    await qs.cmd("migrate", { uri: `tcp:127.0.0.1:${uriPort}` });
    await qs.cmd("migrate-start-postcopy");
    let sInfo: any = {};
    await until("source migration end", async () => {
      sInfo = await qs.cmd("query-migrate");
      return ["completed", "failed", "cancelled"].includes(sInfo.status);
    }, 50);
    res.status = sInfo.status;
    if (sInfo.status !== "completed") throw new Error(`migration ${sInfo.status}: ${sInfo["error-desc"] ?? ""}`);
    let dInfo: any = {};
    await until("destination migration end", async () => {
      dInfo = await qd.cmd("query-migrate");
      return dInfo.status === "completed" || dInfo.status === "failed";
    }, 50);
    if (dInfo.status !== "completed") throw new Error(`destination migration ${dInfo.status}`);
    res.totalMs = sInfo["total-time"] ?? 0;
    res.downtimeMs = sInfo.downtime ?? 0;
    res.sourceRequests = sInfo.ram?.["postcopy-requests"] ?? 0;
    res.blocktimeMs = dInfo["postcopy-blocktime"] ?? 0;

    // After migration: the destination guest must keep going and print the same sums.
    const dstLog = path.join(dir, "dst.log");
    const need = o.afterSets ?? 1;
    await until("the guest's results on the destination", () => {
      const kinds = new Map<string, number>();
      for (const r of readResults(dstLog)) kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
      return kinds.size >= 3 && [...kinds.values()].every((n) => n >= need);
    }, 250);
    for (const r of readResults(dstLog)) (res.sums.after[r.kind] ??= []).push(r.sum);
    res.checksumOk = Object.entries(res.sums.after).every(([k, sums]) => sums.every((s) => s === res.sums.before[k]));
    const st = await qd.cmd("query-status");
    res.guestRunning = st.status === "running";
    res.status = "completed";
  } catch (e) {
    res.error = (e as Error).message;
  } finally {
    for (const q of qmps) { try { await Promise.race([q.cmd("quit"), sleep(1000)]); } catch { /* gone */ } q.close(); }
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    if (proxy) {
      await sleep(50);
      await proxy.close();
      await sleep(20);
      const r = proxy.reports[0] ?? proxy.current();
      if (r) {
        res.proxy = r;
        res.requests = r.stats.requests;
        res.injected = r.stats.injectedPages;
        if (r.error && !res.error) res.error = `proxy: ${r.error}`;
      }
    } else {
      res.requests = res.sourceRequests;
    }
    if (!o.keepDir) fs.rmSync(dir, { recursive: true, force: true });
    else log(`logs kept in ${dir}`);
  }
  return res;
}
