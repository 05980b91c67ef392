/**
 * `npm run qemu-demo -- [--runs N] [--regime latency|bandwidth|both] [--json] ...`
 *
 * Real QEMU post-copy migrations of a tiny Debian guest (kernel + busybox initramfs) between two local
 * QEMUs, in two regimes:
 *   latency    the proxied link has a one-way delay (--delay-ms, default 5: 10 ms round trip)
 *   bandwidth  QEMU's max-postcopy-bandwidth below the guest's appetite (--postcopy-mbs, default 30 MB/s)
 * and four configurations: no-proxy, proxy (no prediction), proxy-ppm (the engine), proxy-next8.
 * Every run must complete with the guest running and printing the same checksums as before the
 * migration; anything else exits non-zero.
 */
import { parseArgs } from "node:util";
import { buildGuest, type Guest, type GuestKind } from "./qemu/guest.js";
import { CONFIGS, qemuBinary, qemuVersion, runMigration, type ConfigName, type RunResult } from "./qemu/migrate.js";
import { loadEngine } from "../src/qemu/strategies.js";
import type { QemuPolicyOptions } from "../src/qemu/policy.js";
import { pairedVerdict } from "../src/util/paired.js";

const HELP = `usage: qemu-demo [options]
  --runs N               repetitions of every configuration (default 3)
  --guest G              md5 | walk | both (default both): md5 loops md5sum/sort/gzip over a 96 MB
                         tmpfs file; walk walks 64 MB in a fixed random page order (irregular, repeating)
  --hops N               migrations of the same running VM per run, the last one measured; the
                         earlier ones run proxy-ppm and save its model (default: md5 1, walk 2)
  --regime R             comma list of loopback, latency-bound, latency, bandwidth; both = latency,bandwidth;
                         all (default loopback,latency-bound)
                         loopback: no delay; latency-bound: return path delayed --return-delay-ms (2),
                         postcopy-preempt on; latency: --delay-ms each way; bandwidth: --postcopy-mbs
  --precopy-ms MS        precopy before the switch-over (default 0: post-copy at once); pages dirtied
                         again meanwhile are discarded at the switch-over (the proxy reports them)
  --configs LIST         comma list of no-proxy,proxy,proxy-ppm,proxy-ppm-sim,proxy-next8
                         (default proxy,proxy-ppm; proxy is the pass-through counter: QEMU alone);
                         proxy-ppm:KEY=V:KEY=V... is proxy-ppm with other policy settings (keys
                         max-pages, min-confidence, trust-accuracy, trust-trials, preload, preload-run, run-pages,
                         max-outstanding-injected, max-outstanding (the gate); scan-return=0|1
                         turns the proxy's scan return off or on; defaults follow the QEMU version
                         and channels: 2 pages and the scan return before 8.0; from 8.0, 4 pages,
                         and without preempt also runs of 64, the scan return and a preload of 32
                         x 64 (run-pages=1:preload=0:scan-return=0 turns those off)), so that variants
                         run interleaved in one batch
  --delay-ms N           latency regime: one-way delay on the proxied link (default 5)
  --postcopy-mbs N       bandwidth regime: max-postcopy-bandwidth in MB/s (default 30)
  --preempt              enable postcopy-preempt (second channel) on both sides
  --depth N              pages predicted per request (ppm-sim, default 16)
  --max-pages N          proxy-ppm: most pages injected per request (default 2 before QEMU 8.0, 4 from 8.0)
  --min-confidence P     proxy-ppm: least path probability of an injected page (default 0.25)
  --mem-mb N             guest memory (default 512)
  --accel A              tcg (default) or kvm
  --qemu PATH            the QEMU binary (default: $PPM_QEMU, else qemu-system-x86_64 on PATH); e.g.
                         the QEMU 10 of scripts/qemu/install-qemu10.sh. Its version is in the report
  --json                 print {"runs":[...]} on stdout
`;

