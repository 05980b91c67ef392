/**
 * The predictor: a thin class over the raw Wasm exports. It validates every argument before the
 * core sees it (so a bad call changes nothing), keeps long-lived typed-array views over the core's
 * fixed input and output buffers, and never copies on the fault path.
 */
import type { Predictor, PredictorStats } from "./types.js";
import { checkPage, checkStream, checkPages, checkRange, checkUnsend, checkFirst, noSearchToContinue, keepsStoppedSearch } from "./validate.js";
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
  /**
   * One bit per page: sent by a prediction (predictNext, predictInto, predictFirst or predictRest
   * returned it) and not marked present since. The core's bitmap has one bit for both (a set bit is
   * never predicted again), so this is what unsend() checks: it releases only such a page. Cleared
   * by a fault on the page, observe, markPresent, markPresentRange, unsend, clearPresent and reset.
   * Not in a snapshot: a restored predictor starts with none (unsend accepts only pages predicted
   * since restore).
   */
  private sent: Uint8Array;
  private sentCount = 0; // bits set in `sent` (whole-bitmap clears are skipped when 0)
  private restored: boolean; // from a snapshot, and no clearPresent/reset since
  /** Pages predictFirst (or a predictRest after it) has output, while predictRest may be called; -1: not. */
  private restFrom = -1;

  /**
   * Prefer createPredictor / restorePredictor. The class is exported (for instanceof and types), so
   * `new WasmPredictor(options)` is checked and completed exactly as createPredictor's options are.
   */
  constructor(given: FullPredictorOptions | ResolvedOptions, memoryImage?: Uint8Array, pending?: PendingHistories) {
    const options = resolveSized(given);
    this.options = Object.freeze({ ...options });
    this.restored = memoryImage !== undefined;
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
    // Zero-filled: the OS maps its pages as they are first written (a bit per page, as the core's bitmap).
    this.sent = new Uint8Array(Math.ceil(options.pageCount / 8));
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

  /** The core, for a call that takes no arguments: a stopped search ends here (unless `method` keeps it). */
  private live(method: string): CoreExports {
    const core = this.alive(method);
    this.proceed(method);
    return core;
  }

  /** The core, not yet ending a stopped search: a call with arguments checks them first, then proceed(). */
  private alive(method: string): CoreExports {
    const core = this.core;
    if (!core) throw new TypeError(`predictor.${method}() called after dispose()`);
    return core;
  }

  /** The arguments passed: the call goes ahead and ends a stopped search (the core ends it too). A refused call keeps it. */
  private proceed(method: string): void {
    if (!keepsStoppedSearch(method)) this.restFrom = -1;
  }

  private checkPage(name: string, v: unknown): number {
    return checkPage(name, v, this.options.pageCount);
  }

  private checkStream(v: unknown): number {
    return checkStream(v, this.options.streams);
  }

  train(pages: Uint32Array | readonly number[], stream?: number): void {
    const core = this.alive("train");
    const s = this.checkStream(stream);
    const list = checkPages(pages, this.options.pageCount);
    this.proceed("train");
    this.refreshViews();
    for (let off = 0; off < list.length; off += IN_CAPACITY) core.train(this.stage(list, off, list.length), s);
    // An empty history adds nothing to rehearse (and a zero-length pending entry would not restore).
    if (this.options.rehearse && list.length > 0) this.pending.append(s, list);
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
  private stage(pages: Uint32Array, from: number, to: number): number {
    const end = Math.min(to, from + IN_CAPACITY);
    this.input.set(pages.subarray(from, end));
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
    this.alive("predictNext"); // predictInto checks the arguments
    const n = this.predictInto(fault, stream);
    return this.out.subarray(0, n);
  }

  /** predictNext without creating a view: returns the count; the pages are output[0..count). */
  predictInto(fault: number, stream?: number): number {
    const core = this.alive("predictInto");
    this.checkPage("fault", fault);
    const s = this.checkStream(stream);
    this.proceed("predictInto");
    if (this.pending.size !== 0) this.rehearsePending(core);
    const n = core.predictNext(fault, s);
    this.clearSent(fault); // faulted: present, no longer a page on its way
    this.markSent(0, n);
    return n;
  }

  predictFirst(fault: number, first: number, stream?: number): number {
    const core = this.alive("predictFirst");
    this.checkPage("fault", fault);
    const s = this.checkStream(stream);
    const k = checkFirst(first);
    this.proceed("predictFirst");
    if (this.pending.size !== 0) this.rehearsePending(core);
    const n = core.predictFirst(fault, s, Math.min(k, OUT_CAPACITY));
    this.clearSent(fault);
    this.markSent(0, n);
    this.restFrom = n;
    return n;
  }

  predictRest(): number {
    const core = this.live("predictRest");
    if (this.restFrom < 0) throw noSearchToContinue();
    const r = core.predictRest() >>> 0; // a u32 comes back as an i32
    const n = r === 0xffffffff ? this.restFrom : r; // the search had ended in predictFirst
    this.markSent(this.restFrom, n);
    this.restFrom = n;
    return n;
  }

  /** The output's pages [from, to) are on their way: mark them sent. */
  private markSent(from: number, to: number): void {
    if (to <= from) return;
    this.refreshViews();
    const out = this.out, sent = this.sent;
    for (let i = from; i < to; i++) {
      const p = out[i], m = 1 << (p & 7);
      if ((sent[p >>> 3] & m) === 0) { sent[p >>> 3] |= m; this.sentCount++; }
    }
  }

  private clearSent(page: number): void {
    if (this.sentCount === 0) return;
    const m = 1 << (page & 7), i = page >>> 3;
    if (this.sent[i] & m) { this.sent[i] &= ~m; this.sentCount--; }
  }

  /** Clear the sent bits of [start, start + count). */
  private clearSentRange(start: number, count: number): void {
    if (this.sentCount === 0 || count === 0) return;
    const end = start + count;
    let p = start;
    for (; p < end && (p & 7) !== 0; p++) this.clearSent(p);
    const sent = this.sent;
    for (; end - p >= 8 && this.sentCount !== 0; p += 8) {
      const b = sent[p >>> 3];
      if (b !== 0) { this.sentCount -= popcount8(b); sent[p >>> 3] = 0; }
    }
    for (; p < end && this.sentCount !== 0; p++) this.clearSent(p);
  }

  /** No page is sent any more (clearPresent, reset): nothing from before a restore either. */
  private clearAllSent(): void {
    if (this.sentCount !== 0) this.sent.fill(0);
    this.sentCount = 0;
    this.restored = false;
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
    const core = this.alive("observe");
    this.checkPage("page", page);
    const s = this.checkStream(stream);
    this.proceed("observe");
    if (this.pending.size !== 0) this.rehearsePending(core);
    core.observe(page, s);
    this.clearSent(page);
  }

  markPresent(page: number): void {
    const core = this.alive("markPresent");
    this.checkPage("page", page);
    this.proceed("markPresent");
    core.markPresent(page);
    this.clearSent(page);
  }

  /**
   * Release a page that predictNext/predictInto returned (and marked sent) but the caller did not
   * send after all: absent again, it may be predicted again. Only such a page: one that was never
   * returned, was faulted, observed or marked present since, or was unsent already is a RangeError
   * naming the page and why, and nothing changes. A snapshot does not record which pages were sent
   * by a prediction: after restorePredictor() only pages predicted since the restore can be unsent.
   */
  unsend(page: number): void {
    const core = this.alive("unsend");
    this.checkPage("page", page);
    const sent = (this.sent[page >>> 3] & (1 << (page & 7))) !== 0;
    checkUnsend(page, sent, !sent && core.isPresent(page) !== 0, this.restored);
    this.proceed("unsend");
    core.unsend(page);
    this.clearSent(page);
  }

  markPresentRange(start: number, count: number): void {
    const core = this.alive("markPresentRange");
    checkRange(start, count, this.options.pageCount);
    this.proceed("markPresentRange");
    core.markPresentRange(start, count);
    this.clearSentRange(start, count);
  }

  /** Forget every present/sent page but keep the model: a new migration with what was learned. */
  clearPresent(): void {
    this.live("clearPresent").clearPresent();
    this.clearAllSent();
  }

  isPresent(page: number): boolean {
    const core = this.live("isPresent");
    this.checkPage("page", page);
    return core.isPresent(page) !== 0;
  }

  stats(): PredictorStats {
    const core = this.live("stats");
    core.settle(); // the last fault's deferred counting (assembly/learn.ts): counters as if done
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
    core.settle(); // a snapshot never holds a deferred learning
    // The staging buffer holds whatever train last copied in, which is not state: cleared, the same
    // model gives the same bytes however its history was fed.
    this.refreshViews();
    this.input.fill(0);
    return encodeSnapshot(this.options, new Uint8Array(core.memory.buffer, 0, core.usedBytes()), this.pending.encode());
  }

  reset(): void {
    this.live("reset").clearModel();
    this.pending.clear();
    this.clearAllSent();
  }

  dispose(): void {
    this.core = undefined;
    this.viewsOf = undefined;
    this.pending.clear();
    this.out = this.input = new Uint32Array(0);
    this.conf = new Float32Array(0); // a view keeps the whole Wasm memory alive
    this.sent = new Uint8Array(0);
    this.sentCount = 0;
  }
}

function popcount8(b: number): number {
  b = b - ((b >>> 1) & 0x55);
  b = (b & 0x33) + ((b >>> 2) & 0x33);
  return (b + (b >>> 4)) & 0x0f;
}

/** Check and complete options, sizing the arena from memoryBytes when that is given. */
export function resolveSized(options: FullPredictorOptions): ResolvedOptions {
  // The linear memory is whole 64 KiB Wasm pages: a budget covers the layout rounded up to them.
  return resolveOptions(options, (cap) =>
    Math.ceil(layoutBytes(options.order ?? DEFAULTS.order, options.streams ?? DEFAULTS.streams, cap, options.pageCount, options.filter ?? DEFAULTS.filter) / 65536) * 65536);
}

/** Create a predictor; synchronous. Throws TypeError/RangeError for bad options. */
export function createPredictor(options: FullPredictorOptions): WasmPredictor {
  return new WasmPredictor(options);
}

/**
 * Rebuild a predictor from snapshot() bytes; it continues exactly as the original would, except that
 * the snapshot does not record which pages were sent by a prediction (they are present pages like
 * the others): unsend() accepts only pages predicted after the restore.
 */
export function restorePredictor(bytes: Uint8Array): WasmPredictor {
  const { options, memory, pending } = decodeSnapshot(bytes);
  // A snapshot stores the resolved options: maxContexts, never the memoryBytes budget it came from.
  if (options !== null && typeof options === "object" && "memoryBytes" in options) {
    throw new RangeError("bytes holds invalid options: memoryBytes (a snapshot stores the arena size, maxContexts, not a budget)");
  }
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
