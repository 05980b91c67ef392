/**
 * `ppm-prefetch migrate`: the destination of a real post-copy transfer. Connects to `serve`, replays
 * the trace's accesses after switch-over against it (faulting absent pages over the network) and
 * verifies the received image against the source's digest. `--json` prints only the summary record;
 * the exit code is 1 when the image does not verify. When the connection to the source is lost it
 * reconnects with exponential backoff (10 ms doubling to 500 ms) for up to `--reconnect-timeout`
 * seconds and resumes the same session. Errors are thrown: src/cli/main.ts prints one line (exit 2
 * for bad input, 1 for a runtime failure: the network, the source refusing, a lost link).
 */
import { parseArgs } from "node:util";
import { UsageError, choiceOption, intOption, numberOption } from "./args.js";
import { RuntimeFailure } from "./errors.js";
import { lookup } from "node:dns/promises";
import { checkAccesses, checkInputFile, readTraceFile } from "./input.js";
import { ReconnectError, runMigration, TraceMismatchError, type MigrationResult } from "../transport/destination.js";
import { LAYOUTS, type LayoutName } from "../trace/layout.js";

const USAGE = `usage: ppm-prefetch migrate --connect HOST:PORT --trace FILE [options]

  --connect HOST:PORT   the page server (ppm-prefetch serve)
  --trace FILE          the trace (text, gzip or binary); the part after --switch-at is replayed
  --switch-at F         fraction of the trace before switch-over (default 0.3; same as the server's)
  --layout L            guest-physical layout: virtual, 2m, 4k (default virtual; same as the server's)
  --layout-seed N       seed of the layout (default 1)
  --limit N             read at most N accesses of the trace
  --ips N               guest instructions per second for the trace's gaps (default 1e9; 0 = no guest time)
  --delay-us N          emulated one-way delay on the destination's sends (default 0)
  --rate-gbps R         emulated link rate (default 0 = unlimited)
  --timeout-ms N        give up after N ms (default 0 = never)
  --reconnect-timeout S when the link to the source is lost (a restarted source, an outage), keep
                        reconnecting with backoff for up to S seconds (default 30)
  --idle-timeout S      with a fault request outstanding (or pages missing after the replay), a source silent for S seconds is taken for gone
                        (a host that vanished without closing): reconnect (default 60, 0 = never)
  --keepalive S         while connected, send a keepalive after S seconds without sending anything, so
                        that the source's idle timeout (serve --idle-timeout, 60 s) does not close a
                        quiet migration (default 15, 0 = never; keep it under the source's timeout)
  --json                print only the summary record as JSON
  --timeline            with --json (required): also the session id, this process's CPU time and each fault
                        request's page, send and arrival times (monotonic ns)
`;

