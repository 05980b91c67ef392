/**
 * The proxy's injection policy for QEMU post-copy (`--predict ppm`): the engine, learning online from
 * the destination's requests and optionally starting from a model saved by an earlier migration of
 * the same VM, under a cost model made for QEMU 7.2's source, where an injected request is not free:
 *
 *  - the source serves REQ_PAGES in one FIFO queue (migration/ram.c, unqueue_page: one page per
 *    turn of the migration thread), so a fault that arrives behind injected pages waits for them;
 *    in 7.2 the migration thread sends urgent and background pages alike, and only between two
 *    host pages does it look at the queue (8.0 moved urgent pages to the return-path thread);
 *  - so nothing is injected while an earlier injection is still outstanding (requested, not yet
 *    seen going forward: the proxy follows both directions, `ServiceTracker`), nor while the
 *    source's queue holds more than the request just made;
 *  - few and sure pages: at most `maxPages` (2) per request, each with a path probability of at
 *    least `minConfidence` (the engine's `threshold`, so pages under it are never marked sent);
 *  - pages QEMU already sent (its background stream, seen going forward) are present in the engine
 *    and never predicted; consecutive pages go as one ranged REQ_PAGES (one queue entry).
 *
 * While gated the engine still learns the fault (`observe`), so the model keeps up.
 *
 * Trust from feedback ("never worse" first): every confident prediction is checked against the
 * destination's next request (a hit when the guest then faulted on one of the predicted pages). A
 * model that starts empty (no saved model: a VM's first migration) injects nothing until its own
 * predictions, made and not injected, have been right at least `trustAccuracy` of the time over at
 * least `trustMinTrials` checks: until then the proxy only learns, and the migration is QEMU's own.
 * A restored model (learned in an earlier migration of the same VM) is trusted from the start. A
 * prediction that was injected cannot be checked (if it was right, the guest never faults on it),
 * so only predictions held back count: a trusted model is not re-checked.
 *
 * QEMU 8.0 and later (measured with 10.0 in RESULTS.md section 4, rounds 4-6): with postcopy-preempt
 * the return-path thread sends requested pages itself (ram_save_queue_pages ->
 * ram_save_host_page_urgent), so injected pages leave with their fault's page and take no
 * migration-thread turn, and its search does not move the background scan. So the defaults follow
 * the QEMU the stream comes from (`defaultsForMachine`, from the machine type of the stream's
 * configuration section): up to 8.0, 2 pages and the scan return; from 8.0 on, 4 pages and no scan
 * return (over 18 interleaved pairs per guest and regime on QEMU 10: blocktime 0.80-0.93x paired
 * against 0.92-1.01x for the 7.2 defaults, requests 0.61-0.91x against 0.67-0.97x; a confirmatory
 * batch after the change was mixed, 0.81-1.10x blocktime: inside the host's spread, round 6).
 * Without preempt QEMU >= 8.0's migration thread still serves requests and moves its scan to each,
 * so there the defaults steer the push with runs, the scan return and a preload (`Steering`,
 * round 7: blocktime 0.72-0.95x paired, requests up on loopback; round 8: on md5 loopback the
 * blocktime gain did not repeat, 0.85x over 20 pairs with a 90% interval of 0.58-1.38: unresolved).
 *
 * Streams: QEMU's REQ_PAGES carry no vCPU, only a RAMBlock offset, so the proxy has one stream: with
 * one vCPU that is the guest's own fault order; with several the vCPUs' faults interleave in one
 * history and the contexts mix (what the engine's `streams` option cannot separate without an id).
 */
import { SNAPSHOT_MAGIC, FORMAT_VERSION } from "../engine/snapshot.js";
import type { Predictor, PredictorOptions } from "../engine/types.js";
import type { Strategy } from "../strategies/types.js";

