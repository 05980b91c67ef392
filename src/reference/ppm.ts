/**
 * The reference model: the same algorithm as the Wasm core (assembly/), written for clarity with
 * objects, Maps and arrays. It is slow on purpose-free code paths and exists for two reasons: to
 * explain the algorithm in plain TypeScript, and to check the core: differential tests feed both
 * the same calls and require identical predictions. Every rule that decides an output (order of
 * updates, pruning, tie-breaking) is mirrored exactly; node ids and
 * memory layout, which decide nothing, are not.
 */
import { checkPage, checkStream, checkPages, checkRange, checkUnsend, checkFirst, noSearchToContinue, keepsStoppedSearch } from "../engine/validate.js";
import { resolveOptions, type FullPredictorOptions, type ResolvedOptions } from "../engine/options.js";
import type { Predictor, PredictorStats } from "../engine/types.js";
import { rehearsalLengths, REHEARSAL_PAGES, PendingHistories } from "../engine/rehearsal.js";

const FAR = 0x80000000; // the delta symbol for every |delta| > deltaRange
const STATES = 128 * 16 + 1; // search states: the root + lookahead (max 128) x BRANCH
const BRANCH = 16; // candidates followed from one expanded state
const COUNT_MAX = 0xffff; // counts are 16-bit in the core (they saturate; see increment)
const SCAN = 16; // successors of one context considered when scoring (most recently counted first)

/** A context: the path from its root is the context's symbols; children are its successors. */
class Node {
  count = 0;
  total = 0; // sum of the children's counts
  freed = false;
  readonly kids: Node[] = []; // least recently counted first; iterated from the end, as the core's lists are
  readonly byKey = new Map<number, Node>();
  constructor(readonly symbol: number) {}
}

interface StreamState {
  last: number; // -1: none yet
  ctx: (Node | null)[][]; // [alphabet][order 0..K]; [a][0] unused (the root is implicit)
}

interface SearchState {
  p: number; // path probability; -1 = empty slot
  anchor: number;
  ctx: (Node | null)[][];
  level?: number; // expansions from the root to this state (the root: 0)
}

/** A set whose insert says whether the key is new. */
class KeySet {
  private s = new Set<number>();
  has(k: number): boolean { return this.s.has(k); }
  /** true when k was not there and was inserted */
  insert(k: number): boolean {
    if (this.s.has(k)) return false;
    this.s.add(k);
    return true;
  }
}

export class ReferencePredictor implements Predictor {
  readonly options: Readonly<ResolvedOptions>;
  private pageRoot = new Node(0);
  private deltaRoot = new Node(0);
  private nodes = 0;
  private streamStates: StreamState[] = [];
  private present = new Set<number>();
  /** Pages a prediction returned (marked sent) and not marked present since: what unsend() accepts. */
  private sent = new Set<number>();
  private lruPages: number[] = [];
  private lruStamps: number[] = [];
  private tick = 0;
  private counters = { faults: 0, predictions: 0, observed: 0, trained: 0, rehearsed: 0, prunes: 0 };
  private deferPrune = false; // on the fault path (predictNext, observe): a full arena flags, maintain() prunes
  private pruneDue = false;
  private disposed = false;
  private pending!: PendingHistories;
  /**
   * The shape of the last search (a diagnostic for bench/search-shape.ts): states expanded, and levels
   * of the expansion tree (the root alone: 1). The levels bound how many rounds of dependent memory
   * loads a search must wait for, however its lookups are laid out: expansions on one level are
   * independent of each other.
   */
  readonly lastSearch = { expansions: 0, levels: 0 };

  constructor(options: ResolvedOptions) {
    this.options = Object.freeze({ ...options });
    this.reset();
  }

  private get K(): number { return this.options.order; }
  private get usePage(): boolean { return this.options.alphabet !== "delta"; }
  private get useDelta(): boolean { return this.options.alphabet !== "page"; }

