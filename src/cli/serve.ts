/**
 * `ppm-prefetch serve`: the source page server of a real post-copy transfer over TCP.
 *
 * Holds a memory image (`--image FILE`; `--generate SIZE` first writes a seeded one there), trains a
 * fresh strategy per migration on the history (`--history TRACE`: its first `--switch-at` fraction,
 * placed with `--layout`/`--layout-seed` exactly as `migrate` places the rest) and serves any number
 * of concurrent migrations until interrupted (or until `--exit-after N` migrations completed).
 */
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { UsageError, choiceOption, intOption, numberOption } from "./args.js";
import { startPageServer, demandStrategy, type PushMode } from "../transport/source.js";
import { generateImage, loadImage, parseSize, writeImage } from "../transport/image.js";
import type { Strategy } from "../strategies/types.js";
import type { Alphabet, EscapeMethod, PredictorOptions } from "../engine/types.js";
import { LAYOUTS, placePages, type LayoutName } from "../trace/layout.js";

const USAGE = `usage: ppm-prefetch serve --image FILE [options]

  --image FILE          memory image (pageCount x 4096 bytes)
  --generate SIZE       first write a seeded random image of SIZE (e.g. 64M) to FILE
  --image-seed N        seed of --generate (default 1)
  --host ADDR           listen address (default 127.0.0.1)
  --port N              TCP port (default 7341; 0 picks a free one)
  --push none|linear    background push during the replay (default linear)
  --strategy NAME       ppm (default: the engine with the options below), demand, or a registry
                        strategy (next8, readahead, leap, ppm-hybrid, ...)
  --history TRACE       train each migration's strategy on this trace's first --switch-at fraction
  --switch-at F         fraction of the history trace before switch-over (default 0.3)
  --layout L            guest-physical layout of the trace: virtual, 2m, 4k (default virtual)
  --layout-seed N       seed of the layout (default 1)
  --limit N             read at most N accesses of the history trace
  predictor (--strategy ppm; unset options keep the engine's defaults): --order K
                        --alphabet page|delta|hybrid --escape A|B|C|D --depth N (also the most pages a
                        registry strategy sends per fault, default 8) --threshold P --streams N
                        --max-contexts N
  --delay-us N          emulated one-way delay on the server's sends (default 0)
  --rate-gbps R         emulated link rate (default 0 = unlimited)
  --push-window N       most unacknowledged pages in flight before the push waits (default 32)
  --exit-after N        exit once N migrations completed (default 0 = serve until interrupted)
  --quiet               no per-migration log
`;