export interface QemuPolicyOptions {
  /** Most pages injected per destination request. */
  maxPages: number;
  /** Least path probability of an injected page. */
  minConfidence: number;
  /** Inject only while at most this many injected pages are outstanding at the source. */
  maxOutstandingInjected: number;
  /** Inject only while at most this many pages (all requests, the new one included) are outstanding. */
  maxOutstanding: number;
  /** Least share of checked predictions that were right for the policy to inject. */
  trustAccuracy: number;
  /** Checks needed before a model that started empty may inject. */
  trustMinTrials: number;
  /**
   * Most pages requested at the switch-over (before the guest's first fault): the pages that faulted
   * in at least half of the earlier migrations the model file remembers. Off by default (0): measured
   * on the walk guest, 32 such pages alone raised requests to 1.24x and blocktime to 1.55x of QEMU
   * alone (6 runs), 8 first-fault pages with per-fault injection were neutral (docs/results/qemu.md).
   */
  preloadPages: number;
  /**
   * Pages requested from each preloaded page on (1: the page alone): the page and the absent pages
   * after it, as one ranged request, so that a guest reading on from a preloaded page does not fault
   * on the next one (the spatial hint a fault would have given QEMU's scan).
   */
  preloadRun: number;
  /**
   * Pages injected from each predicted page on (1: the page alone): the predicted page and the
   * absent pages after it, as one ranged request. A fault on a page moves QEMU's scan to the pages
   * after it just when the guest is there; a page injected before the guest gets there spends that
   * spatial hint early, and a guest reading on from it faults on the next page instead.
   */
  runPages: number;
  /** Engine options (order, alphabet, escape, memoryBytes...). */
  engine: Partial<PredictorOptions>;
}

export const DEFAULT_QEMU_POLICY: QemuPolicyOptions = {
  maxPages: 2, minConfidence: 0.25, maxOutstandingInjected: 0, maxOutstanding: 1, trustAccuracy: 0.5, trustMinTrials: 5,
  preloadPages: 0, preloadRun: 1, runPages: 1, engine: {},
};

/**
 * How the policy steers QEMU's push beyond its choice of pages, set per migration once the proxy
 * knows how the source serves requests (`defaultsForMachine`, `QemuStrategy.steer`).
 */
export interface Steering {
  /** End each injection with the page after the fault (QEMU's scan continues there). */
  scannerReturn: boolean;
  /** Pages injected from each predicted page on (QemuPolicyOptions.runPages). */
  runPages: number;
  /** Pages requested at the switch-over (QemuPolicyOptions.preloadPages). */
  preloadPages: number;
  /** Pages requested from each preloaded page on (QemuPolicyOptions.preloadRun). */
  preloadRun: number;
}

/** What the proxy does by default for the QEMU a migration comes from (see the header). */
export interface MachineDefaults {
  /** Most pages injected per request. */
  maxPages: number;
  /** With postcopy-preempt: a second channel from the source, connected before the switch-over. */
  preempt: Steering;
  /** Without it: the source's migration thread serves requests between background pages. */
  single: Steering;
  /** Why, in a few words, for the report and the log. */
  basis: string;
}

/**
 * The QEMU version a machine type names ("pc-i440fx-10.0", "pc-q35-8.2" -> [10, 0], [8, 2]); null for
 * a type without a version ("pc", "microvm", "" when the stream carried none, null before it was seen).
 */
