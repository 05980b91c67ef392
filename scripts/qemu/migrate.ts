/**
 * One real post-copy migration between two local QEMUs (TCG), optionally through the return-path
 * proxy, with the guest's own checksums as the proof that memory arrived intact.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { QemuProxy, type MigrationReport } from "../../src/qemu/proxy.js";
import { loadEngine, strategyFactory, type PredictKind } from "../../src/qemu/strategies.js";
import { readModel, writeModelAtomic } from "../../src/qemu/model.js";
import type { QemuPolicyOptions } from "../../src/qemu/policy.js";
import type { Guest } from "./guest.js";
import { Qmp } from "./qmp.js";

export type ConfigName = "no-proxy" | "proxy" | "proxy-ppm" | "proxy-ppm-sim" | "proxy-next8";
export const CONFIGS: ConfigName[] = ["no-proxy", "proxy", "proxy-ppm", "proxy-ppm-sim", "proxy-next8"];

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
  /** QEMU policy knobs for proxy-ppm. */
  policy?: Partial<Omit<QemuPolicyOptions, "engine">>;
  /** The proxy's scan return (default: by the QEMU version; see QemuProxyOptions.scannerReturn). */
  scannerReturn?: boolean;
  /**
   * Migrations of the same running VM: hops - 1 learning migrations (learnConfig, default proxy-ppm,
   * saving its model) before the measured one (config). Default 1.
   */
  hops?: number;
  learnConfig?: ConfigName;
  /**
   * Let precopy run this long before `migrate-start-postcopy` (default 0: post-copy at once). Pages
   * sent meanwhile and dirtied again are discarded at the switch-over (POSTCOPY_RAM_DISCARD); a
   * migration that converges first completes in precopy.
   */
  precopyMs?: number;
  /** Cut the proxied connections this long after the switch-over, then recover (migrate-recover, migrate resume=true). */
  breakAfterMs?: number;
  /** The model file the proxy-ppm hops load and save (default: in the run's temporary folder). */
  modelPath?: string;
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
  /** With breakAfterMs: whether QEMU's recovery was started through the proxy (undefined: no cut). */
  recovered?: boolean;
  /**
   * Pauses nobody forced (QEMU went to postcopy-paused on its own): when, what each QEMU printed on
   * stderr (its reason: e.g. 7.2's "Illegal RAM offset" on the destination), and whether the
   * recovery through the proxy was started.
   */
  pauses?: { atMs: number; source: string; destination: string; recovery: string }[];
  /** Every migration of the run, in order (the measured one last). */
  hops?: { config: ConfigName; requests: number; blocktimeMs: number; injected: number; checksumOk: boolean; error?: string; modelOrigin?: string; faults?: number[]; pauses?: number }[];
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

// QEMUs and temporary folders of the runs in progress. A harness killed mid-run (Ctrl-C, a timeout's
// SIGTERM) must not leave VMs running under init or their sockets and logs in /tmp: the first signal
// kills what is live, removes the folders, and ends the process as the signal would have.
const live = { procs: new Set<ChildProcess>(), dirs: new Set<string>() };
function cleanUpNow(): void {
  for (const p of live.procs) if (p.exitCode === null && p.signalCode === null) { try { p.kill("SIGKILL"); } catch { /* gone */ } }
  for (const d of live.dirs) fs.rmSync(d, { recursive: true, force: true });
  live.procs.clear();
  live.dirs.clear();
}
let handlersInstalled = false;
function installCleanup(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", cleanUpNow);
  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
    process.once(sig, () => { cleanUpNow(); process.exit(code); });
  }
}

/** `R <i> <kind> <md5>` lines of a serial log. */
export function readResults(file: string): { i: number; kind: string; sum: string }[] {
  if (!fs.existsSync(file)) return [];
  const out: { i: number; kind: string; sum: string }[] = [];
  for (const m of fs.readFileSync(file, "latin1").matchAll(/^R (\d+) (\w+) ([0-9a-f]{32})\s*$/gm)) {
    out.push({ i: Number(m[1]), kind: m[2], sum: m[3] });
  }
  return out;
}

