/**
 * Worker thread entry of src/transport/remote-strategy.ts: builds one migration's strategy, trains it
 * on the history, then answers its faults. Messages are handled strictly in arrival order.
 */
import { parentPort } from "node:worker_threads";
import { getPriority, setPriority } from "node:os";
import type { Strategy } from "../strategies/types.js";
import type { StrategySpec, TrainingHistory } from "./remote-strategy.js";

interface Msg {
  t: "init" | "fault" | "present";
  spec?: StrategySpec;
  history?: TrainingHistory;
  id?: number;
  page?: number;
  stream?: number;
  touches?: Uint32Array;
  /** The page is already on the wire (an in-flight wait): feedback only, no onFault (as the simulator). */
  inflight?: boolean;
  present?: Uint32Array;
}

const port = parentPort!;
let strategy: Strategy | null = null;
let chain: Promise<void> = Promise.resolve();

async function build(spec: StrategySpec): Promise<Strategy> {
  if (spec.kind === "engine") {
    const { createPredictorStrategy } = await import("../strategies/predictor-strategy.js");
    return createPredictorStrategy(spec.options);
  }
  const { createStrategy } = await import("../strategies/index.js");
  // the push the source runs, for push-aware strategies
  // and what it trains on (a recorded history turns the engine's training filter off)
  const ctx = { pageCount: spec.pageCount, depth: spec.depth, streams: spec.streams, push: spec.push, history: spec.history };
  return createStrategy(spec.name, ctx);
}

function presentAll(pages: Uint32Array | undefined): void {
  if (!pages || !strategy?.onPresent) return;
  for (let i = 0; i < pages.length; i++) strategy.onPresent(pages[i]);
}

/** Nice increment of this thread while it builds and trains (Linux: nice values are per thread). */
const TRAIN_NICE = 10;

/**
 * Lower this thread's scheduling priority for the build and training, if it can be raised back
 * afterwards (raising needs CAP_SYS_NICE or RLIMIT_NICE; probed with a step of 1 first, so that
 * without the right this thread stays at most one step lower). Returns the restore function.
 * Training is CPU-bound and runs while other migrations replay: on a machine with fewer cores than
 * runnable threads it would otherwise take the CPU from their destinations and the server's event loop.
 */
function lowerPriority(): () => void {
  let prio: number;
  try { prio = getPriority(); setPriority(Math.min(19, prio + 1)); } catch { return () => {}; }
  try { setPriority(prio); } catch { return () => {}; }
  try { setPriority(Math.min(19, prio + TRAIN_NICE)); } catch { return () => {}; }
  return () => { try { setPriority(prio); } catch { /* stays lower */ } };
}

async function handle(m: Msg): Promise<void> {
  if (m.t === "init") {
    const restore = lowerPriority();
    try {
      const t0 = performance.now();
      strategy = await build(m.spec!);
      // The engine's first predictions in a thread pay for V8 tiering its Wasm up (calls of 1-3 ms):
      // taken here, before the switch-over, not on the first faults (engine/warm-up.ts).
      if (m.spec!.kind === "engine" || m.spec!.name.startsWith("ppm")) (await import("../engine/warm-up.js")).warmUp();
      if (m.history && strategy.train) strategy.train(m.history.pages, m.history.streams);
      restore();
      // a strategy that steers the push says in which order (SimStrategy.push); the source runs it
      const push = (strategy as { push?: string }).push;
      port.postMessage({ t: "ready", name: strategy.name, trainMs: performance.now() - t0, push });
    } catch (e) {
      restore();
      port.postMessage({ t: "error", message: (e as Error).message });
    }
    return;
  }
  const s = strategy;
  if (!s) return;
  if (m.t === "present") { presentAll(m.present); return; }
  presentAll(m.present);
  try {
    const t0 = process.hrtime.bigint();
    const touches = m.touches!;
    if (s.onTouch) for (let i = 0; i + 1 < touches.length; i += 2) s.onTouch(touches[i], touches[i + 1]);
    const pages = m.inflight ? new Uint32Array(0) : Uint32Array.from(s.onFault(m.page!, m.stream!) as ArrayLike<number>);
    const ns = Number(process.hrtime.bigint() - t0);
    port.postMessage({ t: "answer", id: m.id, pages, ns }, [pages.buffer]);
    s.maintain?.(); // after the answer left: the engine's upkeep never delays this fault's pages
  } catch (e) {
    port.postMessage({ t: "answer", id: m.id, message: `strategy ${s.name} failed: ${(e as Error).message}` });
  }
}

port.on("message", (m: Msg) => { chain = chain.then(() => handle(m)); });
