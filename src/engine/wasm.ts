/**
 * The Wasm core: compiled once per process from inlined bytes, instantiated synchronously, one
 * instance (one linear memory) per predictor. The raw exports are called directly on the fault path;
 * no loader, no glue.
 */
import { WASM_BASE64 } from "./wasm-bytes.js";

/** The core's ABI (assembly/index.ts). */
export interface CoreExports {
  memory: WebAssembly.Memory;
  layoutBytes(order: number, streams: number, capacity: number, pageCount: number, filter: number): number;
  init(order: number, alpha: number, escape: number, depth: number, threshold: number, streams: number,
       capacity: number, pageCount: number, range: number, filter: number, lookahead: number, ageLimit: number): number;
  clearModel(): void;
  attach(): number;
  validate(): number;
  settle(): void;
  validateDetail(): number;
  validateLayout(): number;
  validateHeader(): number;
  usedBytes(): number;
  outPtr(): number;
  confPtr(): number;
  inPtr(): number;
  predictNext(page: number, stream: number): number;
  predictFirst(page: number, stream: number, first: number): number;
  /** The pages in OUT in all, or 0xffffffff when no search was stopped by predictFirst. */
  predictRest(): number;
  observe(page: number, stream: number): void;
  train(count: number, stream: number): void;
  rehearseBegin(stream: number): void;
  rehearseOpen(): void;
  rehearseScan(count: number): number;
  rehearseLearn(): number;
  compact(): void;
  prune(): void;
  maintain(): number;
  markPresent(page: number): void;
  unsend(page: number): void;
  clearPresent(): void;
  markPresentRange(start: number, count: number): void;
  isPresent(page: number): number;
  counter(field: number): number;
  liveContexts(): number;
  capacity(): number;
}

let compiled: WebAssembly.Module | undefined;

export function coreModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, "base64"));
  return compiled;
}

/**
 * @internal For benches that compare two builds of the core in one process: predictors created
 * after this call instantiate `m` (undefined: the inlined core again). Its ABI must equal the
 * inlined core's (ABI below is read from that one).
 */
export function useCoreModuleForBench(m: WebAssembly.Module | undefined): void {
  compiled = m;
  sizer = undefined; // sizes and header checks come from the build in use
}

export function instantiateCore(): CoreExports {
  const e = new WebAssembly.Instance(coreModule(), {}).exports as unknown as CoreExports;
  // A core built before deferred learning (an older build given to useCoreModuleForBench, for
  // bench/ab-core.ts) has no settle(): it never defers, so there is nothing to settle.
  return typeof e.settle === "function" ? e : { ...e, settle() {} };
}

/**
 * The core's ABI constants (capacities, header offsets, codes), read from the globals the module
 * exports (assembly/index.ts, ABI_*): defined once, in assembly/layout.ts, never copied by hand.
 */
function readAbi() {
  const x = new WebAssembly.Instance(coreModule(), {}).exports as Record<string, WebAssembly.Global | unknown>;
  const g = (name: string): number => {
    const v = x[`ABI_${name}`];
    if (!(v instanceof WebAssembly.Global)) throw new Error(`the Wasm core exports no ABI_${name}`);
    return v.value as number;
  };
  return {
    version: g("VERSION"), header: g("HEADER"), headerEnd: g("HEADER_END"), magic: g("MAGIC") >>> 0,
    outCapacity: g("OUT_CAPACITY"), inCapacity: g("IN_CAPACITY"), rehearsalPages: g("REHEARSAL_PAGES"),
    ageLimitMax: g("AGE_LIMIT_MAX"),
    alpha: { page: g("ALPHA_PAGE"), delta: g("ALPHA_DELTA"), hybrid: g("ALPHA_PAGE") | g("ALPHA_DELTA") },
    escape: { A: g("ESC_A"), B: g("ESC_B"), C: g("ESC_C"), D: g("ESC_D") },
    field: {
      order: g("H_ORDER"), alphabet: g("H_ALPHA"), escape: g("H_ESCAPE"), depth: g("H_DEPTH"), streams: g("H_STREAMS"),
      maxContexts: g("H_CAPACITY"), pageCount: g("H_PAGECOUNT"), deltaRange: g("H_RANGE"), filter: g("H_FILTER"),
      lookahead: g("H_LOOKAHEAD"), ageLimit: g("H_AGELIMIT"), threshold: g("H_THRESHOLD"), pruneDue: g("H_PRUNE_DUE"),
    },
    counter: {
      faults: g("H_FAULTS"), predictions: g("H_PREDICTIONS"), observed: g("H_OBSERVED"), trained: g("H_TRAINED"),
      prunes: g("H_PRUNES"), present: g("H_PRESENT"), rehearsed: g("H_REHEARSED"),
    },
  } as const;
}
export const ABI = readAbi();

/** Header offsets of the f64 counters (assembly/layout.ts, via ABI). */
export const COUNTER = ABI.counter;
/** Staging capacities (assembly/layout.ts, via ABI). */
export const OUT_CAPACITY = ABI.outCapacity;
export const IN_CAPACITY = ABI.inCapacity;

let sizer: CoreExports | undefined;
/** Exact bytes of linear memory for a model shape, computed by the core itself. */
export function layoutBytes(order: number, streams: number, capacity: number, pageCount: number, filter: number): number {
  sizer ??= instantiateCore();
  return sizer.layoutBytes(order, streams, capacity, pageCount, filter);
}

/** The image magic of the core in use (the inlined one, or a bench's build: useCoreModuleForBench). */
export function magicInUse(): number {
  sizer ??= instantiateCore();
  return ((sizer as unknown as Record<string, WebAssembly.Global>).ABI_MAGIC.value as number) >>> 0;
}

/**
 * The core's header checks (validateHeader) on a copy of an image's header, in the sizing instance:
 * nothing is allocated for bytes that fail them. Returns the code (0: pass) and its detail.
 */
export function checkHeaderBytes(header: Uint8Array): { code: number; detail: number } {
  sizer ??= instantiateCore();
  const mem = new Uint8Array(sizer.memory.buffer, 0, header.length);
  mem.set(header);
  const code = sizer.validateHeader();
  const detail = sizer.validateDetail() >>> 0;
  mem.fill(0);
  return { code, detail };
}
