/**
 * A migration's strategy in its own worker thread, so that building and training it (and every
 * prediction) runs off the page server's event loop.
 *
 * Building a predictor costs ~85 ms here (its linear memory is laid out and cleared) and training
 * more; on the event loop that stalled every other migration's faults for as long (8 concurrent
 * migrations: 7.6 ms of stall alone, 3.5 s together). In a worker the event loop only forwards
 * messages: the source sends the faulted page at once, as before, and sends the predicted pages when
 * the worker answers (tens of microseconds later on loopback). Pages the source sends by itself reach
 * the worker in order before the next fault, so its model sees the same calls as an in-process
 * strategy would, in the same order.
 */
import { Worker } from "node:worker_threads";
import type { FullPredictorOptions } from "../engine/options.js";
import type { PushMode, PushOrder } from "../sim/push.js";
import type { HistoryKind } from "../history/sources.js";

/** How the worker builds the strategy (a plain object: it crosses the thread boundary). */
export type StrategySpec =
  /** The engine with these options (`ppm-prefetch serve --strategy ppm` with predictor flags). */
  | { kind: "engine"; options: FullPredictorOptions }
  /** A strategy of the registry (src/strategies/index.ts) by name. */
  | { kind: "registry"; name: string; pageCount: number; depth: number; streams: number; push?: PushMode; history?: HistoryKind };

export interface TrainingHistory {
  pages: Uint32Array;
  streams?: Uint16Array;
}

export interface FaultAnswer {
  /** Predicted pages, most probable first. */
  pages: Uint32Array;
  /** The strategy's time on this fault (onTouch calls + onFault), measured in the worker. */
  ns: number;
}

/** A strategy whose calls are asynchronous (the page server accepts it in place of a Strategy). */
export interface RemoteStrategy {
  readonly remote: true;
  readonly name: string;
  /** Time the worker took to build and train the strategy. */
  readonly trainMs: number;
  /** The push order the strategy runs the source's push in, when it steers it (SimStrategy.push). */
  readonly push?: PushMode;
  /** The order the source runs its push in instead of `base`, when the strategy steers it (SimStrategy.steerPush). */
  steerPush?(base: PushOrder): PushOrder;
  /**
   * Feedback (`touches`: page, stream pairs) then the fault; resolves with the predicted pages.
   * Calls are answered in order. With `inflight` the page is already on the wire (an in-flight wait,
   * docs/protocol.md): only the feedback is delivered, `onFault` is not called and no page is returned,
   * as in the simulator (src/sim/simulator.ts drops such a request after its feedback).
   */
  fault(page: number, stream: number, touches: Uint32Array, inflight?: boolean): Promise<FaultAnswer>;
  /** The source sent `page` by any path (delivered to the worker before the next fault). */
  present(page: number): void;
  dispose(): void;
}

/**
 * The history in shared memory, so that each migration's worker reads the same copy instead of
 * having it cloned into its message (a history of millions of accesses is megabytes).
 */
export function shareHistory(h: TrainingHistory): TrainingHistory {
  const share = <T extends Uint32Array | Uint16Array>(a: T, make: (b: SharedArrayBuffer) => T): T => {
    if (a.buffer instanceof SharedArrayBuffer) return a;
    const out = make(new SharedArrayBuffer(a.byteLength));
    out.set(a);
    return out;
  };
  return {
    pages: share(h.pages, (b) => new Uint32Array(b)),
    streams: h.streams ? share(h.streams, (b) => new Uint16Array(b)) : undefined,
  };
}

/** Present pages are batched; a batch this large is sent without waiting for the next fault. */
const PRESENT_BATCH = 16384;

const FROM_SOURCES = import.meta.url.endsWith(".ts");
// Run from the sources (tsx), the worker registers tsx before it loads the TypeScript entry. tsx is
// resolved once, when this module loads: a resolution goes through the loader hooks, which also
// compile the workers' modules, and must not make the event loop wait for them later.
const TSX_API = FROM_SOURCES ? import.meta.resolve("tsx/esm/api") : "";

function spawnWorker(): Worker {
  if (FROM_SOURCES) {
    const file = new URL("./strategy-worker.ts", import.meta.url).href;
    return new Worker(`import(${JSON.stringify(TSX_API)}).then((m) => { m.register(); return import(${JSON.stringify(file)}); })`, { eval: true, execArgv: [] });
  }
  return new Worker(new URL("./strategy-worker.js", import.meta.url));
}

/**
 * Most strategies built and trained at once (process-wide). Training is CPU-bound: eight at once on a
 * two-core machine starve the event loop of the server (and every other process) for seconds, while
 * one after the other they only delay their own migrations' WELCOME. Default 1; set before starting.
 */
