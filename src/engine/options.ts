/**
 * Predictor options: defaults, validation, and the byte budget -> capacity rule.
 *
 * Every default below was chosen by measurement on the real traces (see README, RESULTS.md; figures
 * are % of demand faults averaged over sqlite and xz, as recorded and scattered at 4 KiB): order 3
 * (2 and 4 within 0.2) and the hybrid alphabet (page alone 44.1, delta alone 57.8) win on both
 * layouts; escape methods D and C tie (28.3; A 28.4; D was ahead before the rehearsal,
 * 30.2 against 30.3 and 30.4, and is kept), and B cannot offer a successor seen once, which most of post-copy's first touches are (33.5); an 8-state lookahead
 * reaches the missing pages behind the hot set (16 and 32: 27.9 and 27.6, for 2-3x the fault-path
 * time, see BENCHMARKS.md); a 256-page LRU filter makes the model learn the miss stream it will
 * serve (8 or none learn the ping-pong between hot pages: 33.0; 128: 28.9; 1024: 28.3), and the
 * switch-over rehearsal adds the first touches that a filtered history does not show (without it
 * 29.8, and sqlite/4k above first-order Markov). The threshold only cuts paths that are practically
 * dead (0.01: 32.1).
 */
import type { Alphabet, EscapeMethod, PredictorOptions } from "./types.js";
import { ABI } from "./wasm.js";
import { describeValue } from "../util/describe.js";

export const ALPHABETS: readonly Alphabet[] = ["page", "delta", "hybrid"];
export const ESCAPES: readonly EscapeMethod[] = ["A", "B", "C", "D"];

/** Everything a model is built from, all explicit. */
export interface ResolvedOptions {
  pageCount: number;
  order: number;
  alphabet: Alphabet;
  escape: EscapeMethod;
  depth: number;
  threshold: number;
  streams: number;
  maxContexts: number;
  /** Largest |delta| the delta alphabet keeps as its own symbol; larger ones share one symbol. */
  deltaRange: number;
  /** LRU slots of the filter that train() passes the history through (0 = learn every access). */
  filter: number;
  /** States the lookahead search may expand per prediction. */
  lookahead: number;
  /** A context's counts are halved when they add up to more than this. */
  ageLimit: number;
  /** train() also learns the first touches of the history's suffixes (engine/rehearsal.ts). */
  rehearse: boolean;
  /** Pages kept for the pending rehearsal, all streams together (engine/rehearsal.ts). */
  pendingBudget: number;
}

/** Every option is in PredictorOptions (the name the README uses); this name stays for existing code. */
export type FullPredictorOptions = PredictorOptions;

// Frozen: it is exported (PREDICTOR_DEFAULTS), and a caller writing into it would change every
// later predictor's defaults.
export const DEFAULTS = Object.freeze({
  order: 3,
  alphabet: "hybrid" as Alphabet,
  escape: "D" as EscapeMethod,
  depth: 8,
  threshold: 0.0001,
  streams: 64,
  maxContexts: 1 << 20,
  deltaRange: 64,
  filter: 256,
  lookahead: 8,
  ageLimit: ABI.ageLimitMax,
  rehearse: true,
  pendingBudget: 1 << 21, // = REHEARSAL_TAIL: all streams together keep what one stream keeps
} as const);

/** Largest memoryBytes: what a Wasm (32-bit) linear memory can hold, 4 GiB. */
export const MAX_MEMORY_BYTES = 2 ** 32;

export const LIMITS = {
  pageCount: [1, 0xffffffff],
  order: [1, 8],
  depth: [0, ABI.outCapacity], // the core's output buffer
  streams: [1, 4096],
  maxContexts: [16, 1 << 26],
  deltaRange: [1, 1 << 20],
  filter: [0, 1024],
  lookahead: [1, 128],
  ageLimit: [2, ABI.ageLimitMax], // counts are 16-bit: a total may reach ageLimit + 1 before it is halved
  pendingBudget: [0, 2 ** 30],
} as const;

function int(name: string, v: unknown, [min, max]: readonly [number, number]): number {
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new TypeError(`options.${name} must be an integer, got ${describe(v)}`);
  }
  if (v < min || v > max) throw new RangeError(`options.${name} must be in ${min}..${max}, got ${v}`);
  return v;
}

export function describe(v: unknown): string {
  return describeValue(v);
}

