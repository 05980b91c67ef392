/**
 * The predictor: a thin class over the raw Wasm exports. It validates every argument before the
 * core sees it (so a bad call changes nothing), keeps long-lived typed-array views over the core's
 * fixed input and output buffers, and never copies on the fault path.
 */
import type { Predictor, PredictorStats } from "./types.js";
import { checkPage, checkStream, checkPages, checkRange } from "./validate.js";
import { resolveOptions, DEFAULTS, type FullPredictorOptions, type ResolvedOptions } from "./options.js";
import { instantiateCore, layoutBytes, ABI, COUNTER, OUT_CAPACITY, IN_CAPACITY, type CoreExports } from "./wasm.js";
import { encodeSnapshot, decodeSnapshot } from "./snapshot.js";
import { rehearsalLengths, PendingHistories } from "./rehearsal.js";
import { checkImageHeader, validateCore, ALPHA_BITS, ESCAPE_CODE } from "./core-check.js";


export class WasmPredictor implements Predictor {
  readonly options: Readonly<ResolvedOptions>;
  private core: CoreExports | undefined;
  private out!: Uint32Array; // view of the core's output buffer
  private conf!: Float32Array; // view of the confidences beside it
  private input!: Uint32Array; // view of the core's train staging buffer
  private viewsOf: ArrayBuffer | undefined;
  private pending: PendingHistories; // histories trained since the last rehearsal (within options.pendingBudget)

  /** @internal use createPredictor / restorePredictor */
  constructor(options: ResolvedOptions, memoryImage?: Uint8Array, pending?: PendingHistories) {
    this.options = Object.freeze({ ...options });
    // Untrusted bytes: the header must be what these options lay out (checked before anything is
    // allocated for them), and the whole model must pass the core's validation before anything else
    // runs on it (engine/core-check.ts).
    if (memoryImage) checkImageHeader(memoryImage, options);
    const core = instantiateCore();
    const o = options;
    const ok = core.init(o.order, ALPHA_BITS[o.alphabet], ESCAPE_CODE[o.escape], o.depth, o.threshold, o.streams,
      o.maxContexts, o.pageCount, o.deltaRange, o.filter, o.lookahead, o.ageLimit);
    if (ok < 0) throw new Error(`the Wasm core refused its own memory map (init code ${ok}): a build error`);
    if (!ok) {
      throw new RangeError(`options.maxContexts ${o.maxContexts} with pageCount ${o.pageCount} needs ` +
        `${layoutBytes(o.order, o.streams, o.maxContexts, o.pageCount, o.filter)} bytes, more than Wasm linear memory can hold`);
    }
    if (memoryImage) {
      if (memoryImage.length !== core.usedBytes()) {
        throw new RangeError(`bytes holds a memory image of ${memoryImage.length} bytes; its options need ${core.usedBytes()}`);
      }
      new Uint8Array(core.memory.buffer, 0, memoryImage.length).set(memoryImage);
      validateCore(core);
    }
    this.pending = pending ?? new PendingHistories(options.pendingBudget);
    this.core = core;
    this.refreshViews();
  }

  /** Views are recreated only if the memory ever grew (its ArrayBuffer is then replaced). */
  private refreshViews(): void {
    const core = this.core!;
    const buf = core.memory.buffer;
    if (buf === this.viewsOf) return;
    this.out = new Uint32Array(buf, core.outPtr(), OUT_CAPACITY);
    this.conf = new Float32Array(buf, core.confPtr(), OUT_CAPACITY);
    this.input = new Uint32Array(buf, core.inPtr(), IN_CAPACITY);
    this.viewsOf = buf;
  }

  private live(method: string): CoreExports {
    const core = this.core;
    if (!core) throw new TypeError(`predictor.${method}() called after dispose()`);
    return core;
  }

  private checkPage(name: string, v: unknown): number {
    return checkPage(name, v, this.options.pageCount);
  }

  private checkStream(v: unknown): number {
    return checkStream(v, this.options.streams);
  }

  train(pages: Uint32Array | readonly number[], stream?: number): void {
    const core = this.live("train");
    const s = this.checkStream(stream);
    checkPages(pages, this.options.pageCount);
    this.refreshViews();
    for (let off = 0; off < pages.length; off += IN_CAPACITY) core.train(this.stage(pages, off, pages.length), s);
    if (this.options.rehearse) this.pending.append(s, pages);
  }

  /**
   * Run the switch-over rehearsal of every history trained since the last one, in stream order
   * (engine/rehearsal.ts). predictNext and observe do it first when one is pending; call it at the
   * switch-over to keep its cost off the first fault.
   */
  rehearse(): void {
    this.rehearsePending(this.live("rehearse"));
  }

  private rehearsePending(core: CoreExports): void {
    this.refreshViews();
    for (const h of this.pending.list()) this.rehearseHistory(core, h.tail, h.length, h.stream);
    this.pending.clear();
  }

  /** Copy pages[from, min(to, from + IN_CAPACITY)) into the core's input buffer; returns the count. */
  private stage(pages: Uint32Array | readonly number[], from: number, to: number): number {
    const end = Math.min(to, from + IN_CAPACITY);
    if (pages instanceof Uint32Array) this.input.set(pages.subarray(from, end));
    else for (let i = from; i < end; i++) this.input[i - from] = pages[i];
    return end - from;
  }