export async function run(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      image: { type: "string" }, generate: { type: "string" }, "image-seed": { type: "string" },
      host: { type: "string" }, port: { type: "string" }, push: { type: "string" }, strategy: { type: "string" },
      history: { type: "string" }, "switch-at": { type: "string" }, layout: { type: "string" }, "layout-seed": { type: "string" },
      limit: { type: "string" },
      order: { type: "string" }, alphabet: { type: "string" }, escape: { type: "string" }, depth: { type: "string" },
      threshold: { type: "string" }, streams: { type: "string" }, "max-contexts": { type: "string" },
      "delay-us": { type: "string" }, "rate-gbps": { type: "string" }, "exit-after": { type: "string" }, "push-window": { type: "string" },
      quiet: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) { process.stdout.write(USAGE); return 0; }
  if (!v.image) throw new UsageError("--image FILE is required");
  const port = intOption("port", v.port, 7341, 0, 65535);
  const push = choiceOption<PushMode>("push", v.push, "linear", ["none", "linear"]);
  const switchAt = numberOption("switch-at", v["switch-at"], 0.3, 0, 1);
  const layout = choiceOption<LayoutName>("layout", v.layout, "virtual", LAYOUTS);
  const layoutSeed = intOption("layout-seed", v["layout-seed"], 1, 0, 0xffffffff);
  const limit = intOption("limit", v.limit, 0, 0, 0xffffffff);
  const depth = intOption("depth", v.depth, 8, 0, 256);
  const pushWindow = intOption("push-window", v["push-window"], 32, 1, 1 << 20);
  const exitAfter = intOption("exit-after", v["exit-after"], 0, 0, 1e9);
  const link = { delayUs: numberOption("delay-us", v["delay-us"], 0, 0, 1e7), rateGbps: numberOption("rate-gbps", v["rate-gbps"], 0, 0, 1e4) };
  const strategyName = v.strategy ?? "ppm";
  const predOpts: Omit<PredictorOptions, "pageCount"> = {
    order: intOption("order", v.order, 3, 1, 8),
    alphabet: choiceOption<Alphabet>("alphabet", v.alphabet, "hybrid", ["page", "delta", "hybrid"]),
    escape: choiceOption<EscapeMethod>("escape", v.escape, "C", ["A", "B", "C", "D"]),
    depth,
    threshold: numberOption("threshold", v.threshold, 0, 0, 1),
    streams: intOption("streams", v.streams, 1, 1, 4096),
    ...(v["max-contexts"] !== undefined ? { maxContexts: intOption("max-contexts", v["max-contexts"], 0, 1, 2 ** 31) } : {}),
  };
  // explicit options only: the engine's own defaults stay in charge of what the user did not set
  for (const k of ["order", "alphabet", "escape", "depth", "threshold", "streams"] as const) {
    if (v[k] === undefined) delete (predOpts as Record<string, unknown>)[k];
  }

  if (v.generate !== undefined) {
    let bytes: number;
    try { bytes = parseSize(v.generate); } catch (e) { throw new UsageError(`--generate: ${(e as Error).message}`); }
    if (bytes < 4096 || bytes > 2 ** 34) throw new UsageError(`--generate must be 4K..16G, got ${v.generate}`);
    writeImage(v.image, generateImage(bytes, intOption("image-seed", v["image-seed"], 1, 0, 0xffffffff)));
  } else if (!existsSync(v.image)) {
    throw new UsageError(`--image ${v.image} does not exist (use --generate SIZE to create one)`);
  }
  const image = loadImage(v.image);
  const pageCount = image.length / 4096;

  let history: { pages: Uint32Array; streams: Uint16Array } | null = null;
  if (v.history) {
    const { readTrace } = await import("../trace/read.js");
    const t = await readTrace(v.history, limit ? { limit } : {});
    const placed = placePages(t.pages, { layout, vmPages: pageCount, seed: layoutSeed });
    if (placed.pageCount > pageCount) throw new UsageError(`the history spans ${placed.pageCount} pages, the image has ${pageCount}`);
    const n = Math.floor(t.length * switchAt);
    history = { pages: placed.pages.slice(0, n), streams: t.streams.slice(0, n) };
  }

  let make: (pc: number) => Strategy;
  if (strategyName === "ppm") {
    const { createPredictorStrategy } = await import("../strategies/predictor-strategy.js");
    make = (pc) => createPredictorStrategy({ pageCount: pc, ...predOpts });
  } else if (strategyName === "demand") {
    make = () => demandStrategy();
  } else {
    const reg = await import("../strategies/index.js");
    if (!reg.isStrategyName(strategyName)) throw new UsageError(`--strategy must be ppm, demand or one of ${reg.STRATEGY_NAMES.join(", ")}`);
    const factory = await reg.STRATEGIES[strategyName].load();
    make = (pc) => factory({ pageCount: pc, depth, streams: predOpts.streams ?? 1 });
  }
  // fail now, not on the first connection, if the strategy cannot be built
  make(pageCount).dispose?.();

  const log = (s: string) => { if (!v.quiet) process.stderr.write(`serve: ${s}\n`); };
  let completed = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => { done = r; });
  const server = await startPageServer({
    image, host: v.host ?? "127.0.0.1", port, push, depth: 256, link, pushWindow,
    strategy: ({ pageCount: pc, sessionId }) => {
      const t0 = performance.now();
      const s = make(pc);
      if (history && s.train) s.train(history.pages, history.streams);
      log(`migration ${sessionId.slice(0, 8)}: ${s.name}${history ? `, trained on ${history.pages.length} accesses in ${(performance.now() - t0).toFixed(1)} ms` : ""}`);
      return s;
    },
    onError: (e, sid) => log(`connection${sid ? ` of ${sid.slice(0, 8)}` : ""} closed: ${e.message}`),
  });
  const timer = setInterval(() => {
    const st = server.stats();
    if (st.sessionsCompleted !== completed) {
      completed = st.sessionsCompleted;
      log(`${completed} migration(s) completed; ${st.pagesSent} pages sent (${st.faultPages} fault, ${st.predictedPages} predicted, ${st.pushedPages} pushed)`);
      if (exitAfter && completed >= exitAfter) done();
    }
  }, 50);
  process.stdout.write(`listening on ${server.host}:${server.port} pages=${pageCount} digest=${server.digest.toString("hex")} strategy=${strategyName} push=${push}\n`);
  const stop = () => done();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await finished;
  clearInterval(timer);
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  await server.close();
  return 0;
}