  reset(): void {
    if (this.disposed) throw new TypeError("predictor.reset() called after dispose()");
    this.restFrom = -1;
    this.pageRoot = new Node(0);
    this.deltaRoot = new Node(0);
    this.nodes = 0;
    this.present = new Set();
    this.sent = new Set();
    this.streamStates = Array.from({ length: this.options.streams }, () => ({ last: -1, ctx: [this.emptyCtx(), this.emptyCtx()] }));
    this.lruPages = new Array(this.options.filter).fill(-1);
    this.lruStamps = new Array(this.options.filter).fill(0);
    this.tick = 0;
    this.counters = { faults: 0, predictions: 0, observed: 0, trained: 0, rehearsed: 0, prunes: 0 };
    this.pruneDue = false;
    this.pending = new PendingHistories(this.options.pendingBudget);
  }

  private emptyCtx(): (Node | null)[] {
    return new Array(this.K + 1).fill(null);
  }

  // ---- the trie ----

  private increment(parent: Node, symbol: number): Node | null {
    let child = parent.byKey.get(symbol);
    if (!child) {
      if (this.nodes >= this.options.maxContexts) {
        if (this.deferPrune) { this.pruneDue = true; return null; }
        this.pruneAll();
        if (parent.freed) return null;
        if (this.nodes >= this.options.maxContexts) return null;
      }
      child = new Node(symbol);
      parent.kids.push(child);
      parent.byKey.set(symbol, child);
      this.nodes++;
    } else if (parent.kids[parent.kids.length - 1] !== child) {
      // Most recently counted last (the core keeps it first in its linked list).
      parent.kids.splice(parent.kids.indexOf(child), 1);
      parent.kids.push(child);
    }
    // Counts are 16-bit in the core; only the page root's children (which ageing never bounds) reach it.
    if (child.count < COUNT_MAX) child.count++;
    parent.total++;
    // Ageing: halve the successors' counts, dropping those that reach zero (the page root is exempt).
    if (parent.total > this.options.ageLimit && parent !== this.pageRoot) {
      if (this.halveChildren(parent, false)) this.forgetFreedContexts();
      if (child.freed) return null;
    }
    return child;
  }

  private free(n: Node): void {
    for (const c of n.kids) this.free(c);
    n.freed = true;
    this.nodes--;
  }

  /** Halve the children's counts (recursively for a prune); drop zero counts. True if any dropped. */
  private halveChildren(parent: Node, recursive: boolean): boolean {
    let total = 0;
    let dropped = false;
    const keep: Node[] = [];
    for (const c of parent.kids) {
      const n = c.count >>> 1;
      if (n === 0) {
        parent.byKey.delete(c.symbol);
        this.free(c);
        dropped = true;
      } else {
        c.count = n;
        total += n;
        if (recursive && this.halveChildren(c, true)) dropped = true;
        keep.push(c);
      }
    }
    parent.kids.length = 0;
    parent.kids.push(...keep);
    parent.total = total;
    return dropped;
  }

  private forgetFreedContexts(): void {
    for (const s of this.streamStates) for (const a of s.ctx) for (let k = 0; k < a.length; k++) if (a[k]?.freed) a[k] = null;
  }

  prune(): void {
    this.live("prune");
    this.pruneAll();
  }

  private pruneAll(): void {
    this.halveChildren(this.pageRoot, true);
    this.halveChildren(this.deltaRoot, true);
    this.counters.prunes++;
    this.pruneDue = false;
    this.forgetFreedContexts();
  }

  maintain(): boolean {
    this.live("maintain");
    if (!this.pruneDue) return false;
    this.pruneAll();
    return true;
  }

  /** Learn on the fault path: a full arena is flagged for maintain(), not pruned. */
  private onFaultPath(learn: () => void): void {
    this.deferPrune = true;
    try { learn(); } finally { this.deferPrune = false; }
  }

  // ---- learning ----

