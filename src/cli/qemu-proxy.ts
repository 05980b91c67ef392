/**
 * `ppm-prefetch qemu-proxy --listen HOST:PORT --target HOST:PORT [options]`: a return-path proxy between
 * a source QEMU and a destination QEMU that appends predicted page requests to the destination's.
 */
import dns from "node:dns/promises";
import net from "node:net";
import { parseArgs } from "node:util";
import type { Alphabet, EscapeMethod } from "../engine/types.js";
import { QemuProxy, type MigrationReport } from "../qemu/proxy.js";
import type { RamBlockInfo, RamLayout } from "../qemu/injector.js";
import { loadEngine, PREDICT_KINDS, strategyFactory, type PredictKind } from "../qemu/strategies.js";
import { checkModelFile, readModel, replaceModel } from "../qemu/model.js";
import { DEFAULT_QEMU_POLICY } from "../qemu/policy.js";
import { choiceOption, intOption, numberOption, UsageError } from "./args.js";

const HELP = `usage: ppm-prefetch qemu-proxy --listen HOST:PORT --target HOST:PORT [options]

Point the source QEMU's migrate at --listen and the proxy at the destination's -incoming address.
Forward bytes pass untouched; after each page request on the return path, the proxy appends
REQ_PAGES messages for predicted pages of the same RAMBlock.

  --listen HOST:PORT     where the source QEMU connects (PORT 0: any free port, printed)
  --target HOST:PORT     the destination QEMU's -incoming tcp address (a host name must resolve at
                         start; the destination itself may come up later)
  --delay-ms N           one-way delay added to each direction (round trip 2N), default 0
  --return-delay-ms N    delay of the return path only (overrides --delay-ms there)
  --rate-mbps N          rate limit per direction in Mbit/s, default unlimited
  --predict KIND         ppm | ppm-sim | next8 | none (default ppm)
                         ppm: the engine under the QEMU policy (learns online; at most --max-pages
                         pages with path probability >= --min-confidence, and only while nothing the
                         proxy injected is still queued at the source; a model that starts empty
                         injects nothing until its held-back predictions were right >= 50% of >= 5
                         checks; before QEMU 8.0 each injection ends with the page after the fault;
                         from 8.0 on without postcopy-preempt it steers QEMU's push: each page with
                         the 63 after it, the scan return, and a switch-over preload from --model)
  --model FILE           ppm: start each migration from this model when the file exists, and replace
                         it (atomically) with what was learned when a migration completes. FILE's
                         directory must exist, and a file already there must be a model file (one a
                         migration saved); else the proxy does not start (exit 2)
  --max-pages N          ppm: most pages injected per request (default by the migration's QEMU, from
                         the machine type its stream names: ${DEFAULT_QEMU_POLICY.maxPages} before 8.0 or when unknown, 4 from 8.0 on)
  --scan-return on|off   end each injection with the page after the fault, where QEMU's background
                         scan continues (default by QEMU: on before 8.0 or when unknown; from 8.0
                         on, off with postcopy-preempt, where the return-path thread serves requests
                         without moving the scan, and on without it)
  --min-confidence P     ppm: least path probability of an injected page (default ${DEFAULT_QEMU_POLICY.minConfidence})
  --depth N              ppm-sim: most pages predicted per request (default 16)
  --order K              PPM context order (engine default if unset)
  --alphabet A           page | delta | hybrid
  --escape M             A | B | C | D
  --threshold P          stop extending a prediction below this probability
  --memory-bytes N       engine memory budget, at most 4 GiB (default for ppm: an arena of 2^14
                         contexts, a model file of ~1.6 MB)
  --block NAME=BYTES     RAMBlock size (repeatable); default: learnt from the migration stream. When
                         the stream announces its RAMBlock list, a --block that disagrees with it
                         is reported (layoutConflict) and the stream's list is used
  --once                 exit after the first migration (exit 1 unless it completed)
  --json                 one JSON report per migration on stdout
  --quiet                no log lines on stderr
`;

/** `HOST:PORT`; the listening side may take port 0 (any free port), a target may not. */
function hostPort(name: string, raw: string | undefined, minPort: 0 | 1): { host: string; port: number } {
  if (!raw) throw new UsageError(`--${name} HOST:PORT is required`);
  const m = /^(.*):(\d+)$/.exec(raw);
  if (!m) throw new UsageError(`--${name} must be HOST:PORT, got ${JSON.stringify(raw)}`);
  const port = Number(m[2]);
  if (port < minPort || port > 65535) {
    throw new UsageError(`--${name} must be HOST:PORT with PORT in ${minPort}..65535, got ${JSON.stringify(raw)}` +
      (port === 0 ? " (port 0 is not an address to connect to)" : ""));
  }
  return { host: m[1].replace(/^\[(.*)\]$/, "$1") || "127.0.0.1", port };
}