const { values } = (() => { try { return parseOptions(); } catch (e) { process.stderr.write(`qemu-demo: ${(e as Error).message.split("\n")[0]}\n`); process.exit(2); } })();
function parseOptions() { return parseArgs({
  args: process.argv.slice(2),
  options: {
    runs: { type: "string" }, regime: { type: "string" }, configs: { type: "string" },
    "delay-ms": { type: "string" }, "postcopy-mbs": { type: "string" }, preempt: { type: "boolean" }, "return-delay-ms": { type: "string" },
    depth: { type: "string" }, "mem-mb": { type: "string" }, accel: { type: "string" },
    json: { type: "boolean" }, help: { type: "boolean", short: "h" }, verbose: { type: "boolean" },
    guest: { type: "string" }, hops: { type: "string" }, qemu: { type: "string" }, "max-pages": { type: "string" }, "min-confidence": { type: "string" },
    "precopy-ms": { type: "string" },
  },
}); }
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
/** A numeric option, refused (exit 2, naming it and its value) outside [min, max] or not whole when it must be. */
function num(name: string, def: number | undefined, min: number, max: number, integer: boolean): number | undefined {
  const raw = values[name as keyof typeof values];
  if (raw === undefined) return def;
  const x = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  if (!Number.isFinite(x) || x < min || x > max || (integer && !Number.isInteger(x))) {
    process.stderr.write(`qemu-demo: --${name} must be ${integer ? "an integer" : "a number"} in ${min}..${max}, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return x;
}
const runs = num("runs", 3, 1, 10000, true)!;
const delayMs = num("delay-ms", 5, 0, 60000, false)!;
const postcopyMbs = num("postcopy-mbs", 30, 0.001, 1e6, false)!;
const hopsOption = num("hops", undefined, 1, 1000, true);
const memMb = num("mem-mb", 512, 64, 1 << 20, true)!;
const maxPagesOption = num("max-pages", undefined, 1, 64, true); // (the proxy's --max-pages range)
const minConfidenceOption = num("min-confidence", undefined, 0, 1, false);
const depthOption = num("depth", undefined, 0, 256, true);
if (values.guest !== undefined && !["md5", "walk", "both"].includes(values.guest)) {
  process.stderr.write(`qemu-demo: --guest must be md5, walk or both, got ${JSON.stringify(values.guest)}\n`);
  process.exit(2);
}
const REGIMES = ["loopback", "latency-bound", "latency", "bandwidth"];
const regimes = values.regime === "both" ? ["latency", "bandwidth"] : values.regime === "all" ? REGIMES : (values.regime ?? "loopback,latency-bound").split(",");
for (const r of regimes) if (!REGIMES.includes(r)) { process.stderr.write(`qemu-demo: unknown regime ${r}\n`); process.exit(2); }
const returnDelayMs = num("return-delay-ms", 2, 0, 60000, false)!;
const precopyMs = num("precopy-ms", 0, 0, 600000, false)!;
let configs = (values.configs ?? "proxy,proxy-ppm").split(",");
const POLICY_KEYS: Record<string, [keyof QemuPolicyOptions, number, number, boolean]> = {
  "max-pages": ["maxPages", 1, 64, true], "min-confidence": ["minConfidence", 0, 1, false],
  "trust-accuracy": ["trustAccuracy", 0, 1, false], "trust-trials": ["trustMinTrials", 0, 1000, true],
  preload: ["preloadPages", 0, 64, true], "run-pages": ["runPages", 1, 64, true], "preload-run": ["preloadRun", 1, 256, true],
  // The gate: inject only while at most this many injected pages (resp. pages of any request, the
  // new one included) are outstanding at the source (defaults 0 and 1).
  "max-outstanding-injected": ["maxOutstandingInjected", 0, 1 << 20, true], "max-outstanding": ["maxOutstanding", 1, 1 << 20, true],
};
/**
 * `scan-return=0` (`=1`) in a proxy-ppm label: the proxy does not (does) end injections with the page
 * after the fault; neither: the default of the migration's QEMU (from 8.0 on: off with preempt, on without; src/qemu/policy.ts).
 */
const scanReturnOf = (label: string) => {
  const kv = label.split(":").slice(1);
  return kv.includes("scan-return=0") ? false : kv.includes("scan-return=1") ? true : undefined;
};
function policyOf(label: string, base: Partial<QemuPolicyOptions>): Partial<QemuPolicyOptions> {
  const out: Record<string, number> = { ...(base as Record<string, number>) };
  for (const kv of label.split(":").slice(1)) {
    if (kv === "scan-return=0" || kv === "scan-return=1") continue;
    const [k, v] = kv.split("=");
    const spec = POLICY_KEYS[k];
    const x = Number(v);
    if (!spec || v === undefined || v === "" || !Number.isFinite(x) || x < spec[1] || x > spec[2] || (spec[3] && !Number.isInteger(x))) {
      process.stderr.write(`qemu-demo: bad policy setting "${kv}" in config ${label} (keys: ${Object.keys(POLICY_KEYS).join(", ")})\n`);
      process.exit(2);
    }
    out[spec[0]] = x;
  }
  return out as Partial<QemuPolicyOptions>;
}
const baseConfig = (label: string) => label.split(":")[0] as ConfigName;
for (const c of configs) {
  if (!CONFIGS.includes(baseConfig(c)) || (c.includes(":") && baseConfig(c) !== "proxy-ppm")) { process.stderr.write(`qemu-demo: unknown config ${c}\n`); process.exit(2); }
  policyOf(c, {}); // exits on a bad setting before any run
}
const guestKinds: GuestKind[] = values.guest === "md5" ? ["md5"] : values.guest === "walk" ? ["walk"] : ["md5", "walk"];
const err = (s: string) => process.stderr.write(s + "\n");

if (values.qemu !== undefined) process.env.PPM_QEMU = values.qemu; // runMigration's QEMU (and its children's)
if (!qemuBinary()) {
  err(values.qemu !== undefined || process.env.PPM_QEMU ? `qemu-demo: ${process.env.PPM_QEMU} not found (scripts/qemu/install-qemu10.sh installs QEMU 10 there)`
    : "qemu-demo: qemu-system-x86_64 not found; install the Debian package: apt-get install -y qemu-system-x86");
  process.exit(2);
}
const qemu = { binary: qemuBinary()!, version: qemuVersion() };
err(`qemu-demo: QEMU ${qemu.version || "(version unknown)"} (${qemu.binary})`);
if (configs.some((c) => baseConfig(c) === "proxy-ppm" || c === "proxy-ppm-sim") || guestKinds.includes("walk")) {
  try {
    await loadEngine();
  } catch (e) {
    err(`qemu-demo: skipping proxy-ppm: ${(e as Error).message}`);
    configs = configs.filter((c) => baseConfig(c) !== "proxy-ppm" && c !== "proxy-ppm-sim");
  }
}
const guests: Guest[] = [];
for (const k of guestKinds) {
  try {
    guests.push(buildGuest(err, k));
  } catch (e) {
    err(`qemu-demo: skipping the ${k} guest: ${(e as Error).message}`);
  }
}
const all: (RunResult & { regime: string; guest: string; label: string })[] = [];
const basePolicy: Partial<QemuPolicyOptions> = {
  ...(maxPagesOption !== undefined ? { maxPages: maxPagesOption } : {}),
  ...(minConfidenceOption !== undefined ? { minConfidence: minConfidenceOption } : {}),
};
let failed = 0;
for (const guest of guests) for (const regime of regimes) {
  const hops = hopsOption ?? (guest.kind === "walk" ? 2 : 1);
  for (let i = 0; i < runs; i++) {
    for (const label of configs) {
      const config = baseConfig(label);
      const r = await runMigration({
        guest, config, hops, precopyMs, timeoutMs: 150000 * hops + precopyMs, preempt: !!values.preempt || regime === "latency-bound", memMb, accel: values.accel,
        delayMs: regime === "latency" ? delayMs : 0,
        returnDelayMs: regime === "latency-bound" ? returnDelayMs : undefined,
        postcopyBandwidth: regime === "bandwidth" ? postcopyMbs * 1024 * 1024 : 0,
        engine: depthOption !== undefined ? { depth: depthOption } : {},
        policy: policyOf(label, basePolicy), scannerReturn: scanReturnOf(label),
        log: values.verbose ? err : undefined,
      });
      const ok = !r.error && r.checksumOk && r.guestRunning && r.status === "completed";
      if (!ok) failed++;
      all.push({ ...r, regime, guest: guest.kind, label });
      err(`${guest.kind} ${regime}${hops > 1 ? ` hop ${hops}` : ""} run ${i + 1}/${runs} ${label}: ${ok ? "ok" : `FAILED ${r.error ?? (r.checksumOk ? "guest stopped" : "checksum mismatch")}`}` +
        `  requests ${r.requests} (source ${r.sourceRequests}), blocktime ${r.blocktimeMs} ms, total ${r.totalMs} ms, injected ${r.injected}` +
        (r.proxy ? `, predictor median ${r.proxy.stats.predictUs.median} us/request, service median ${r.proxy.service.dest.median} ms` +
          (r.proxy.strategy?.origin ? `, model ${r.proxy.strategy.origin}, gated ${r.proxy.strategy.gated}` : "") +
          (r.proxy.strategy?.feedback ? `, checked ${r.proxy.strategy.feedback.right}/${r.proxy.strategy.feedback.checked} right, untrusted ${r.proxy.strategy.feedback.untrusted}` : "") : "") +
        (r.pauses ? `; postcopy-paused ${r.pauses.length}x unforced (${r.pauses.map((x) => `destination: ${x.destination}; recovery ${x.recovery}`).join(" / ")})` : ""));
    }
  }
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : 0; };
const cell = (xs: number[]) => `${median(xs)} (${Math.min(...xs)}–${Math.max(...xs)})`;
const lines = ["| guest | regime | config | requests | blocktime ms | total ms | injected | service ms (dest, median) | predictor us/req | ok |", "|---|---|---|---|---|---|---|---|---|---|"];
for (const guest of guests) for (const regime of regimes) for (const config of configs) {
  const rs = all.filter((r) => r.guest === guest.kind && r.regime === regime && r.label === config);
  if (!rs.length) continue;
  const pu = rs.filter((r) => r.proxy).map((r) => r.proxy!.stats.predictUs.median);
  const sv = rs.filter((r) => r.proxy).map((r) => r.proxy!.service.dest.median);
  lines.push(`| ${guest.kind} | ${regime} | ${config} | ${cell(rs.map((r) => r.requests))} | ${cell(rs.map((r) => r.blocktimeMs))} | ${cell(rs.map((r) => r.totalMs))} | ${cell(rs.map((r) => r.injected))} | ${sv.length ? cell(sv.map((x) => Math.round(x * 10) / 10)) : "–"} | ${pu.length && config !== "proxy" && config !== "no-proxy" ? median(pu) : "–"} | ${rs.filter((r) => !r.error && r.checksumOk && r.guestRunning).length}/${rs.length} |`);
}
err("\nQEMU " + (qemu.version || "?") + ", median (min–max) over " + runs + " runs" + (values.preempt ? ", postcopy-preempt on" : "") + "\n" + lines.join("\n"));
// Against QEMU alone, pair by pair (run i of each configuration against run i of `proxy`, which ran
// just before it): blocktime of identical runs varies 2-5x here, so say what the runs resolve.
const versus: string[] = [];
for (const guest of guests) for (const regime of regimes) {
  const base = all.filter((r) => r.guest === guest.kind && r.regime === regime && r.label === "proxy");
  for (const config of configs) {
    if (config === "proxy" || !base.length) continue;
    const rs = all.filter((r) => r.guest === guest.kind && r.regime === regime && r.label === config);
    const ok = (r: RunResult) => !r.error && r.requests > 0 && r.blocktimeMs > 0;
    const ps = rs.map((r, i) => [r, base[i]] as const).filter(([r, b]) => b && ok(r) && ok(b));
    const show = (ratios: number[]) => {
      const v = pairedVerdict(ratios);
      return Number.isNaN(v.lo) ? `${v.median.toFixed(2)}, ${v.verdict}` : `${v.median.toFixed(2)} (90% interval ${v.lo.toFixed(2)}-${v.hi.toFixed(2)}): ${v.verdict}`;
    };
    if (ps.length) versus.push(`| ${guest.kind} | ${regime} | ${config} | ${ps.length} | ${show(ps.map(([r, b]) => r.requests / b.requests))} | ${show(ps.map(([r, b]) => r.blocktimeMs / b.blocktimeMs))} |`);
  }
}
if (versus.length) err("\nAgainst QEMU alone (proxy), paired ratios (src/util/paired.ts: 5 pairs at least for an interval)\n| guest | regime | config | pairs | requests | blocktime |\n|---|---|---|---|---|---|\n" + versus.join("\n"));
if (values.json) {
  process.stdout.write(JSON.stringify({
    qemu,
    runs: all.map((r) => ({ qemuVersion: qemu.version,
      guest: r.guest, hops: r.hops, machine: r.proxy?.machine, phase: r.proxy?.phase, strategy: r.proxy?.strategy,
      config: r.label, regime: r.regime, preempt: r.preempt, requests: r.requests, sourceRequests: r.sourceRequests,
      blocktimeMs: r.blocktimeMs, totalMs: r.totalMs, injected: r.injected, checksumOk: r.checksumOk,
      guestRunning: r.guestRunning, predictorUsMedian: r.proxy?.stats.predictUs.median, error: r.error, pauses: r.pauses,
      injectedMessages: r.proxy?.stats.injectedMessages, requestsForInjected: r.proxy?.stats.requestsForInjected,
      service: r.proxy?.service, process: r.proxy?.process, preloaded: r.proxy?.stats.preloadedPages,
    })),
  }, null, 1) + "\n");
}
if (failed) err(`qemu-demo: ${failed} run(s) failed`);
process.exit(failed ? 1 : 0);