  private deltaSymbol(from: number, to: number): number {
    const d = to - from;
    return d > this.options.deltaRange || d < -this.options.deltaRange ? FAR : d >>> 0;
  }

  private updateAlphabet(s: StreamState, a: number, root: Node, symbol: number): void {
    const ctx = s.ctx[a];
    const top = ctx[this.K];
    if (top) this.increment(top, symbol);
    for (let k = this.K - 1; k >= 0; k--) {
      const c = k === 0 ? root : ctx[k];
      ctx[k + 1] = c ? this.increment(c, symbol) : null;
    }
  }

  private learn(page: number, stream: number): void {
    const s = this.streamStates[stream];
    if (this.usePage) this.updateAlphabet(s, 0, this.pageRoot, page);
    if (this.useDelta) this.learnDelta(s, page);
    s.last = page;
  }

  private learnDelta(s: StreamState, page: number): void {
    if (s.last < 0) s.ctx[1].fill(null); // no previous page: the delta context starts empty
    else this.updateAlphabet(s, 1, this.deltaRoot, this.deltaSymbol(s.last, page));
  }

  /** The training filter: true when the page is among the `filter` most recently touched. */
  private recentlyTouched(page: number): boolean {
    const tick = ++this.tick;
    const i = this.lruPages.indexOf(page);
    if (i >= 0) {
      this.lruStamps[i] = tick;
      return true;
    }
    let oldest = 0;
    for (let j = 1; j < this.lruStamps.length; j++) if (this.lruStamps[j] < this.lruStamps[oldest]) oldest = j;
    this.lruPages[oldest] = page;
    this.lruStamps[oldest] = tick;
    return false;
  }

  // ---- prediction ----

  /**
   * Blend one alphabet's orders for state `st` into `cand`. Offers that could only make a dead state
   * (path probability <= bar) are not made, and an order whose escape mass cannot lift one above the
   * bar ends the blend: that decides which offer comes first, so ties between candidates follow it.
   */
  private score(st: SearchState, a: number, cand: Map<number, number>, bar: number): void {
    const excl = new KeySet();
    let mult = 1;
    for (let k = this.K; k >= (a === 0 ? 1 : 0); k--) {
      if (st.p * mult <= bar) break;
      const node = k === 0 ? this.deltaRoot : st.ctx[a][k];
      if (!node || node.kids.length === 0) continue;
      const recent = node.kids.slice(-SCAN).reverse();
      let tot = 0, d = 0;
      for (const c of recent) {
        if (!excl.has(c.symbol)) { tot += c.count; d++; }
      }
      if (d === 0) continue;
      const e = this.options.escape;
      const denom = e === "A" ? tot + 1 : e === "B" ? tot : e === "C" ? tot + d : 2 * tot;
      const esc = e === "A" ? 1 / denom : e === "B" ? d / tot : d / denom;
      for (const c of recent) {
        if (!excl.insert(c.symbol) || (a === 1 && c.symbol === FAR)) continue;
        const num = e === "A" || e === "C" ? c.count : e === "B" ? c.count - 1 : 2 * c.count - 1;
        const p = mult * (num / denom);
        if (p <= 0 || st.p * p <= bar) continue;
        const page = a === 0 ? c.symbol : st.anchor + (c.symbol | 0);
        if (page < 0 || page >= this.options.pageCount) continue;
        const old = cand.get(page);
        if (old === undefined || old < p) cand.set(page, p);
      }
      mult *= esc < 1 ? esc : 1;
    }
  }

  /** The contexts after `sym` (no learning): each order's child of the order below, the root's for order 1. */
  private nextContexts(ctx: readonly (Node | null)[], root: Node, sym: number): (Node | null)[] {
    const next = this.emptyCtx();
    for (let k = this.K - 1; k >= 0; k--) {
      const c = k === 0 ? root : ctx[k];
      next[k + 1] = c ? c.byKey.get(sym) ?? null : null;
    }
    return next;
  }

