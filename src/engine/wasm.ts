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
  validateDetail(): number;
  validateLayout(): number;
  validateHeader(): number;
  usedBytes(): number;
  outPtr(): number;
  confPtr(): number;
  inPtr(): number;
  predictNext(page: number, stream: number): number;
  observe(page: number, stream: number): void;
  train(count: number, stream: number): void;
  rehearseBegin(stream: number): void;
  rehearseOpen(): void;
  rehearseScan(count: number): number;
  rehearseLearn(): number;
  compact(): void;
  prune(): void;
  markPresent(page: number): void;
  clearPresent(): void;
  markPresentRange(start: number, count: number): void;
  isPresent(page: number): number;
  counter(field: number): number;
  liveContexts(): number;
  capacity(): number;
}

/** Header offsets of the f64 counters (assembly/layout.ts). */
export const COUNTER = { faults: 120, predictions: 128, observed: 136, trained: 144, prunes: 152, present: 160, rehearsed: 168 } as const;
/** Staging capacities (assembly/layout.ts). */
export const OUT_CAPACITY = 256;
export const IN_CAPACITY = 65536;

let compiled: WebAssembly.Module | undefined;

export function coreModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, "base64"));
  return compiled;
}

export function instantiateCore(): CoreExports {
  return new WebAssembly.Instance(coreModule(), {}).exports as unknown as CoreExports;
}

let sizer: CoreExports | undefined;
/** Exact bytes of linear memory for a model shape, computed by the core itself. */
export function layoutBytes(order: number, streams: number, capacity: number, pageCount: number, filter: number): number {
  sizer ??= instantiateCore();
  return sizer.layoutBytes(order, streams, capacity, pageCount, filter);
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