/**
 * The QEMU to run: $PPM_QEMU (qemu-demo's `--qemu PATH` sets it; e.g. the QEMU 10 of
 * scripts/qemu/install-qemu10.sh), else qemu-system-x86_64 on PATH.
 */
export function qemuBinary(): string | null {
  const own = process.env.PPM_QEMU;
  if (own) return fs.existsSync(own) ? own : null;
  for (const d of (process.env.PATH ?? "").split(":")) {
    const p = path.join(d, "qemu-system-x86_64");
    if (fs.existsSync(p)) return p;
  }
  return null;
}

const versions = new Map<string, string>();
/** "10.0.2" from `qemu-system-x86_64 --version` ("QEMU emulator version 10.0.2 (Debian ...)"); "" if unknown. */
export function qemuVersion(bin: string | null = qemuBinary()): string {
  if (!bin) return "";
  let v = versions.get(bin);
  if (v === undefined) {
    const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 10000 });
    v = parseQemuVersion(r.stdout ?? "");
    versions.set(bin, v);
  }
  return v;
}

export function parseQemuVersion(text: string): string {
  return /QEMU emulator version (\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? "";
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
  live.procs.add(p);
  p.once("exit", () => live.procs.delete(p));
  let err = "";
  p.stderr!.on("data", (d) => { err += d; });
  (p as ChildProcess & { errText: () => string }).errText = () => err;
  return p;
}

export async function runMigration(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? (() => {});
  installCleanup();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ppm-qemu-"));
  if (!o.keepDir) live.dirs.add(dir); // (a folder asked to be kept is kept, signal or not)
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
  const caps = (names: string[]) => ({ capabilities: names.map((capability) => ({ capability, state: true })) });
  const kinds = o.guest.results ?? ["md5", "sort", "gzip"];
  const modelPath = o.modelPath ?? path.join(dir, "model.ppm");
  try {
    const hops = Math.max(1, o.hops ?? 1);
    let src = startQemu(o, dir, "vm0", []);
    procs.push(src);
    let qs = await Qmp.connect(path.join(dir, "vm0.qmp"));
    qmps.push(qs);
    let srcLog = path.join(dir, "vm0.log");
    // Reference sums: one full set printed by the guest before any migration.
    await until("the guest's first results", () => kinds.every((k) => readResults(srcLog).some((r) => r.kind === k)), 250);
    for (const r of readResults(srcLog)) res.sums.before[r.kind] ??= r.sum;
    log(`${o.config}: guest ready, reference ${JSON.stringify(res.sums.before)}; migrating`);

    for (let hop = 1; hop <= hops; hop++) {
      const last = hop === hops;
      const config: ConfigName = last ? o.config : (o.learnConfig ?? "proxy-ppm");
      const name = `vm${hop}`;
      const dport = await freePort();
      const dst = startQemu(o, dir, name, ["-incoming", "defer"]);
      procs.push(dst);
      const qd = await Qmp.connect(path.join(dir, `${name}.qmp`));
      qmps.push(qd);
      await qs.cmd("migrate-set-capabilities", caps(preempt ? ["postcopy-ram", "postcopy-preempt"] : ["postcopy-ram"]));
      await qd.cmd("migrate-set-capabilities", caps(preempt ? ["postcopy-ram", "postcopy-blocktime", "postcopy-preempt"] : ["postcopy-ram", "postcopy-blocktime"]));
      if (o.postcopyBandwidth) await qs.cmd("migrate-set-parameters", { "max-postcopy-bandwidth": o.postcopyBandwidth });
      await qd.cmd("migrate-incoming", { uri: `tcp:127.0.0.1:${dport}` });

      let uriPort = dport;
      proxy = null;
      if (config !== "no-proxy") {
        const kind: PredictKind = config === "proxy-ppm" ? "ppm" : config === "proxy-ppm-sim" ? "ppm-sim" : config === "proxy-next8" ? "next8" : "none";
        if (kind === "ppm" || kind === "ppm-sim") await loadEngine();
        proxy = new QemuProxy({
          listenPort: 0, targetHost: "127.0.0.1", targetPort: dport, delayMs: o.delayMs ?? 0, returnDelayMs: o.returnDelayMs, rateMbps: o.rateMbps,
          makeStrategy: strategyFactory(kind, { ...(kind === "ppm-sim" ? { depth: 16 } : {}), ...(o.engine ?? {}), policy: o.policy, loadModel: kind === "ppm" ? () => readModel(modelPath) : undefined }),
          saveModel: kind === "ppm" ? (bytes) => writeModelAtomic(modelPath, bytes) : undefined,
          scannerReturn: o.scannerReturn,
          log,
        });
        uriPort = (await proxy.listen()).port;
      }
      const hr: RunResult = {
        config, preempt, requests: 0, sourceRequests: 0, blocktimeMs: 0, totalMs: 0, downtimeMs: 0,
        injected: 0, checksumOk: false, guestRunning: false, status: "none", sums: { before: res.sums.before, after: {} },
      };
      // QEMU's postcopy recovery through the same proxy: migrate-recover on the destination (out of
      // band: its main loop may be stuck on a missing page), then migrate resume=true at the source.
      const recover = async () => {
        await sleep(300);
        // The first incoming listener may still hold the port for a moment: retry.
        for (let k = 0; ; k++) {
          try {
            await qd.oobCmd("migrate-recover", { uri: `tcp:127.0.0.1:${dport}` });
            break;
          } catch (e) {
            if (k >= 20 || !/in use/.test((e as Error).message)) throw e;
            await sleep(500);
          }
        }
        await sleep(200);
        await qs.cmd("migrate", { uri: `tcp:127.0.0.1:${uriPort}`, resume: true });
        // The source reports postcopy-paused for a moment after the resume (then postcopy-recover,
        // postcopy-active): wait for it to move on, so that the same pause is not counted twice.
        await until("the source to leave postcopy-paused after resume", async () => (await qs.cmd("query-migrate")).status !== "postcopy-paused", 20);
      };
      const started = Date.now();
      try {
        await qs.cmd("migrate", { uri: `tcp:127.0.0.1:${uriPort}` });
        if (o.precopyMs) await sleep(o.precopyMs);
        // A migration that converged in precopy meanwhile has nothing to switch over.
        if (!o.precopyMs || (await qs.cmd("query-migrate")).status === "active") await qs.cmd("migrate-start-postcopy");
        if (o.breakAfterMs !== undefined && last && proxy) {
          // A network failure in post-copy, then QEMU's recovery through the same proxy.
          await sleep(o.breakAfterMs);
          const p = proxy as QemuProxy;
          const cut = p.dropConnections();
          log(`${config}: cut ${cut} connection(s) after ${o.breakAfterMs} ms of post-copy`);
          let st = "";
          // Only the source is polled: the destination's main loop may be stuck on a missing page.
          await until("postcopy-paused at the source", async () => {
            st = (await qs.cmd("query-migrate")).status;
            return st === "completed" || st === "postcopy-paused" || st === "failed";
          }, 50);
          log(`${config}: source ${st}`);
          if (st === "postcopy-paused") {
            hr.recovered = false;
            await recover();
            hr.recovered = true;
          }
        }
        let sInfo: any = {};
        for (;;) {
          await until("source migration end", async () => {
            sInfo = await qs.cmd("query-migrate");
            return ["completed", "failed", "cancelled", "postcopy-paused"].includes(sInfo.status);
          }, 50);
          if (sInfo.status !== "postcopy-paused") break;
          // Paused with nothing forcing it (a forced cut was recovered above): keep QEMU's reasons,
          // recover through the proxy once, and fail the run if it pauses again.
          const tail = (p: ChildProcess) => ((p as any).errText() as string).trim().split("\n").slice(-4).join(" | ");
          const pause = { atMs: Date.now() - started, source: tail(src), destination: tail(dst), recovery: "started" };
          (hr.pauses ??= []).push(pause);
          log(`${config}: postcopy-paused without a cut, ${pause.atMs} ms after migrate; source: ${pause.source}; destination: ${pause.destination}`);
          if (hr.pauses.length > 1) { pause.recovery = "not tried: paused again"; throw new Error(`postcopy-paused twice; destination: ${pause.destination}`); }
          try { await recover(); } catch (e) { pause.recovery = `failed: ${(e as Error).message}`; throw new Error(`postcopy-paused and the recovery failed (${(e as Error).message}); destination: ${pause.destination}`); }
        }
        hr.status = sInfo.status;
        if (sInfo.status !== "completed") throw new Error(`migration ${sInfo.status}: ${sInfo["error-desc"] ?? ""}`);
        let dInfo: any = {};
        await until("destination migration end", async () => {
          dInfo = await qd.cmd("query-migrate");
          return dInfo.status === "completed" || dInfo.status === "failed";
        }, 50);
        if (dInfo.status !== "completed") throw new Error(`destination migration ${dInfo.status}`);
        hr.totalMs = sInfo["total-time"] ?? 0;
        hr.downtimeMs = sInfo.downtime ?? 0;
        hr.sourceRequests = sInfo.ram?.["postcopy-requests"] ?? 0;
        hr.blocktimeMs = dInfo["postcopy-blocktime"] ?? 0;

        // After migration: the destination guest must keep going and print the same sums.
        const dstLog = path.join(dir, `${name}.log`);
        const need = o.afterSets ?? 1;
        await until("the guest's results on the destination", () => {
          const seen = new Map<string, number>();
          for (const r of readResults(dstLog)) seen.set(r.kind, (seen.get(r.kind) ?? 0) + 1);
          return kinds.every((k) => (seen.get(k) ?? 0) >= need);
        }, 250);
        for (const r of readResults(dstLog)) (hr.sums.after[r.kind] ??= []).push(r.sum);
        hr.checksumOk = Object.entries(hr.sums.after).every(([k, sums]) => sums.every((x) => x === res.sums.before[k]));
        const st = await qd.cmd("query-status");
        hr.guestRunning = st.status === "running";
        hr.status = "completed";
        srcLog = dstLog;
      } catch (e) {
        hr.error = (e as Error).message;
      } finally {
        if (proxy) {
          await sleep(50);
          await proxy.close();
          const r = proxy.reports[0] ?? proxy.current();
          if (r) {
            hr.proxy = r;
            hr.requests = r.stats.requests;
            hr.injected = r.stats.injectedPages;
            if (r.error && !hr.error) hr.error = `proxy: ${r.error}`;
          }
          proxy = null;
        } else hr.requests = hr.sourceRequests;
      }
      if (hr.pauses) (res.pauses ??= []).push(...hr.pauses);
      (res.hops ??= []).push({ config, requests: hr.requests, blocktimeMs: hr.blocktimeMs, injected: hr.injected, checksumOk: hr.checksumOk, error: hr.error, modelOrigin: hr.proxy?.strategy?.origin, pauses: hr.pauses?.length,
        faults: hr.proxy?.service.timeline.map((e) => e[3]) });
      if (last || hr.error) {
        Object.assign(res, { ...hr, sums: { before: res.sums.before, after: hr.sums.after }, hops: res.hops });
        if (!last) res.error = `hop ${hop} (${config}): ${hr.error}`;
        break;
      }
      // The old source is done: quit it; the destination is the next hop's source.
      try { await Promise.race([qs.cmd("quit"), sleep(1000)]); } catch { /* gone */ }
      qs.close();
      qmps.splice(qmps.indexOf(qs), 1);
      await Promise.race([new Promise((r) => src.once("exit", r)), sleep(2000)]);
      if (src.exitCode === null) src.kill("SIGKILL");
      procs.splice(procs.indexOf(src), 1);
      qs = qd;
      src = dst;
    }
  } catch (e) {
    res.error ??= (e as Error).message;
  } finally {
    for (const q of qmps) { try { await Promise.race([q.cmd("quit"), sleep(1000)]); } catch { /* gone */ } q.close(); }
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    if (proxy) await (proxy as QemuProxy).close();
    live.dirs.delete(dir);
    if (!o.keepDir) fs.rmSync(dir, { recursive: true, force: true });
    else log(`logs kept in ${dir}`);
  }
  return res;
}