  private advance(src: SearchState, page: number, p: number): SearchState {
    const ctx = [
      this.usePage ? this.nextContexts(src.ctx[0], this.pageRoot, page) : this.emptyCtx(),
      this.useDelta ? this.nextContexts(src.ctx[1], this.deltaRoot, this.deltaSymbol(src.anchor, page)) : this.emptyCtx(),
    ];
    return { p, anchor: page, ctx, level: (src.level ?? 0) + 1 };
  }

  /**
   * The state's best BRANCH candidates (page, probability of the step), best first; ties keep the
   * order of scoring (longer contexts first, more recently counted successors first: Array sort is
   * stable). Offers that could only make a dead state (path probability <= bar) are left out.
   */
  private candidates(cur: SearchState, bar: number): [number, number][] {
    const cand = new Map<number, number>();
    if (this.usePage) this.score(cur, 0, cand, bar);
    if (this.useDelta) this.score(cur, 1, cand, bar);
    return [...cand].sort((x, y) => y[1] - x[1]).slice(0, BRANCH);
  }

  /** The room-th best probability among the frontier's absent pages, or -1 when it holds fewer. */
  private deadBar(states: readonly (SearchState & { done: boolean })[], room: number): number {
    const absent = states.filter((st) => !st.done && !this.present.has(st.anchor)).map((st) => st.p).sort((x, y) => y - x);
    return room > 0 && absent.length >= room ? absent[room - 1] : -1;
  }

  private search(stream: number): number[] {
    const s = this.streamStates[stream];
    // Every state ever created, in creation order; a popped state is marked done.
    const states: (SearchState & { done: boolean })[] = [{ p: 1, anchor: s.last, ctx: [s.ctx[0].slice(), s.ctx[1].slice()], done: false }];
    const followed = new KeySet();
    followed.insert(s.last);
    const out: number[] = [];
    let expansions = 0;
    let levels = 0;
    while (out.length < this.options.depth) {
      // Pop the most probable state; ties go to the one created first.
      let best = -1;
      for (let i = 0; i < states.length; i++) if (!states[i].done && (best < 0 || states[i].p > states[best].p)) best = i;
      if (best < 0) break;
      const cur = states[best];
      cur.done = true;
      if (!this.present.has(cur.anchor)) {
        this.present.add(cur.anchor);
        this.conf[out.length] = cur.p;
        out.push(cur.anchor);
        if (out.length === this.options.depth) break; // nothing an expansion finds could be output any more
      }
      if (expansions >= this.options.lookahead) continue;
      expansions++;
      // Dead states (the core's predict.ts): with `depth - out` absent pages of probability >= bar
      // in the frontier, a new state of probability <= bar is never popped before the search ends.
      const bar = this.deadBar(states, this.options.depth - out.length);
      levels = Math.max(levels, (cur.level ?? 0) + 1);
      for (const [page, q] of this.candidates(cur, bar)) {
        const p = cur.p * q;
        if (p < this.options.threshold || p <= bar) break;
        if (followed.insert(page) && states.length < STATES) states.push({ ...this.advance(cur, page, p), done: false });
      }
    }
    this.counters.predictions += out.length;
    this.lastSearch.expansions = expansions;
    this.lastSearch.levels = levels;
    return out;
  }

  // ---- the public surface (validation as in the Wasm predictor) ----

  /** A call that takes no arguments: a stopped search ends here (unless `method` keeps it). */
  private live(method: string): void {
    this.alive(method);
    this.proceed(method);
  }

  /** Not disposed; a call with arguments checks them, then proceed(): a refused call keeps a stopped search. */
  private alive(method: string): void {
    if (this.disposed) throw new TypeError(`predictor.${method}() called after dispose()`);
  }

  private proceed(method: string): void {
    if (!keepsStoppedSearch(method)) this.restFrom = -1; // its undelivered pages stay absent
  }