export function machineVersion(machine: string | null | undefined): [number, number] | null {
  const m = /-(\d+)\.(\d+)$/.exec(machine ?? "");
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** 7.2's steering, and the one-page plain kind: the scan return, single pages, no preload. */
const STEER_72: Steering = { scannerReturn: true, runPages: 1, preloadPages: 0, preloadRun: 1 };

/**
 * The defaults for a migration's QEMU. From 8.0 on, under postcopy-preempt the return-path thread
 * sends requested pages itself without moving the background scan: 4 pages, nothing else. Without
 * preempt, QEMU >= 8.0's migration thread serves requests as 7.2's does, moving its scan to each
 * page it serves, and there the policy steers the push: each predicted page goes with the 63 pages
 * after it, every injection ends with the page after the fault, and at the switch-over a restored
 * model requests the pages that opened the earlier migrations, 64 from each (RESULTS.md section 4,
 * round 7). Before 8.0, or when the version is unknown, 7.2's: 2 pages and the scan return (the
 * steering was not measured on 7.2).
 */
export function defaultsForMachine(machine: string | null | undefined): MachineDefaults {
  const v = machineVersion(machine);
  if (v && v[0] >= 8) {
    return {
      maxPages: 4, basis: `QEMU >= 8.0 (machine ${machine})`,
      preempt: { scannerReturn: false, runPages: 1, preloadPages: 0, preloadRun: 1 },
      single: { scannerReturn: true, runPages: 64, preloadPages: 32, preloadRun: 64 },
    };
  }
  return {
    maxPages: DEFAULT_QEMU_POLICY.maxPages, preempt: STEER_72, single: STEER_72,
    basis: v ? `QEMU < 8.0 (machine ${machine})` : `QEMU version unknown (${machine ? `machine ${machine}` : "no machine type seen"}): 7.2's`,
  };
}

/**
 * The engine's arena for the proxy (contexts), unless --memory-bytes says otherwise: the engine's
 * default (2^20 contexts) makes a 35 MB snapshot that takes ~0.4 s to write and ~0.2 s to restore
 * in the proxy's event loop; 2^14 holds ~100 migrations' worth of faults and snapshots in ~1 ms.
 */
export const QEMU_MAX_CONTEXTS = 1 << 14;

/** What the injector tells the strategy about the source's queue at a request. */
export interface QueueState {
  outstanding: number;
  outstandingInjected: number;
}

/** A strategy that can be told the source's queue, and saved. */
export interface QemuStrategy extends Strategy {
  /** Like onFault, knowing the source's queue; an empty answer still learns the fault. */
  onRequest(page: number, queue: QueueState): ArrayLike<number>;
  snapshot?(): Uint8Array;
  /**
   * Pages to request at the switch-over, before the guest's first fault: the pages that faulted in
   * at least half of the earlier migrations the model remembers (their first START_FAULTS
   * requests), most frequent first, then earliest; never present ones; empty without a restored
   * model. Call once; they count as injected (and as part of this migration's set for the next).
   */
  preload?(): number[];
  /**
   * Set the steering for this migration (before the preload and the first request), except what the
   * policy options gave explicitly: those stay.
   */
  steer?(s: Omit<Steering, "scannerReturn">): void;
  /**
   * Replace the present pages by these runs ([first global page, count]): after the source
   * discarded pages it had sent in precopy (MIG_CMD_POSTCOPY_RAM_DISCARD), which are absent again.
   */
  resetPresent?(runs: readonly (readonly [number, number])[]): void;
  /** Requests the gate held back (nothing injected although the model was asked). */
  readonly gated: number;
  /** Where the model came from. */
  readonly origin: string;
  /** The feedback: predictions checked against the next request, how many were right, requests not injected for want of trust. */
  readonly feedback?: TrustFeedback;
}

export interface TrustFeedback {
  checked: number;
  right: number;
  /** Requests with confident predictions that were not injected because the model was not trusted. */
  untrusted: number;
  /** Whether the model is trusted now. */
  trusted: boolean;
}

type EngineModule = {
  createPredictor(o: PredictorOptions): Predictor;
  restorePredictor(bytes: Uint8Array): Predictor;
};

let engine: EngineModule | null = null;

/**
 * How many of a migration's destination requests (the first ones) the model file remembers, and for
 * how many migrations: a VM's migrations fault on much the same pages (walk guest, latency-bound:
 * 65-96% of a migration's faulted pages had faulted in one of the 4 before), in another order.
 */
export const START_FAULTS = 64;
export const START_HISTORY = 4;
const MAGIC = Buffer.from("PPMQEMU1", "latin1");

/**
 * The model file: `PPMQEMU1`, u32 LE length of a JSON header `{"v":1,"starts":[[page,...],...]}`
 * (the first requests of the last START_HISTORY migrations, global pages), then the engine's
 * snapshot. A file without the magic is a bare engine snapshot (files written before the header).
 */
export function packModel(engineBytes: Uint8Array, starts: number[][]): Uint8Array {
  const head = Buffer.from(JSON.stringify({ v: 1, starts }), "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length, 0);
  return new Uint8Array(Buffer.concat([MAGIC, len, head, Buffer.from(engineBytes.buffer, engineBytes.byteOffset, engineBytes.byteLength)]));
}

/** The inverse of packModel, for untrusted bytes: throws an Error with a one-line reason. */
export function unpackModel(bytes: Uint8Array, pageCount: number): { engine: Uint8Array; starts: number[][] } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < MAGIC.length || !b.subarray(0, MAGIC.length).equals(MAGIC)) return { engine: bytes, starts: [] };
  if (b.length < MAGIC.length + 4) throw new Error("model file header truncated");
  const n = b.readUInt32LE(MAGIC.length);
  if (n > 1 << 20 || MAGIC.length + 4 + n > b.length) throw new Error(`model file header of ${n} bytes does not fit the file`);
  let head: unknown;
  try {
    head = JSON.parse(b.toString("utf8", MAGIC.length + 4, MAGIC.length + 4 + n));
  } catch {
    throw new Error("model file header is not JSON");
  }
  const h = head as { v?: unknown; starts?: unknown };
  if (h.v !== 1 || !Array.isArray(h.starts) || h.starts.length > START_HISTORY ||
      !h.starts.every((l) => Array.isArray(l) && l.length <= 2 * START_FAULTS &&
        l.every((x) => Number.isInteger(x) && x >= 0 && x < pageCount))) {
    throw new Error("model file header is malformed (version, starts, or a page outside this guest)");
  }
  return { engine: new Uint8Array(b.subarray(MAGIC.length + 4 + n)), starts: h.starts as number[][] };
}