function parseConnect(s: string | undefined): { host: string; port: number } {
  if (!s) throw new UsageError("--connect HOST:PORT is required");
  const i = s.lastIndexOf(":");
  const host = i > 0 ? s.slice(0, i).replace(/^\[|\]$/g, "") : "127.0.0.1";
  const raw = i >= 0 ? s.slice(i + 1) : s, port = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--connect must be HOST:PORT or PORT, with PORT an integer in 1..65535; got ${JSON.stringify(s)}`);
  }
  return { host, port };
}

export async function run(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      connect: { type: "string" }, trace: { type: "string" }, "switch-at": { type: "string" }, layout: { type: "string" },
      "layout-seed": { type: "string" }, limit: { type: "string" }, ips: { type: "string" }, "delay-us": { type: "string" },
      "rate-gbps": { type: "string" }, "timeout-ms": { type: "string" }, "reconnect-timeout": { type: "string" }, "idle-timeout": { type: "string" }, keepalive: { type: "string" }, json: { type: "boolean" }, timeline: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) { process.stdout.write(USAGE); return 0; }
  const { host, port } = parseConnect(v.connect);
  if (!v.trace) throw new UsageError("--trace FILE is required");
  if (v.timeline && !v.json) throw new UsageError("--timeline needs --json (the timeline is part of the JSON record)");
  const switchAt = numberOption("switch-at", v["switch-at"], 0.3, 0, 1);
  const layout = choiceOption<LayoutName>("layout", v.layout, "virtual", LAYOUTS);
  const seed = intOption("layout-seed", v["layout-seed"], 1, 0, 0xffffffff);
  const limit = v.limit === undefined ? 0 : intOption("limit", v.limit, 0, 1, 0xffffffff); // as compare: at most N (>= 1); absent, the whole trace
  const ips = numberOption("ips", v.ips, 1e9, 0, 1e13);
  const timeoutMs = intOption("timeout-ms", v["timeout-ms"], 0, 0, 1e9);
  const reconnectTimeoutMs = numberOption("reconnect-timeout", v["reconnect-timeout"], 30, 0, 86400) * 1000;
  const idleTimeoutMs = numberOption("idle-timeout", v["idle-timeout"], 60, 0, 86400) * 1000;
  const keepAliveMs = numberOption("keepalive", v.keepalive, 15, 0, 86400) * 1000;
  const link = { delayUs: numberOption("delay-us", v["delay-us"], 0, 0, 1e7), rateGbps: numberOption("rate-gbps", v["rate-gbps"], 0, 0, 1e4) };

  await checkInputFile("--trace", v.trace);
  // as every command reads a trace: a malformed one is bad input (exit 2), an unreadable file (permissions) exit 1, named either way
  const trace = await readTraceFile(v.trace, limit ? { limit } : {});
  checkAccesses(`--trace ${v.trace}`, trace.length);
  // the destination replays the accesses from floor(length * switchAt) on (src/transport/destination.ts)
  const replayed = trace.length - Math.min(trace.length, Math.floor(trace.length * switchAt));
  if (replayed === 0) {
    throw new UsageError(`--switch-at ${switchAt} leaves none of the ${trace.length} accesses of ${v.trace} to replay (give a fraction below 1)`);
  }
  // a host name that does not resolve is bad input now, not after --reconnect-timeout seconds of retries
  try { await lookup(host); } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOTFOUND") throw new UsageError(`--connect ${v.connect}: host ${host} not found (ENOTFOUND)`);
    // EAI_AGAIN and the like may pass: the reconnection loop retries them
  }
  let connected = false;
  let r: MigrationResult;
  try {
    r = await runMigration({
      host, port, trace, switchAt, layout, seed, ips, link, timeoutMs, reconnectTimeoutMs, idleTimeoutMs, keepAliveMs, timeline: v.timeline,
      onSocket: () => { connected = true; },
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (e instanceof TraceMismatchError) throw new UsageError(`--trace ${v.trace}: ${err.message}`);
    if (err.code === "ENOTFOUND" || err.code === "EADDRNOTAVAIL") throw new UsageError(`--connect ${v.connect}: ${err.message}`);
    if (typeof err.code === "string" && err.syscall) throw e; // ECONNREFUSED, ...: main names the address
    if (e instanceof ReconnectError && !connected) {
      // never connected: there was nothing to resume
      throw new RuntimeFailure(`could not connect to ${host}:${port} (${e.attempts} attempt${e.attempts === 1 ? "" : "s"} within --reconnect-timeout ${e.limitMs / 1000} s): ${e.cause.message}`);
    }
    throw new RuntimeFailure(`migration from ${host}:${port}: ${err.message}`);
  }
  if (v.json) {
    const { verified, faults, inflightWaits, stallMs, completionMs, migrationMs, pagesReceived, duplicatePages, reconnects, predictorUs, doneDelivered } = r;
    const extra = v.timeline ? { sessionId: r.sessionId, timeline: r.timeline, cpuMs: process.cpuUsage().user / 1e3 + process.cpuUsage().system / 1e3 } : {};
    process.stdout.write(JSON.stringify({ verified, faults, inflightWaits, stallMs, completionMs, migrationMs, pagesReceived, duplicatePages, reconnects, predictorUs, doneDelivered, ...extra }) + "\n");
  } else {
    process.stdout.write(describe(r, trace.name));
  }
  return r.verified ? 0 : 1;
}

function f(x: number, d = 1): string { return x.toFixed(d); }

export function describe(r: MigrationResult, name: string): string {
  const s = r.stall;
  return [
    `migration of ${r.pageCount} pages, trace ${name}: ${r.accesses} accesses replayed (guest time ${f(r.guestMs)} ms)`,
    `image            ${r.verified ? "verified" : "MISMATCH"} sha256 ${r.digest}${r.verified ? "" : ` (source ${r.expectedDigest})`}`,
    `faults           ${r.faults} network faults, ${r.inflightWaits} waits for pages already on the wire (${r.requests} requests)`,
    `stall            ${f(r.stallMs)} ms total; per fault mean ${f(s.meanUs)} us, p50 ${f(s.p50Us)}, p90 ${f(s.p90Us)}, p99 ${f(s.p99Us)}, max ${f(s.maxUs)} us`,
    `completion       ${f(r.completionMs)} ms (switch-over to last access)`,
    `migration        ${f(r.migrationMs)} ms (switch-over to last page)`,
    `pages            ${r.pagesReceived} received (${r.received.fault} fault, ${r.received.predicted} predicted, ${r.received.push} pushed), ${r.duplicatePages} duplicates, ${r.reconnects} reconnections`,
    `prefetch         ${r.used.predicted}/${r.received.predicted} predicted pages touched before the end (accuracy ${r.received.predicted ? `${f(100 * r.accuracy)}%` : "-"}), ${r.used.push} pushed pages touched`,
    `predictor        ${f(r.predictorUs)} us on the fault path (${r.requests ? f(r.predictorUs / r.requests, 2) : "0"} us per request)`,
    ...(r.doneDelivered ? [] : ["end              DONE not acknowledged: the source could not be reached again after the last page (its session ends at its TTL)"]),
    "",
  ].join("\n");
}