export const trainingSlots = { max: 1 };
let training = 0;
const waiting: (() => void)[] = [];

/** Why a build was cancelled: the signal's reason when it is an Error. */
function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("the strategy's build was cancelled");
}

function acquireSlot(signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  if (training < trainingSlots.max) { training++; return Promise.resolve(); }
  return new Promise((resolve, reject) => {
    const turn = () => { signal?.removeEventListener("abort", cancel); resolve(); };
    // a cancelled build leaves the queue at once: it must not train later (after its server closed)
    const cancel = () => {
      const i = waiting.indexOf(turn);
      if (i >= 0) waiting.splice(i, 1);
      reject(abortReason(signal!));
    };
    waiting.push(turn);
    signal?.addEventListener("abort", cancel, { once: true });
  });
}

function releaseSlot(): void {
  const next = waiting.shift();
  if (next) next(); else training--;
}

/**
 * Start a worker, build and train the strategy in it; resolves once it can answer faults. At most
 * `trainingSlots.max` are built at once; the others wait their turn. `signal` cancels the build: a
 * build still waiting for its turn leaves the queue, one training terminates its worker; the promise
 * rejects with the signal's reason (the page server aborts it when the session ends or it closes).
 */
export async function startRemoteStrategy(spec: StrategySpec, history?: TrainingHistory, opts: { signal?: AbortSignal } = {}): Promise<RemoteStrategy> {
  const { signal } = opts;
  await acquireSlot(signal);
  let released = false;
  const release = () => { if (!released) { released = true; releaseSlot(); } };
  try {
    if (signal?.aborted) throw abortReason(signal);
    const s = await startWorker(spec, history, signal);
    release();
    if (spec.kind === "registry" && spec.name === "ppm" && history) {
      // The push runs here, in the source's thread: its history-replaying order is built here too.
      try {
        const { ppmPushSteering } = await import("../strategies/ppm-policy.js");
        const steer = ppmPushSteering(spec.pageCount, spec.push ?? "qemu", history.pages);
        if (steer) s.steerPush = steer;
      } catch (e) { s.dispose(); throw e; } // no worker left behind
    }
    return s;
  } finally { release(); }
}

function startWorker(spec: StrategySpec, history?: TrainingHistory, signal?: AbortSignal): Promise<RemoteStrategy> {
  const w = spawnWorker();
  w.unref();
  return new Promise<RemoteStrategy>((resolve, reject) => {
    const pending = new Map<number, { resolve: (a: FaultAnswer) => void; reject: (e: Error) => void }>();
    let nextId = 0;
    let dead: Error | null = null;
    let present: number[] = [];
    let ready = false;
    const die = (e: Error) => {
      if (dead) return;
      dead = e;
      for (const p of pending.values()) p.reject(e);
      pending.clear();
      if (!ready) reject(e);
      void w.terminate();
    };
    const flushPresent = (): Uint32Array | undefined => {
      if (present.length === 0) return undefined;
      const a = Uint32Array.from(present);
      present = [];
      return a;
    };
    // cancelled while it builds and trains: the worker is terminated, its training does not go on
    const cancel = () => { if (!ready) die(abortReason(signal!)); };
    signal?.addEventListener("abort", cancel, { once: true });
    w.on("error", (e) => die(e));
    w.on("exit", (code) => die(new Error(`the strategy worker exited (code ${code})`)));
    w.on("message", (m: { t: string; id?: number; pages?: Uint32Array; ns?: number; message?: string; name?: string; trainMs?: number; push?: PushMode }) => {
      if (m.t === "ready") {
        ready = true;
        signal?.removeEventListener("abort", cancel);
        resolve({
          remote: true, name: m.name!, trainMs: m.trainMs!, push: m.push,
          fault(page, stream, touches, inflight = false) {
            if (dead) return Promise.reject(dead);
            const id = nextId++;
            return new Promise<FaultAnswer>((res, rej) => {
              pending.set(id, { resolve: res, reject: rej });
              w.postMessage({ t: "fault", id, page, stream, touches, inflight, present: flushPresent() });
            });
          },
          present(page) {
            if (dead) return;
            present.push(page);
            if (present.length >= PRESENT_BATCH) w.postMessage({ t: "present", present: flushPresent() });
          },
          dispose() { die(new Error("the strategy was disposed")); },
        });
      } else if (m.t === "answer") {
        const p = pending.get(m.id!);
        pending.delete(m.id!);
        if (!p) return;
        if (m.message !== undefined) p.reject(new Error(m.message)); else p.resolve({ pages: m.pages!, ns: m.ns! });
      } else if (m.t === "error") {
        die(new Error(m.message));
      }
    });
    w.postMessage({ t: "init", spec, history });
  });
}