export async function loadPolicyEngine(): Promise<void> {
  if (engine) return;
  const p = "../engine/predictor.js";
  engine = (await import(p)) as EngineModule;
}

/**
 * Why `bytes` is not a model file (the proxy's `PPMQEMU1` file, or a bare engine snapshot), or null
 * when it is one: its header parses and the engine restores it (the guest's size is checked when a
 * migration starts, as then). `loadPolicyEngine()` must have been awaited.
 */
export function modelProblem(bytes: Uint8Array): string | null {
  if (!engine) throw new Error("loadPolicyEngine() was not awaited");
  if (bytes.length === 0) return "it is empty";
  let snap: Uint8Array | null = null;
  try {
    snap = unpackModel(bytes, Number.MAX_SAFE_INTEGER).engine;
    engine.restorePredictor(snap).dispose();
    return null;
  } catch (e) {
    // A model another version of this package saved (its snapshot format differs) is still a model
    // file: the migration starts empty (its origin says why) and the save replaces it.
    return snap !== null && isOtherSnapshotFormat(snap) ? null : (e as Error).message;
  }
}

function isOtherSnapshotFormat(b: Uint8Array): boolean {
  if (b.length < 8) return false;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return dv.getUint32(0, true) === SNAPSHOT_MAGIC && dv.getUint32(4, true) !== FORMAT_VERSION;
}

export function qemuPolicyAvailable(): boolean {
  return engine !== null;
}

/**
 * Build the policy for a guest of `pageCount` pages; `model` (snapshot bytes, untrusted) is used when
 * it restores and fits this guest, else the engine starts empty and `origin` says why.
 */