  /** Pages out[from..to) of the latest search: output (present, sent, counted) or not (yet). */
  private deliver(from: number, to: number, yes: boolean): void {
    for (let i = from; i < to; i++) {
      if (yes) { this.present.add(this.out[i]); this.sent.add(this.out[i]); } else { this.present.delete(this.out[i]); this.sent.delete(this.out[i]); }
    }
    this.counters.predictions += yes ? to - from : from - to;
  }

  private checkPage(name: string, v: unknown): number {
    return checkPage(name, v, this.options.pageCount);
  }

  private checkStream(v: unknown): number {
    return checkStream(v, this.options.streams);
  }

  train(pages: Uint32Array | readonly number[], stream?: number): void {
    this.alive("train");
    const s = this.checkStream(stream);
    const list = checkPages(pages, this.options.pageCount);
    this.proceed("train");
    for (let i = 0; i < list.length; i++) {
      if (this.options.filter !== 0 && this.recentlyTouched(list[i])) continue;
      this.learn(list[i], s);
    }
    this.counters.trained += list.length;
    if (this.options.rehearse && list.length > 0) this.pending.append(s, list);
  }

  rehearse(): void {
    this.live("rehearse");
    this.rehearsePending();
  }

  private rehearsePending(): void {
    for (const h of this.pending.list()) this.rehearseHistory(h.tail, h.length, h.stream);
    this.pending.clear();
  }

  /**
   * Learn the first touches of the history's suffixes, shortest first (see engine/rehearsal.ts), on
   * a scratch stream that starts where `stream` stands: the real stream keeps the context the history
   * left it in, which is where the actual switch-over will find it.
   */
  private rehearseHistory(tail: Uint32Array, length: number, stream: number): void {
    const from = this.streamStates[stream];
    const scratch: StreamState = { last: from.last, ctx: from.ctx.map((c) => c.slice()) };
    const id = this.streamStates.push(scratch) - 1; // pruning keeps its contexts valid as it does every stream's
    for (const len of rehearsalLengths(length, tail.length)) {
      const firstTouches = new Set<number>(); // a Set iterates in insertion order: first touch first
      for (let i = tail.length - len; i < tail.length; i++) firstTouches.add(tail[i]);
      if (firstTouches.size > REHEARSAL_PAGES) break;
      for (const p of firstTouches) this.learn(p, id);
      this.counters.rehearsed += firstTouches.size;
    }
    this.streamStates.pop();
  }

  /** The core renumbers its nodes here; ids and layout decide nothing, so the reference has nothing to do. */
  compact(): void {
    this.live("compact");
  }

  private out = new Uint32Array(256); // what predictInto fills, as the core's output buffer
  // predictFirst runs the whole search and delivers its first pages; predictRest the others (the core
  // stops its search in between, with the same pages in the end). Until then the others are not
  // output: absent, unsent, uncounted, as in the core, and they stay so if another call comes first.
  // -1: no predictRest possible.
  private restFrom = -1;
  private restTo = 0;

  predictFirst(fault: number, first: number, stream?: number): number {
    this.alive("predictFirst");
    this.checkPage("fault", fault);
    this.checkStream(stream);
    const k = checkFirst(first);
    this.proceed("predictFirst");
    const n = this.search1(fault, stream);
    this.out.set(this.lastOut);
    this.restTo = n;
    this.restFrom = Math.min(k, n);
    this.deliver(this.restFrom, n, false);
    return this.restFrom;
  }

  predictRest(): number {
    this.live("predictRest");
    if (this.restFrom < 0) throw noSearchToContinue();
    this.deliver(this.restFrom, this.restTo, true);
    this.restFrom = this.restTo;
    return this.restTo;
  }
  private conf = new Float32Array(256); // the path probability of each page of the latest search