  /**
   * One history's rehearsal: for each suffix, shortest first, the core scans only the part the
   * previous suffix did not cover and merges the rest from its previous list. `tail` is the
   * history's end, at least as long as its longest rehearsed suffix.
   */
  private rehearseHistory(core: CoreExports, tail: Uint32Array, length: number, stream: number): void {
    const n = tail.length;
    core.rehearseBegin(stream);
    let covered = 0;
    for (const len of rehearsalLengths(length, n)) {
      core.rehearseOpen();
      for (let off = n - len; off < n - covered; ) {
        const count = this.stage(tail, off, n - covered);
        if (!core.rehearseScan(count)) return;
        off += count;
      }
      if (!core.rehearseLearn()) return;
      covered = len;
    }
  }

  compact(): void {
    this.live("compact").compact();
  }

  prune(): void {
    this.live("prune").prune();
  }

  maintain(): boolean {
    return this.live("maintain").maintain() !== 0;
  }

  /**
   * Learn from a fault and return the pages to send with it. The result is a view of the engine's
   * output buffer: the next predictNext call overwrites it (copy it with .slice() to keep it).
   * The returned pages are marked sent and never returned again.
   */
  predictNext(fault: number, stream?: number): Uint32Array {
    const n = this.predictInto(fault, stream);
    return this.out.subarray(0, n);
  }

  /** predictNext without creating a view: returns the count; the pages are output[0..count). */
  predictInto(fault: number, stream?: number): number {
    const core = this.live("predictNext");
    this.checkPage("fault", fault);
    const s = this.checkStream(stream);
    if (this.pending.size !== 0) this.rehearsePending(core);
    return core.predictNext(fault, s);
  }

  /** The long-lived view of the output buffer that predictInto fills. */
  get output(): Uint32Array {
    this.live("output");
    this.refreshViews();
    return this.out;
  }

  /** The long-lived view of the confidences beside `output`: confidence[i] is output[i]'s path probability. */
  get confidence(): Float32Array {
    this.live("confidence");
    this.refreshViews();
    return this.conf;
  }

  observe(page: number, stream?: number): void {
    const core = this.live("observe");
    this.checkPage("page", page);
    const s = this.checkStream(stream);
    if (this.pending.size !== 0) this.rehearsePending(core);
    core.observe(page, s);
  }

  markPresent(page: number): void {
    const core = this.live("markPresent");
    this.checkPage("page", page);
    core.markPresent(page);
  }

  unsend(page: number): void {
    const core = this.live("unsend");
    this.checkPage("page", page);
    core.unsend(page);
  }

  markPresentRange(start: number, count: number): void {
    const core = this.live("markPresentRange");
    checkRange(start, count, this.options.pageCount);
    core.markPresentRange(start, count);
  }

  /** Forget every present/sent page but keep the model: a new migration with what was learned. */
  clearPresent(): void {
    this.live("clearPresent").clearPresent();
  }

  isPresent(page: number): boolean {
    const core = this.live("isPresent");
    this.checkPage("page", page);
    return core.isPresent(page) !== 0;
  }

  stats(): PredictorStats {
    const core = this.live("stats");
    return {
      faults: core.counter(COUNTER.faults),
      predictions: core.counter(COUNTER.predictions),
      observed: core.counter(COUNTER.observed),
      trained: core.counter(COUNTER.trained),
      rehearsed: core.counter(COUNTER.rehearsed),
      pendingHistory: this.pending.pages,
      contexts: core.liveContexts(),
      capacity: core.capacity(),
      memoryBytes: core.memory.buffer.byteLength,
      prunes: core.counter(COUNTER.prunes),
      pruneDue: new Uint32Array(core.memory.buffer, ABI.header + ABI.field.pruneDue, 1)[0] !== 0,
      presentPages: core.counter(COUNTER.present),
    };
  }

  snapshot(): Uint8Array {
    const core = this.live("snapshot");
    // The staging buffer holds whatever train last copied in, which is not state: cleared, the same
    // model gives the same bytes however its history was fed.
    this.refreshViews();
    this.input.fill(0);
    return encodeSnapshot(this.options, new Uint8Array(core.memory.buffer, 0, core.usedBytes()), this.pending.encode());
  }

  reset(): void {
    this.live("reset").clearModel();
    this.pending.clear();
  }

  dispose(): void {
    this.core = undefined;
    this.viewsOf = undefined;
    this.pending.clear();
    this.out = this.input = new Uint32Array(0);
  }
}

/** Create a predictor; synchronous. Throws TypeError/RangeError for bad options. */
export function createPredictor(options: FullPredictorOptions): WasmPredictor {
  // The linear memory is whole 64 KiB Wasm pages: a budget covers the layout rounded up to them.
  const o = resolveOptions(options, (cap) =>
    Math.ceil(layoutBytes(options.order ?? DEFAULTS.order, options.streams ?? DEFAULTS.streams, cap, options.pageCount, options.filter ?? DEFAULTS.filter) / 65536) * 65536);
  return new WasmPredictor(o);
}

/** Rebuild a predictor from snapshot() bytes; it continues exactly as the original would. */
export function restorePredictor(bytes: Uint8Array): WasmPredictor {
  const { options, memory, pending } = decodeSnapshot(bytes);
  let o: ResolvedOptions;
  try {
    o = resolveOptions(options as FullPredictorOptions);
  } catch (e) {
    throw new RangeError(`bytes holds invalid options: ${(e as Error).message}`);
  }
  const histories = PendingHistories.decode(pending, o.streams, o.pageCount, o.pendingBudget);
  if (!o.rehearse && histories.size !== 0) throw new RangeError("bytes holds a pending history for a predictor without the rehearsal");
  return new WasmPredictor(o, memory, histories);
}