export function createQemuPolicy(pageCount: number, policy: Partial<QemuPolicyOptions> = {}, model?: Uint8Array | null): QemuStrategy {
  if (!engine) throw new Error("loadPolicyEngine() was not awaited");
  const pol: QemuPolicyOptions = { ...DEFAULT_QEMU_POLICY, ...policy, engine: { ...DEFAULT_QEMU_POLICY.engine, ...(policy.engine ?? {}) } };
  const want: PredictorOptions = {
    pageCount, alphabet: "hybrid", order: 3,
    // A post-copy fault log is tens to thousands of requests: a small arena keeps the model file and its
    // restore (synchronous, in the proxy's event loop, at the start of a migration) small.
    ...(pol.engine.memoryBytes === undefined && pol.engine.maxContexts === undefined ? { maxContexts: QEMU_MAX_CONTEXTS } : {}),
    ...pol.engine, depth: pol.maxPages, threshold: pol.minConfidence,
  };
  let pred: Predictor | null = null;
  let origin = "new";
  let starts: number[][] = [];
  if (model && model.length > 0) {
    try {
      const un = unpackModel(model, pageCount);
      const r = engine.restorePredictor(un.engine);
      const o = r.options;
      if (o.pageCount !== pageCount) origin = `new (saved model is for ${o.pageCount} pages, this guest has ${pageCount})`;
      else if (o.depth !== want.depth || o.threshold !== want.threshold || (want.alphabet && o.alphabet !== want.alphabet)) {
        origin = `new (saved model has other options: depth ${o.depth}, threshold ${o.threshold}, alphabet ${o.alphabet})`;
      } else if ((["order", "escape", "maxContexts"] as const).some((k) => want[k] !== undefined && o[k] !== want[k])) {
        // what the command line asks for wins over the file (a restore kept the saved order/escape/arena)
        origin = `new (saved model has other options: order ${o.order}, escape ${o.escape}, maxContexts ${o.maxContexts})`;
      } else {
        r.clearPresent();
        pred = r;
        starts = un.starts;
        origin = `restored (${r.stats().contexts} contexts, ${r.stats().faults} faults learned)`;
      }
      if (!pred) r.dispose();
    } catch (e) {
      origin = `new (saved model refused: ${(e as Error).message})`;
    }
  }
  pred ??= engine.createPredictor(want);
  const p = pred;
  const restored = origin.startsWith("restored");
  // This migration's start: what was preloaded, then its first destination requests.
  const start: number[] = [];
  let firstRequests = 0;
  let gated = 0;
  let checked = 0, right = 0, untrusted = 0;
  // The confident predictions of the previous request when they were not injected (checkable).
  let pending: number[] = [];
  /** Each page of `heads` with the absent pages after it, `n` in all from it; every page once, never `skip`. */
  const withRuns = (heads: number[], n: number, skip = -1): number[] => {
    if (n <= 1) return heads;
    const runs: number[] = [];
    const taken = new Set<number>();
    for (const h of heads) {
      for (let r = h; r < h + n && r < pageCount; r++) {
        if (r === skip || taken.has(r) || (r !== h && p.isPresent(r))) continue;
        taken.add(r);
        runs.push(r);
      }
    }
    return runs;
  };
  const trusted = () => {
    if (checked < pol.trustMinTrials) return restored;
    return right >= pol.trustAccuracy * checked;
  };
  return {
    name: "ppm-qemu",
    origin,
    get gated() { return gated; },
    get feedback() { return { checked, right, untrusted, trusted: trusted() }; },
    onFault(page: number) {
      return this.onRequest(page, { outstanding: 0, outstandingInjected: 0 });
    },
    steer(st) {
      for (const k of ["runPages", "preloadPages", "preloadRun"] as const) if (policy[k] === undefined) pol[k] = st[k];
    },
    preload() {
      if (!restored || pol.preloadPages <= 0 || starts.length === 0) return [];
      const need = Math.ceil(starts.length / 2);
      const count = new Map<number, { n: number; pos: number }>();
      for (const l of starts) {
        const seen = new Set<number>();
        l.forEach((x, i) => {
          if (seen.has(x)) return;
          seen.add(x);
          const c = count.get(x);
          if (c) { c.n++; c.pos = Math.min(c.pos, i); } else count.set(x, { n: 1, pos: i });
        });
      }
      const out = [...count.entries()].filter(([x, c]) => c.n >= need && !p.isPresent(x))
        .sort((a, b) => b[1].n - a[1].n || a[1].pos - b[1].pos).slice(0, pol.preloadPages).map(([x]) => x);
      for (const x of out) start.push(x);
      return withRuns(out, pol.preloadRun);
    },
    onRequest(page: number, q: QueueState) {
      if (firstRequests < START_FAULTS) {
        firstRequests++;
        if (!start.includes(page)) start.push(page);
      }
      if (pending.length > 0) {
        checked++;
        if (pending.includes(page)) right++;
        pending = [];
      }
      if (q.outstandingInjected > pol.maxOutstandingInjected || q.outstanding > pol.maxOutstanding) {
        gated++;
        p.observe(page, 0);
        return [];
      }
      const n = p.predictInto(page, 0);
      const out: number[] = [];
      for (let i = 0; i < n; i++) if (p.confidence[i] >= pol.minConfidence) out.push(p.output[i]);
      if (out.length > 0 && !trusted()) {
        // Held back: absent again for the engine, and checked at the next request.
        untrusted++;
        for (let i = 0; i < n; i++) p.unsend(p.output[i]);
        pending = out;
        return [];
      }
      return withRuns(out, pol.runPages, page);
    },
    onPresent(page: number) {
      if (page >= 0 && page < pageCount) p.markPresent(page);
    },
    resetPresent(runs) {
      // clearPresent keeps the model; nothing has been predicted before the switch-over's discards
      p.clearPresent();
      for (const [first, n] of runs) {
        const a = Math.max(0, first), e = Math.min(pageCount, first + n);
        if (e > a) p.markPresentRange(a, e - a);
      }
    },
    maintain: () => { p.maintain(); },
    snapshot: () => (p.maintain(), packModel(p.snapshot(), [...starts, ...(start.length > 0 ? [start] : [])].slice(-START_HISTORY))),
    dispose: () => p.dispose(),
  };
}