/** Validate and complete options; throws TypeError/RangeError naming the option and the value. */
export function resolveOptions(o: FullPredictorOptions, bytesFor?: (capacity: number) => number): ResolvedOptions {
  if (o === null || typeof o !== "object") throw new TypeError(`options must be an object, got ${describe(o)}`);
  const known = new Set(["pageCount", "order", "alphabet", "escape", "depth", "threshold", "streams", "maxContexts", "memoryBytes", "deltaRange", "filter", "lookahead", "ageLimit", "rehearse", "pendingBudget"]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new TypeError(`options.${k} is not an option (known: ${[...known].join(", ")})`);
  // undefined (or left out) means the default; null is not a value of any option.
  // (pageCount has no default: its own check below says null is not an integer.)
  for (const k of known) {
    if (k === "pageCount" || (o as unknown as Record<string, unknown>)[k] !== null) continue;
    const d = (DEFAULTS as Record<string, unknown>)[k];
    const instead = d === undefined ? "leave it out to size the model by maxContexts" : `leave it out or undefined for the default, ${describe(d)}`;
    throw new TypeError(`options.${k} must not be null, got null (${instead})`);
  }
  if (o.pageCount === undefined) throw new TypeError("options.pageCount is required (pages in the guest)");
  const pageCount = int("pageCount", o.pageCount, LIMITS.pageCount);
  const order = int("order", o.order ?? DEFAULTS.order, LIMITS.order);
  const alphabet = o.alphabet ?? DEFAULTS.alphabet;
  if (!ALPHABETS.includes(alphabet)) throw new RangeError(`options.alphabet must be one of ${ALPHABETS.join(", ")}, got ${describe(alphabet)}`);
  const escape = o.escape ?? DEFAULTS.escape;
  if (!ESCAPES.includes(escape)) throw new RangeError(`options.escape must be one of ${ESCAPES.join(", ")}, got ${describe(escape)}`);
  const depth = int("depth", o.depth ?? DEFAULTS.depth, LIMITS.depth);
  const threshold = o.threshold ?? DEFAULTS.threshold;
  if (typeof threshold !== "number" || Number.isNaN(threshold)) throw new TypeError(`options.threshold must be a number, got ${describe(threshold)}`);
  if (threshold < 0 || threshold > 1) throw new RangeError(`options.threshold must be in 0..1, got ${threshold}`);
  const streams = int("streams", o.streams ?? DEFAULTS.streams, LIMITS.streams);
  const deltaRange = int("deltaRange", o.deltaRange ?? DEFAULTS.deltaRange, LIMITS.deltaRange);
  const filter = int("filter", o.filter ?? DEFAULTS.filter, LIMITS.filter);
  const lookahead = int("lookahead", o.lookahead ?? DEFAULTS.lookahead, LIMITS.lookahead);
  const ageLimit = int("ageLimit", o.ageLimit ?? DEFAULTS.ageLimit, LIMITS.ageLimit);
  const rehearse = o.rehearse ?? DEFAULTS.rehearse;
  if (typeof rehearse !== "boolean") throw new TypeError(`options.rehearse must be a boolean, got ${describe(rehearse)}`);
  const pendingBudget = int("pendingBudget", o.pendingBudget ?? DEFAULTS.pendingBudget, LIMITS.pendingBudget);
  let maxContexts: number;
  if (o.memoryBytes !== undefined) {
    if (o.maxContexts !== undefined) throw new TypeError("options.maxContexts and options.memoryBytes exclude each other; give one");
    const budget = o.memoryBytes;
    if (typeof budget !== "number" || !Number.isInteger(budget)) throw new TypeError(`options.memoryBytes must be an integer, got ${describe(budget)}`);
    // Checked before any sizing or allocation: a larger budget cannot be honoured, and would only
    // select the largest arena (2^26 contexts, 2.1 GB, seconds to allocate).
    if (budget > MAX_MEMORY_BYTES) {
      throw new RangeError(`options.memoryBytes must be at most ${MAX_MEMORY_BYTES} (4 GiB, what Wasm linear memory can hold), got ${budget}`);
    }
    if (!bytesFor) throw new Error("internal: memoryBytes needs a sizing function");
    maxContexts = capacityForBudget(budget, bytesFor);
  } else {
    maxContexts = int("maxContexts", o.maxContexts ?? DEFAULTS.maxContexts, LIMITS.maxContexts);
  }
  // + 0 turns -0 into 0 (in threshold, filter...): a snapshot stores the options as JSON, which has
  // no -0, and its restore compares them with the core's header exactly.
  return { pageCount: pageCount + 0, order: order + 0, alphabet, escape, depth: depth + 0, threshold: threshold + 0, streams: streams + 0,
    maxContexts: maxContexts + 0, deltaRange: deltaRange + 0, filter: filter + 0, lookahead: lookahead + 0, ageLimit: ageLimit + 0, rehearse, pendingBudget: pendingBudget + 0 };
}

/** The largest capacity whose layout fits the byte budget (binary search over the exact layout). */
function capacityForBudget(budget: number, bytesFor: (capacity: number) => number): number {
  const [min, max] = LIMITS.maxContexts;
  if (bytesFor(min) > budget) {
    throw new RangeError(`options.memoryBytes ${budget} is too small for this configuration (needs at least ${bytesFor(min)})`);
  }
  let lo: number = min, hi: number = max;
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    if (bytesFor(mid) <= budget) lo = mid; else hi = mid - 1;
  }
  return lo;
}
