/**
 * `ppm-prefetch serve`: the source page server of a real post-copy transfer over TCP.
 *
 * Holds a memory image (`--image FILE`, read page by page; `--generate SIZE` writes a seeded one there,
 * atomically, once every option, the history and the listening address passed their checks), builds
 * and trains a fresh strategy per migration in a worker thread on the history (`--history TRACE`: its
 * first `--switch-at` fraction, placed with `--layout`/`--layout-seed` exactly as `migrate` places the
 * rest) and serves up to `--max-sessions` concurrent migrations until interrupted (or until
 * `--exit-after N` migrations completed).
 *
 * Errors are thrown: src/cli/main.ts prints one line (exit 2 for bad input, 1 for a runtime failure).
 */
import { parseArgs } from "node:util";
import { existsSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { UsageError, choiceOption, intOption, numberOption } from "./args.js";
import { startPageServer, demandStrategy, PUSH_MODES, type PushMode, type SessionStrategy } from "../transport/source.js";
import { deriveHistory, needsWrites, parseHistorySpec, DEFAULT_HISTORY, type HistorySpec } from "../history/sources.js";
import { MAX_IMAGE_BYTES, openImageFile, parseSize, writeImageFile, type PageImage } from "../transport/image.js";
import { shareHistory, startRemoteStrategy, type StrategySpec, type TrainingHistory } from "../transport/remote-strategy.js";
import type { Alphabet, EscapeMethod, PredictorOptions } from "../engine/types.js";
import { LAYOUTS, placePages, type LayoutName } from "../trace/layout.js";
import { checkAccesses, checkInputFile, checkOutputDir, readTraceFile } from "./input.js";
import { nameFile } from "./errors.js";

const USAGE = `usage: ppm-prefetch serve --image FILE [options]

  --image FILE          memory image (pageCount x 4096 bytes, up to 16 GiB), read page by page
  --generate SIZE       write a seeded random image of SIZE (4K..16G, a whole number of 4096-byte pages,
                        e.g. 64M) to FILE (atomically: a temporary file renamed into place), once every
                        other option, the history and the listening address have been checked; an
                        existing FILE is replaced only if it could be an image (whole 4096-byte pages)
  --image-seed N        seed of --generate (default 1)
  --host ADDR           listen address (default 127.0.0.1)
  --port N              TCP port (default 7341; 0 picks a free one)
  --push MODE           background push during the replay: none, linear (ascending), qemu (ascending; the
                        scanner jumps to the page after each fault, as QEMU's postcopy), hines (outward
                        from the latest fault) (default linear)
  --strategy NAME       a registry strategy (ppm, ppm-hybrid, next8, readahead, leap, markov1, ...) or
                        demand (default ppm). Each migration's strategy is built and trained in its own
                        worker thread, off the server's event loop
  --history TRACE       train each migration's strategy on this trace's first --switch-at fraction
  --switch-at F         fraction of the history trace before switch-over (default 0.3)
  --history-source S    what of that part a hypervisor records and the model trains on (README,
                        "History sources"): sets:10ms (default, as compare: what access-bit
                        sampling records), full (every access, in order: none records it), first-touch:T,
                        sets:T, writes:T, write-sets:T (T in guest instructions, or 10ms at 1e9
                        instructions/s), or none (each migration's model starts empty and learns online)
  --layout L            guest-physical layout of the trace: virtual, 2m, 4k (default virtual)
  --layout-seed N       seed of the layout (default 1)
  --limit N             read at most N accesses of the history trace
  --depth N             most predicted pages sent per fault (default 8)
  --streams N           vCPU streams the strategy keeps apart (default 1)
  predictor (with --strategy ppm, any of these runs the bare engine with them; unset options keep the
  engine's defaults): --order K --alphabet page|delta|hybrid --escape A|B|C|D --threshold P
                        --max-contexts N
  --delay-us N          emulated one-way delay on the server's sends (default 0)
  --rate-gbps R         emulated link rate (default 0 = unlimited)
  --push-window N       most unacknowledged pages in flight before the push waits (default 32)
  --link-queue BYTES    bytes the emulated link may hold waiting to be serialized before the push
                        waits (default 65536); a fault's page waits behind at most this much push
  --max-sessions N      most migrations at once, including those waiting for their destination to
                        reconnect (default 16); one more is refused with a "server busy" error
  --idle-timeout S      close a welcomed connection that sends nothing for S seconds (ERROR 12; its
                        session then waits for a reconnection as after an outage); default 60, 0 = never.
                        A live destination sends a keepalive while quiet (migrate --keepalive, 15 s)
  --serve-while-training
                        welcome a migration at once and serve its faults on demand (with the push)
                        while its strategy trains, instead of making its destination wait for the model
  --exit-after N        exit once N migrations completed (default 0 = serve until interrupted)
  --quiet               no per-migration log
  --json                stdout carries JSON lines only: once listening {"event":"listening","host",
                        "port","pages","digest","strategy","push","order"} (without --json: the line
                        "listening on HOST:PORT pages=... digest=... strategy=... push=... order=...";
                        order is what the push runs: ppm's own is hines, hines+history with a
                        --history), and on exit one line: the counters, the event loop (delay,
                        utilization, CPU time) and per migration the source's figures (HELLO to
                        WELCOME, training time, per-fault service time from FAULT read to page
                        written, loop time spent)
  --timeline            with --json (required): also each FAULT's read and written times (monotonic ns)
`;

/** Predictor flags: any of them turns `--strategy ppm` into the bare engine with those options. */
const ENGINE_FLAGS = ["order", "alphabet", "escape", "threshold", "max-contexts"] as const;

/**
 * The bare engine's options for `serve --strategy ppm` with engine flags. A recorded history (any
 * source but `full`) is already deduplicated: the LRU filter would drop the pages it repeats from one
 * interval to the next, so it is off, as the ppm strategy turns it off (ppm-policy.ts).
 */
export function engineOptions(pageCount: number, predOpts: Omit<PredictorOptions, "pageCount">, source: HistorySpec): PredictorOptions {
  return { pageCount, ...predOpts, ...(source.kind !== "full" ? { filter: 0 } : {}) };
}

export async function run(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      image: { type: "string" }, generate: { type: "string" }, "image-seed": { type: "string" },
      host: { type: "string" }, port: { type: "string" }, push: { type: "string" }, strategy: { type: "string" },
      history: { type: "string" }, "history-source": { type: "string" }, "switch-at": { type: "string" }, layout: { type: "string" }, "layout-seed": { type: "string" },
      limit: { type: "string" },
      order: { type: "string" }, alphabet: { type: "string" }, escape: { type: "string" }, depth: { type: "string" },
      threshold: { type: "string" }, streams: { type: "string" }, "max-contexts": { type: "string" },
      "delay-us": { type: "string" }, "rate-gbps": { type: "string" }, "exit-after": { type: "string" }, "push-window": { type: "string" },
      "max-sessions": { type: "string" }, "link-queue": { type: "string" }, "idle-timeout": { type: "string" },
      quiet: { type: "boolean" }, json: { type: "boolean" }, timeline: { type: "boolean" }, "serve-while-training": { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) { process.stdout.write(USAGE); return 0; }
  if (!v.image) throw new UsageError("--image FILE is required");
  const port = intOption("port", v.port, 7341, 0, 65535);
  const push = choiceOption<PushMode>("push", v.push, "linear", PUSH_MODES);
  const switchAt = numberOption("switch-at", v["switch-at"], 0.3, 0, 1);
  const layout = choiceOption<LayoutName>("layout", v.layout, "virtual", LAYOUTS);
  const layoutSeed = intOption("layout-seed", v["layout-seed"], 1, 0, 0xffffffff);
  const limit = v.limit === undefined ? 0 : intOption("limit", v.limit, 0, 1, 0xffffffff); // as compare: at most N (>= 1); absent, the whole trace
  const depth = intOption("depth", v.depth, 8, 0, 256);
  const pushWindow = intOption("push-window", v["push-window"], 32, 1, 1 << 20);
  const maxSessions = intOption("max-sessions", v["max-sessions"], 16, 1, 4096);
  const idleTimeoutMs = numberOption("idle-timeout", v["idle-timeout"], 60, 0, 86400) * 1000;
  const exitAfter = intOption("exit-after", v["exit-after"], 0, 0, 1e9);
  const imageSeed = intOption("image-seed", v["image-seed"], 1, 0, 0xffffffff);
  const link = {
    delayUs: numberOption("delay-us", v["delay-us"], 0, 0, 1e7), rateGbps: numberOption("rate-gbps", v["rate-gbps"], 0, 0, 1e4),
    queueBytes: intOption("link-queue", v["link-queue"], 65536, 1, 1 << 30),
  };
  const strategyName = v.strategy ?? "ppm";
  const streams = intOption("streams", v.streams, 1, 1, 4096);
  const predOpts: Omit<PredictorOptions, "pageCount"> = {
    order: intOption("order", v.order, 3, 1, 8),
    alphabet: choiceOption<Alphabet>("alphabet", v.alphabet, "hybrid", ["page", "delta", "hybrid"]),
    escape: choiceOption<EscapeMethod>("escape", v.escape, "C", ["A", "B", "C", "D"]),
    depth,
    threshold: numberOption("threshold", v.threshold, 0, 0, 1),
    streams,
    ...(v["max-contexts"] !== undefined ? { maxContexts: intOption("max-contexts", v["max-contexts"], 0, 1, 2 ** 31) } : {}),
  };
  // explicit options only: the engine's own defaults stay in charge of what the user did not set
  for (const k of ["order", "alphabet", "escape", "threshold", "streams"] as const) {
    if (v[k] === undefined) delete (predOpts as Record<string, unknown>)[k];
  }
  const engineFlags = ENGINE_FLAGS.filter((k) => v[k] !== undefined);
  // Options that only act with another one were accepted and ignored without it: say so instead.
  const needs: [string, boolean, string][] = [
    ["switch-at", v.history !== undefined, "--history TRACE"], ["layout", v.history !== undefined, "--history TRACE"],
    ["layout-seed", v.history !== undefined, "--history TRACE"], ["limit", v.history !== undefined, "--history TRACE"],
    ["image-seed", v.generate !== undefined, "--generate SIZE"],
  ];
  for (const [k, ok, what] of needs) if (v[k as keyof typeof v] !== undefined && !ok) throw new UsageError(`--${k} needs ${what} (without it nothing reads it)`);
  if (strategyName === "demand" && engineFlags.length > 0) {
    throw new UsageError(`--${engineFlags[0]} is an engine option: it has no effect with --strategy demand (it predicts nothing)`);
  }
  // named even when --history-source none leaves it unread
  if (v.history !== undefined) await checkInputFile("--history", v.history);
  let source: HistorySpec = parseHistorySpec(DEFAULT_HISTORY);
  if (v["history-source"] !== undefined) {
    try { source = parseHistorySpec(v["history-source"]); } catch (e) {
      // (parseHistorySpec lists every source; serve takes all but `earlier`)
      throw new UsageError(`--history-source: ${(e as Error).message.replace(", earlier,", ",")}`);
    }
    if (source.kind === "earlier") throw new UsageError("--history-source earlier is not a serve option: a model carried from an earlier migration is the QEMU proxy's --model FILE");
    if (source.kind !== "none" && !v.history) throw new UsageError(`--history-source ${v["history-source"]} needs --history TRACE`);
  }

  // the strategy, checked now (not on the first connection)
  const reg = await import("../strategies/index.js");
  let spec: ((pc: number) => StrategySpec) | null = null;
  if (strategyName === "demand") {
    spec = null;
  } else if (strategyName === "ppm" && (engineFlags.length > 0 || !reg.isStrategyName("ppm"))) {
    spec = (pc) => ({ kind: "engine", options: engineOptions(pc, predOpts, source) });
  } else if (reg.isStrategyName(strategyName) && reg.STRATEGIES[strategyName].simulatorOnly) {
    throw new UsageError(`--strategy ${strategyName} reads the future trace, which only the simulator has (try \`compare\`); serve runs one of ${reg.LIVE_STRATEGY_NAMES.join(", ")}`);
  } else if (reg.isStrategyName(strategyName)) {
    if (engineFlags.length > 0) throw new UsageError(`--${engineFlags[0]} applies to --strategy ppm only, not ${strategyName}`);
    spec = (pc) => ({ kind: "registry", name: strategyName, pageCount: pc, depth, streams, push, history: source.kind });
  } else {
    throw new UsageError(`--strategy must be one of ${reg.LIVE_STRATEGY_NAMES.join(", ")}, got ${JSON.stringify(strategyName)}`);
  }

  // Everything the run depends on is checked before anything is written: the options, the image (or
  // the place --generate writes it), the strategy, the history and the listening address. Only then
  // is the image generated, so that a refused run leaves the file named by --image as it was.
  if (v.timeline && !v.json) throw new UsageError("--timeline needs --json (the timeline is part of the JSON record printed on exit)");
  let generateBytes = 0;
  let image: PageImage | null = null;
  let pageCount: number;
  if (v.generate !== undefined) {
    let bytes: number;
    try { bytes = parseSize(v.generate); } catch (e) { throw new UsageError(`--generate: ${(e as Error).message}`); }
    if (bytes < 4096 || bytes > MAX_IMAGE_BYTES) throw new UsageError(`--generate must be 4K..16G, got ${JSON.stringify(v.generate)}`);
    if (bytes % 4096 !== 0) {
      throw new UsageError(`--generate must be a whole number of 4096-byte pages, got ${JSON.stringify(v.generate)} (${bytes} bytes = ` +
        `${Math.floor(bytes / 4096)} pages and ${bytes % 4096} bytes)`);
    }
    await checkOutputDir(v.image, "--image");
    // Replacing an image is what --generate is for; replacing anything else (a trace named by mistake)
    // is not: an existing file is overwritten only if it could be an image (whole 4096-byte pages).
    const old = existsSync(v.image) ? statSync(v.image) : null;
    if (old && (!old.isFile() || old.size % 4096 !== 0)) { // (an empty file holds nothing to lose)
      throw new UsageError(`--image ${v.image} exists and is not a memory image (${old.isFile() ? `${old.size} bytes, not whole 4096-byte pages` : "not a regular file"}): --generate would overwrite it; remove it or name another file`);
    }
    generateBytes = bytes;
    pageCount = bytes / 4096;
  } else {
    await checkInputFile("--image", v.image, "use --generate SIZE to create one");
    if (!statSync(v.image).isFile()) throw new UsageError(`--image ${v.image} is not a regular file`);
    image = await openImage(v.image);
    pageCount = image.pageCount;
  }

  try {
    if (spec) {
      // build one now so that bad options fail here (a RangeError naming the option), not per migration
      const s = spec(pageCount);
      try {
        if (s.kind === "engine") {
          const { createPredictorStrategy } = await import("../strategies/predictor-strategy.js");
          createPredictorStrategy(s.options).dispose?.();
        } else {
          const ctx = { pageCount: s.pageCount, depth: s.depth, streams: s.streams, push: s.push };
          (await reg.createStrategy(s.name, ctx)).dispose?.();
        }
      } catch (e) {
        throw new UsageError(`--strategy ${strategyName}: ${(e as Error).message}`);
      }
    }

    let history: TrainingHistory | null = null;
    if (v.history && source.kind !== "none") {
      const path = v.history;
      // as every command reads a trace: a malformed one is bad input (exit 2), an unreadable file (permissions) exit 1, named either way
      const t = await readTraceFile(path, limit ? { limit } : {});
      checkAccesses(`--history ${path}`, t.length);
      let placed: ReturnType<typeof placePages>;
      try { placed = placePages(t.pages, { layout, vmPages: pageCount, seed: layoutSeed }); } catch (e) {
        // the 2m/4k layouts find no room in a smaller image: the user's input, named, not an internal error
        if (e instanceof RangeError) throw new UsageError(`the history ${path} does not fit the image ${v.image} (${pageCount} pages) in layout ${layout}: ${e.message}`);
        throw e;
      }
      if (placed.pageCount > pageCount) {
        throw new UsageError(`the history ${path} spans ${placed.pageCount} pages (layout ${layout}), the image ${v.image} has ${pageCount}: ` +
          `a truncated image, or the wrong one?`);
      }
      const n = Math.floor(t.length * switchAt);
      if (n === 0) {
        throw new UsageError(`--history ${path}: its first --switch-at ${switchAt} of ${t.length} accesses holds none to train on ` +
          `(raise --switch-at, or use --history-source none for a model that starts empty)`);
      }
      const before = { pages: placed.pages.subarray(0, n), gaps: t.gaps.subarray(0, n), streams: t.streams.subarray(0, n), writes: t.writes?.subarray(0, n) };
      if (needsWrites(source.kind) && !t.writes) throw new UsageError(`--history-source ${source.kind} needs a trace that records writes (the r/w kind column); ${path} does not`);
      history = shareHistory(deriveHistory(before, source));
    }

    if (!image) {
      // the address, before an image is generated for a server that cannot listen (with an image
      // already there, the server's own listen reports the same errors)
      await probeListen(v.host ?? "127.0.0.1", port, v.host);
      // a failure names the image the user gave, not the temporary file beside it
      try { await writeImageFile(v.image, generateBytes, imageSeed); } catch (e) { throw nameFile(e, v.image, true); }
      image = await openImage(v.image);
    }
    const log = (s: string) => { if (!v.quiet) process.stderr.write(`serve: ${s}\n`); };
    let completed = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => { done = r; });
    const makeSession = async (pc: number, sessionId: string, signal: AbortSignal): Promise<SessionStrategy> => {
      if (!spec) { log(`migration ${sessionId.slice(0, 8)}: demand`); return demandStrategy(); }
      // the signal: a session that ends (the server closes) while queued for training is not trained
      const s = await startRemoteStrategy(spec(pc), history ?? undefined, { signal });
      log(`migration ${sessionId.slice(0, 8)}: ${s.name}${history ? `, trained on ${history.pages.length} accesses in ${s.trainMs.toFixed(1)} ms (worker thread)` : ""}`);
      return s;
    };
    let server;
    try {
      server = await startPageServer({
        image, host: v.host ?? "127.0.0.1", port, push, depth: 256, link, pushWindow, maxSessions, idleTimeoutMs, timeline: !!v.timeline,
        waitForStrategy: !v["serve-while-training"],
        strategy: ({ pageCount: pc, sessionId, signal }) => makeSession(pc, sessionId, signal),
        onError: (e, sid) => log(`connection${sid ? ` of ${sid.slice(0, 8)}` : ""} closed: ${e.message}`),
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND") throw new UsageError(`--host ${v.host}: cannot listen there (${err.code})`);
      throw e; // EADDRINUSE, EACCES: runtime failures, reported in one line by main
    }
    const timer = setInterval(() => {
      const st = server.stats();
      if (st.sessionsCompleted !== completed) {
        completed = st.sessionsCompleted;
        log(`${completed} migration(s) completed; ${st.pagesSent} pages sent (${st.faultPages} fault, ${st.predictedPages} predicted, ${st.pushedPages} pushed)`);
        if (exitAfter && completed >= exitAfter) done();
      }
    }, 50);
    // The handlers before the line that announces the server: a supervisor that reads it and at once
    // sends SIGTERM must get the orderly stop (on Linux a pipe write is synchronous, so the line can be
    // read before the next statement runs).
    const stop = () => done();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    // with --json, stdout carries JSON lines only: this one first, the report on exit last
    // `push` is what was asked; `order` what the push runs: a strategy that carries its own push (the
    // `ppm` policy: Hines' bubbling with its history's replay; `qemu`; `hines`) sets the order (source.ts).
    const trained = v.history !== undefined && source.kind !== "none";
    const own = spec === null ? undefined : strategyName === "ppm" && engineFlags.length === 0 ? (trained ? "hines+history" : "hines")
      : strategyName === "qemu" || strategyName === "hines" ? strategyName : undefined;
    const order = push === "none" ? "none" : own ?? push;
    const listening = { host: server.host, port: server.port, pages: pageCount, digest: server.digest.toString("hex"), strategy: strategyName, push, order };
    process.stdout.write(v.json ? JSON.stringify({ event: "listening", ...listening }) + "\n"
      : `listening on ${listening.host}:${listening.port} pages=${listening.pages} digest=${listening.digest} strategy=${listening.strategy} push=${listening.push} order=${listening.order}\n`);
    await finished;
    clearInterval(timer);
    if (v.json) {
      process.stdout.write(JSON.stringify({ stats: server.stats(), loop: server.loopMetrics(), sessions: server.sessionMetrics() }) + "\n");
    }
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await server.close();
    return 0;
  } finally {
    image?.close();
  }
}

/** Open the image; a size that is not whole pages (or too big) is bad input naming the file. */
async function openImage(path: string): Promise<PageImage> {
  try { return await openImageFile(path); } catch (e) {
    if (e instanceof RangeError) throw new UsageError(`--image: ${e.message}`);
    throw e;
  }
}

/**
 * Listen on the address once and close again: an address not on this host (bad input, exit 2) or a
 * port in use (exit 1) is found before the image is generated. The server itself listens later.
 */
async function probeListen(host: string, port: number, given: string | undefined): Promise<void> {
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once("error", reject);
      probe.listen({ host, port, exclusive: true }, () => resolve());
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND") throw new UsageError(`--host ${given ?? host}: cannot listen there (${err.code})`);
    throw e; // EADDRINUSE, EACCES: runtime failures, reported in one line by main
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