/**
 * The target checked at start, without connecting (the destination may start listening later): its
 * host must be an IP address or a DNS name (RFC 1123 labels), and a name must resolve now. Found at
 * the first connection instead, a typo only showed as a failed migration.
 */
async function checkTarget(raw: string, host: string): Promise<void> {
  if (net.isIP(host)) return;
  const label = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length > 253 || !name.split(".").every((l) => label.test(l))) {
    throw new UsageError(`--target must be HOST:PORT with HOST an IP address or a host name, got ${JSON.stringify(raw)}`);
  }
  try {
    await dns.lookup(host);
  } catch (e) {
    throw new UsageError(`--target ${raw}: the host name ${JSON.stringify(host)} does not resolve (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function parseBlocks(raw: string[] | undefined): RamBlockInfo[] | undefined {
  if (!raw || raw.length === 0) return undefined;
  return raw.map((s) => {
    const m = /^(.+)=(\d+)([KMG]?)$/i.exec(s);
    if (!m) throw new UsageError(`--block must be NAME=BYTES, got ${JSON.stringify(s)}`);
    const mult = { "": 1, K: 1024, M: 1 << 20, G: 1 << 30 }[m[3].toUpperCase() as "" | "K" | "M" | "G"];
    const size = Number(m[2]) * mult;
    if (size <= 0 || size % 4096 !== 0) throw new UsageError(`--block ${m[1]}: size must be a positive multiple of 4096`);
    // a RAMBlock the proxy keeps a bitmap for: at most what the engine addresses (2^32 pages of 4 KiB)
    if (!Number.isSafeInteger(size) || size > 2 ** 44) throw new UsageError(`--block ${m[1]}: size must be at most 16T (2^44 bytes, 2^32 pages), got ${JSON.stringify(s)}`);
    if (Buffer.byteLength(m[1]) > 255) throw new UsageError(`--block: a RAMBlock name is at most 255 bytes (QEMU sends it with a one-byte length), got ${Buffer.byteLength(m[1])} bytes`);
    return { name: m[1], size };
  }).map((b, i, all) => {
    if (all.findIndex((x) => x.name === b.name) !== i) throw new UsageError(`--block names ${b.name} twice`);
    return b;
  });
}

export function formatReport(r: MigrationReport): string {
  const s = r.stats;
  return [
    `migration ${r.id}: ${r.error ? `FAILED (${r.error})` : r.phase}${r.completedIn && r.completedIn !== "postcopy" ? ` (in ${r.completedIn})` : ""} after ${r.durationMs} ms, ${r.connections} connection(s)` +
      (r.pauses ? `, paused ${r.pauses}x, resumed ${r.resumes}x` : ""),
    `  strategy: ${r.strategy ? `${r.strategy.name}${r.strategy.origin ? ` (model ${r.strategy.origin})` : ""}${r.strategy.gated !== undefined ? `, ${r.strategy.gated} requests gated (injected pages still queued)` : ""}` : "none"}` +
      (r.modelSaved !== undefined ? `; model ${typeof r.modelSaved === "number" ? `saved (${r.modelSaved} bytes)` : r.modelSaved}` : ""),
    `  service (request -> page going forward): destination median ${r.service.dest.median} ms, p90 ${r.service.dest.p90} ms over ${r.service.dest.count}` +
      ` (source queue empty of injected pages: ${r.service.destQueueEmpty.median} ms over ${r.service.destQueueEmpty.count}; busy: ${r.service.destQueueBusy.median} ms over ${r.service.destQueueBusy.count}); injected median ${r.service.injected.median} ms over ${r.service.injected.count}; stream ${r.service.followed.main}`,
    `  layout: ${r.layout ? r.layout.map((b) => `${b.name}=${b.size}`).join(" ") : "unknown"} (${r.layoutSource}${r.layoutNote ? `: ${r.layoutNote}` : ""})` +
      (r.layoutConflict ? `\n  WARNING: ${r.layoutConflict}` : ""),
    `  requests ${s.requests} (${s.requestedPages} pages, ${s.requestsForInjected} for injected pages, ${s.unknownBlockRequests} in unknown blocks)`,
    `  injected ${s.injectedPages} pages in ${s.injectedMessages} messages, ${s.droppedPredictions} predictions dropped` +
      (r.discards.commands ? `; ${s.discardedPages} present pages discarded by the source (${r.discards.commands} POSTCOPY_RAM_DISCARD, ${r.discards.ranges} ranges${r.discards.malformed ? `, ${r.discards.malformed} malformed: ${r.discards.lastError}` : ""})` : ""),
    `  predictor per request: median ${s.predictUs.median} us, p99 ${s.predictUs.p99} us, max ${s.predictUs.max} us over ${s.predictUs.count}`,
    `  bytes forward ${r.bytesForward}, return ${r.bytesReturn} (+${r.bytesInjected} injected); messages ${JSON.stringify(r.messages)}`,
  ].join("\n");
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      listen: { type: "string" }, target: { type: "string" },
      "delay-ms": { type: "string" }, "rate-mbps": { type: "string" }, "return-delay-ms": { type: "string" },
      model: { type: "string" }, "max-pages": { type: "string" }, "min-confidence": { type: "string" }, "scan-return": { type: "string" },
      predict: { type: "string" }, depth: { type: "string" }, order: { type: "string" },
      alphabet: { type: "string" }, escape: { type: "string" }, threshold: { type: "string" },
      "memory-bytes": { type: "string" }, block: { type: "string", multiple: true },
      once: { type: "boolean" }, json: { type: "boolean" }, quiet: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const listen = hostPort("listen", values.listen, 0);
  const target = hostPort("target", values.target, 1);
  await checkTarget(values.target!, target.host);
  const delayMs = numberOption("delay-ms", values["delay-ms"], 0, 0, 10000);
  const rateMbps = numberOption("rate-mbps", values["rate-mbps"], 0, 0, 1e6);
  const returnDelayMs = values["return-delay-ms"] !== undefined ? numberOption("return-delay-ms", values["return-delay-ms"], 0, 0, 10000) : undefined;
  const predict = choiceOption<PredictKind>("predict", values.predict, "ppm", PREDICT_KINDS);
  const modelPath = values.model;
  if (modelPath !== undefined && predict !== "ppm") throw new UsageError("--model needs --predict ppm");
  const maxPages = values["max-pages"] === undefined ? undefined : intOption("max-pages", values["max-pages"], DEFAULT_QEMU_POLICY.maxPages, 1, 64);
  const scanReturn = values["scan-return"] === undefined ? undefined : choiceOption("scan-return", values["scan-return"], "on", ["on", "off"]) === "on";
  const minConfidence = numberOption("min-confidence", values["min-confidence"], DEFAULT_QEMU_POLICY.minConfidence, 0, 1);
  // options of the ppm policy alone (they were accepted and ignored with the other kinds), and the
  // engine threshold, which the ppm policy sets from --min-confidence
  for (const k of ["max-pages", "min-confidence"] as const) {
    if (values[k] !== undefined && predict !== "ppm") throw new UsageError(`--${k} is for --predict ppm, got --predict ${predict}`);
  }
  if (values.threshold !== undefined && predict === "ppm") {
    throw new UsageError(`--threshold with --predict ppm: the policy's engine stops at --min-confidence (${minConfidence}); give --min-confidence instead, got --threshold ${values.threshold}`);
  }
  const depth = intOption("depth", values.depth, 16, 0, 256);
  // ppm's pages per request are the policy's (--max-pages); a --depth there used to be ignored.
  if (values.depth !== undefined && predict !== "ppm-sim") {
    throw new UsageError(`--depth is for --predict ppm-sim (pages predicted per request); with --predict ${predict} use ${predict === "ppm" ? "--max-pages" : "neither"}, got --depth ${values.depth}`);
  }
  const engineOpts: Record<string, unknown> = predict === "ppm" ? {} : { depth };
  if (values.order !== undefined) engineOpts.order = intOption("order", values.order, 4, 1, 8);
  if (values.alphabet !== undefined) engineOpts.alphabet = choiceOption<Alphabet>("alphabet", values.alphabet, "page", ["page", "delta", "hybrid"]);
  if (values.escape !== undefined) engineOpts.escape = choiceOption<EscapeMethod>("escape", values.escape, "C", ["A", "B", "C", "D"]);
  if (values.threshold !== undefined) engineOpts.threshold = numberOption("threshold", values.threshold, 0, 0, 1);
  if (values["memory-bytes"] !== undefined) engineOpts.memoryBytes = intOption("memory-bytes", values["memory-bytes"], 0, 1, 2 ** 32);
  const engineFlag = ["order", "alphabet", "escape", "threshold", "memory-bytes"].find((k) => values[k as keyof typeof values] !== undefined);
  if (engineFlag !== undefined && predict !== "ppm" && predict !== "ppm-sim") {
    throw new UsageError(`--${engineFlag} is an engine option: it needs --predict ppm or ppm-sim, got --predict ${predict}`);
  }
  const blocks = parseBlocks(values.block);
  const log = values.quiet ? () => {} : (l: string) => process.stderr.write(l + "\n");

  if (predict === "ppm" || predict === "ppm-sim") await loadEngine();
  if (modelPath !== undefined) {
    // a file that is there must be a model (it is replaced when a migration completes), and the
    // directory it is saved into must exist: both said now, not after a migration
    let m: Uint8Array | null;
    try { m = await checkModelFile(modelPath); } catch (e) {
      throw new UsageError(`--model ${modelPath}: ${(e as Error).message}`);
    }
    log(`qemu-proxy: model ${modelPath}: ${m ? `${m.length} bytes, used when it fits the guest` : "absent, starting empty; saved when a migration completes"}`);
  }
  const loadModel = modelPath === undefined ? undefined : () => {
    try {
      return readModel(modelPath);
    } catch (e) {
      log(`qemu-proxy: cannot read the model ${modelPath} (${(e as Error).message}); starting empty`);
      return null;
    }
  };
  const factory = strategyFactory(predict, { ...engineOpts, policy: { maxPages, minConfidence }, loadModel: undefined });
  const factoryWithModel = strategyFactory(predict, { ...engineOpts, policy: { maxPages, minConfidence }, loadModel });
  // Build the predictor once now (for the declared blocks, else the smallest guest), so that options
  // the engine refuses (say --memory-bytes 5) fail here with exit code 2, not when QEMU connects.
  const declaredPages = blocks ? blocks.reduce((s, b) => s + b.size / 4096, 0) : 1;
  try {
    factory(declaredPages)?.dispose?.();
  } catch (e) {
    throw new UsageError(`the ${predict} predictor refuses these options: ${(e as Error).message}`);
  }
  // A guest larger than that may still not fit the budget: then this migration goes unpredicted.
  const makeStrategy = (pageCount: number, layout: RamLayout) => {
    try {
      const s = factoryWithModel(pageCount, layout);
      const origin = (s as { origin?: string } | null)?.origin;
      if (origin) log(`qemu-proxy: ${predict} model: ${origin}`);
      return s;
    } catch (e) {
      log(`qemu-proxy: cannot build the ${predict} predictor for ${pageCount} pages (${(e as Error).message}); forwarding without prediction`);
      return null;
    }
  };
  const proxy = new QemuProxy({
    listenHost: listen.host, listenPort: listen.port, targetHost: target.host, targetPort: target.port,
    delayMs, returnDelayMs, rateMbps: rateMbps || undefined, blocks, makeStrategy, log, scannerReturn: scanReturn,
    saveModel: modelPath === undefined ? undefined : (bytes) => {
      // what is there now may have been put there since the start: only a model is replaced
      replaceModel(modelPath, bytes);
      log(`qemu-proxy: model saved to ${modelPath} (${bytes.length} bytes)`);
    },
  });
  const addr = await proxy.listen();
  // the signal handlers first: a supervisor may stop the proxy as soon as it reads the line below
  const finished = new Promise<number>((resolve) => {
    proxy.on("migration", (r: MigrationReport) => {
      if (values.json) process.stdout.write(JSON.stringify(r) + "\n");
      log(formatReport(r));
      // --once: exit 0 only for a migration that completed (closed, failed or abandoned: 1)
      if (values.once) void proxy.close().then(() => resolve(r.error || r.phase !== "completed" ? 1 : 0));
    });
    const stop = () => void proxy.close().then(() => resolve(0));
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  log(`qemu-proxy: listening on ${addr.address}:${addr.port} -> ${target.host}:${target.port}, predict ${predict}` +
      (delayMs ? `, delay ${delayMs} ms each way` : "") + (rateMbps ? `, rate ${rateMbps} Mbit/s` : ""));
  return await finished;
}