  predictInto(fault: number, stream?: number): number {
    this.alive("predictInto");
    const n = this.search1(fault, stream, "predictInto");
    this.out.set(this.lastOut);
    return n;
  }

  get output(): Uint32Array {
    this.live("output");
    return this.out;
  }

  get confidence(): Float32Array {
    this.live("confidence");
    return this.conf;
  }

  predictNext(fault: number, stream?: number): Uint32Array {
    this.alive("predictNext");
    this.search1(fault, stream, "predictNext");
    return this.lastOut;
  }

  private lastOut = new Uint32Array(0);

  /** Learn the fault and search (predictNext's work for all three forms): the count; the pages in lastOut. */
  private search1(fault: number, stream: number | undefined, method = "predictFirst"): number {
    this.checkPage("fault", fault);
    const s = this.checkStream(stream);
    this.proceed(method);
    if (this.pending.size !== 0) this.rehearsePending();
    // The delta trie learns the fault at once; the page trie's contexts are found by lookup and its
    // counting follows the prediction (the core defers it: assembly/learn.ts, deferred learning).
    const st = this.streamStates[s];
    const pageBefore = st.ctx[0];
    if (this.useDelta) this.onFaultPath(() => this.learnDelta(st, fault));
    if (this.usePage) st.ctx[0] = this.nextContexts(pageBefore, this.pageRoot, fault);
    st.last = fault;
    this.present.add(fault);
    this.sent.delete(fault);
    this.counters.faults++;
    const out = this.search(s);
    for (const p of out) this.sent.add(p);
    if (this.usePage) {
      st.ctx[0] = pageBefore;
      this.onFaultPath(() => this.updateAlphabet(st, 0, this.pageRoot, fault));
    }
    this.lastOut = Uint32Array.from(out);
    return out.length;
  }

  observe(page: number, stream?: number): void {
    this.alive("observe");
    this.checkPage("page", page);
    const s = this.checkStream(stream);
    this.proceed("observe");
    if (this.pending.size !== 0) this.rehearsePending();
    this.onFaultPath(() => this.learn(page, s));
    this.present.add(page);
    this.sent.delete(page);
    this.counters.observed++;
  }

  markPresent(page: number): void {
    this.alive("markPresent");
    this.checkPage("page", page);
    this.proceed("markPresent");
    this.present.add(page);
    this.sent.delete(page);
  }

  unsend(page: number): void {
    this.alive("unsend");
    this.checkPage("page", page);
    checkUnsend(page, this.sent.has(page), this.present.has(page), false);
    this.proceed("unsend");
    this.present.delete(page);
    this.sent.delete(page);
  }

  markPresentRange(start: number, count: number): void {
    this.alive("markPresentRange");
    checkRange(start, count, this.options.pageCount);
    this.proceed("markPresentRange");
    for (let p = start; p < start + count; p++) { this.present.add(p); this.sent.delete(p); }
  }

  clearPresent(): void {
    this.live("clearPresent");
    this.present.clear();
    this.sent.clear();
  }

  isPresent(page: number): boolean {
    this.live("isPresent");
    return this.present.has(this.checkPage("page", page));
  }

  stats(): PredictorStats {
    this.live("stats");
    return {
      ...this.counters,
      pruneDue: this.pruneDue,
      pendingHistory: this.pending.pages,
      contexts: this.nodes,
      capacity: this.options.maxContexts,
      memoryBytes: 0,
      presentPages: this.present.size,
    };
  }

  snapshot(): Uint8Array {
    throw new TypeError("the reference model has no snapshot format; snapshot the Wasm predictor");
  }

  dispose(): void {
    this.disposed = true;
  }
}

export function createReferencePredictor(options: FullPredictorOptions): ReferencePredictor {
  if (options !== null && typeof options === "object" && options.memoryBytes !== undefined) {
    throw new TypeError("the reference model takes options.maxContexts, not options.memoryBytes");
  }
  return new ReferencePredictor(resolveOptions(options));
}
