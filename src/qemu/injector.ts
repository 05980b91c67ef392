/**
 * Turns the destination's page requests into predictor faults and the predictor's answers into extra
 * requests, safely: only inside the RAMBlock of the request (bounded by its used_length), never for a
 * page already requested by anyone, coalesced into runs of consecutive pages.
 *
 * The predictor sees one global page space: the RAMBlocks laid end to end in the order the source
 * announced them (RAM_SAVE_FLAG_MEM_SIZE header) or the order given by the user.
 */
import type { Strategy } from "../strategies/types.js";
import { TARGET_PAGE_SIZE, type InjectRange, type PageRequest } from "./returnpath.js";
import type { ServiceTracker } from "./service.js";
import type { QemuStrategy, Steering, TrustFeedback } from "./policy.js";

export interface RamBlockInfo {
  name: string;
  /** used_length in bytes. */
  size: number;
}

export interface RamLayout {
  blocks: RamBlockInfo[];
  /** The machine type of the stream's configuration section, when the layout came from the stream. */
  machine?: string | null;
}

interface BlockState {
  name: string;
  size: number;
  pages: number;
  /** First global page of the block. */
  base: number;
  /** Pages requested (by the destination or injected). */
  requested: Uint8Array;
}

export interface InjectorStats {
  /** Page-request messages from the destination (network faults). */
  requests: number;
  /** Pages those requests covered. */
  requestedPages: number;
  /** Requests for pages the proxy had already requested on the destination's behalf. */
  requestsForInjected: number;
  /** Pages requested by the proxy. */
  injectedPages: number;
  /** REQ_PAGES messages the proxy added. */
  injectedMessages: number;
  /** Predicted pages dropped: outside the block, already requested, or out of the layout. */
  droppedPredictions: number;
  /**
   * Pages the source discarded at the switch-over (MIG_CMD_POSTCOPY_RAM_DISCARD: sent in precopy,
   * dirtied again) that had been present: absent again, so they can be predicted and requested.
   */
  discardedPages: number;
  /** Pages added after an injection to bring QEMU's scanner back after the fault (or, for the preload, to where it was). */
  scannerReturns: number;
  /** Requests for blocks of unknown size (no prediction for them). */
  unknownBlockRequests: number;
  /** Pages requested at the switch-over from the starts of earlier migrations (part of injectedPages). */
  preloadedPages: number;
  /** Predictor time per request, microseconds. */
  predictUs: { count: number; total: number; max: number; median: number; p99: number };
  /** Requests per block name. */
  perBlock: Record<string, number>;
}

export class RequestInjector {
  private blocks = new Map<string, BlockState>();
  private strategy: Strategy | null = null;
  private pageCount = 0;
  private samples: number[] = [];
  private injectedSet = new Map<string, Uint8Array>();
  readonly st = {
    requests: 0, requestedPages: 0, requestsForInjected: 0, injectedPages: 0, injectedMessages: 0,
    droppedPredictions: 0, unknownBlockRequests: 0, scannerReturns: 0, preloadedPages: 0, discardedPages: 0, perBlock: {} as Record<string, number>,
  };
  /** Pages became absent since the strategy was last told its present set (see syncPresent). */
  private presentStale = false;

  /**
   * @param makeStrategy called once when the layout is known, with the global page count; returns
   *   null for no prediction.
   */
  constructor(private readonly makeStrategy: (pageCount: number, layout: RamLayout) => Strategy | null,
              private readonly maxInjectPerRequest = 256) {}

  get layoutKnown(): boolean {
    return this.blocks.size > 0;
  }

  get totalPages(): number {
    return this.pageCount;
  }

  /** Set the RAM layout (once; later calls are ignored). */
  setLayout(layout: RamLayout): void {
    if (this.blocks.size > 0) return;
    let base = 0;
    for (const b of layout.blocks) {
      if (!(b.size > 0) || b.size % TARGET_PAGE_SIZE !== 0) throw new RangeError(`RAMBlock ${b.name}: bad size ${b.size}`);
      const pages = b.size / TARGET_PAGE_SIZE;
      this.blocks.set(b.name, { name: b.name, size: b.size, pages, base, requested: new Uint8Array(pages) });
      this.injectedSet.set(b.name, new Uint8Array(pages));
      base += pages;
    }
    this.pageCount = base;
    if (base > 0) this.strategy = this.makeStrategy(base, layout);
  }

  /** A page went by in the forward stream (QEMU's background push or a request served): present. */
  onForwardPage(block: string, page: number): void {
    const b = this.blocks.get(block);
    if (!b || page >= b.pages || b.requested[page]) return;
    b.requested[page] = 1;
    this.strategy?.onPresent?.(b.base + page);
  }

  /**
   * The source discarded pages [page, page+count) of a block (MIG_CMD_POSTCOPY_RAM_DISCARD, before the
   * switch-over): they are no longer at the destination. Returns how many had been present.
   */
  onDiscard(block: string, page: number, count: number): number {
    const b = this.blocks.get(block);
    if (!b || !(count > 0) || !(page >= 0) || page >= b.pages) return 0;
    const end = Math.min(b.pages, page + count);
    let n = 0;
    for (let p = page; p < end; p++) if (b.requested[p]) { b.requested[p] = 0; n++; }
    if (n > 0) { this.st.discardedPages += n; this.presentStale = true; }
    return n;
  }

  /**
   * Tell the strategy its present set again after discards, once, before it is next asked: the
   * engine cannot make single pages absent, only forget all and be told the present ones again.
   * A strategy without resetPresent keeps the discarded pages present (it will not predict them).
   */
  private syncPresent(): void {
    if (!this.presentStale) return;
    this.presentStale = false;
    const qs = this.strategy as Partial<QemuStrategy> | null;
    if (!qs || typeof qs.resetPresent !== "function") return;
    const runs: [number, number][] = [];
    for (const b of this.blocks.values()) {
      for (let p = 0; p < b.pages;) {
        if (!b.requested[p]) { p++; continue; }
        let q = p + 1;
        while (q < b.pages && b.requested[q]) q++;
        runs.push([b.base + p, q - p]);
        p = q;
      }
    }
    qs.resetPresent(runs);
  }

  blockSize(name: string): number | undefined {
    return this.blocks.get(name)?.size;
  }

  /** Handle one destination request; returns the ranges to inject (same block). */
  /**
   * @param scannerReturn end a non-empty injection with the page after the request: QEMU 7.2 (with or
   *   without postcopy-preempt: get_queued_page moves the search to the queued page) continues its
   *   background scan after the last request it served
   *   (ram_find_and_save_block keeps the position of the queued page it sent), so pages injected
   *   elsewhere would move QEMU's own spatial prefetch away from the fault; the extra page brings it
   *   back (the scanner would have sent that page next anyway). In QEMU >= 8.0 with postcopy-preempt
   *   the return-path thread serves requests with its own search state, so the scan is not moved and
   *   the extra page is only one more injected page (with and without it: no resolved difference, round 4).
   */
  onRequest(req: PageRequest, tracker?: ServiceTracker, scannerReturn = false): InjectRange[] {
    this.st.requests++;
    this.st.perBlock[req.block] = (this.st.perBlock[req.block] ?? 0) + 1;
    const firstPage = Math.floor(req.offset / TARGET_PAGE_SIZE);
    const npages = Math.max(1, Math.ceil(req.length / TARGET_PAGE_SIZE));
    this.st.requestedPages += npages;
    const b = this.blocks.get(req.block);
    if (!b) {
      this.st.unknownBlockRequests++;
      return [];
    }
    const inj = this.injectedSet.get(req.block)!;
    let hitInjected = false;
    for (let p = firstPage; p < firstPage + npages && p < b.pages; p++) {
      if (inj[p]) hitInjected = true;
      if (!b.requested[p]) {
        b.requested[p] = 1;
        this.strategy?.onPresent?.(b.base + p);
      }
    }
    if (hitInjected) this.st.requestsForInjected++;
    if (!this.strategy || firstPage >= b.pages) return [];
    this.syncPresent();

    const t0 = process.hrtime.bigint();
    const qs = this.strategy as Partial<QemuStrategy>;
    const predicted = typeof qs.onRequest === "function"
      ? qs.onRequest(b.base + firstPage, { outstanding: tracker?.outstanding ?? 0, outstandingInjected: tracker?.outstandingInjected ?? 0 })
      : this.strategy.onFault(b.base + firstPage, 0);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    this.samples.push(us);

    const pages: number[] = [];
    const n = Math.min(predicted.length, this.maxInjectPerRequest);
    this.st.droppedPredictions += predicted.length - n;
    for (let k = 0; k < n; k++) {
      const g = predicted[k];
      const p = g - b.base;
      if (!Number.isInteger(p) || p < 0 || p >= b.pages || b.requested[p] || tracker?.isSeen(b.name, p)) {
        this.st.droppedPredictions++;
        continue;
      }
      b.requested[p] = 1;
      inj[p] = 1;
      pages.push(p);
      this.strategy.onPresent?.(g);
    }
    if (scannerReturn && pages.length > 0) {
      const r = firstPage + npages;
      if (r < b.pages && !b.requested[r] && !tracker?.isSeen(b.name, r)) {
        b.requested[r] = 1;
        inj[r] = 1;
        pages.push(r);
        this.st.scannerReturns++;
        this.strategy.onPresent?.(b.base + r);
      }
    }
    const ranges = coalesce(pages, b);
    this.st.injectedPages += pages.length;
    this.st.injectedMessages += ranges.length;
    return ranges;
  }

  /**
   * The strategy's switch-over pages (`preload`), as ranges per RAMBlock, filtered like predictions
   * (inside a known block, never requested or seen); with `scannerAfter` (the last page QEMU's
   * scan sent) a non-empty preload in that block ends with the page after it, so
   * the scan goes on where it was.
   */
  preload(tracker?: ServiceTracker, scannerAfter?: { block: string; page: number }): { block: string; ranges: InjectRange[] }[] {
    const qs = this.strategy as Partial<QemuStrategy> | null;
    if (!qs || typeof qs.preload !== "function") return [];
    this.syncPresent();
    const byBlock = new Map<string, number[]>();
    for (const g of qs.preload()) {
      const b = [...this.blocks.values()].find((x) => g >= x.base && g < x.base + x.pages);
      if (!b || !Number.isInteger(g)) { this.st.droppedPredictions++; continue; }
      const p = g - b.base;
      if (b.requested[p] || tracker?.isSeen(b.name, p)) { this.st.droppedPredictions++; continue; }
      b.requested[p] = 1;
      this.injectedSet.get(b.name)![p] = 1;
      let l = byBlock.get(b.name);
      if (!l) byBlock.set(b.name, (l = []));
      l.push(p);
      this.strategy!.onPresent?.(g);
    }
    const out: { block: string; ranges: InjectRange[] }[] = [];
    for (const [name, pages] of byBlock) {
      const b = this.blocks.get(name)!;
      this.st.preloadedPages += pages.length;
      if (scannerAfter && scannerAfter.block === name) {
        const r = scannerAfter.page + 1;
        if (r < b.pages && !b.requested[r] && !tracker?.isSeen(name, r)) {
          b.requested[r] = 1;
          this.injectedSet.get(name)![r] = 1;
          pages.push(r);
          this.st.scannerReturns++;
          this.strategy!.onPresent?.(b.base + r);
        }
      }
      const ranges = coalesce(pages, b);
      this.st.injectedPages += pages.length;
      this.st.injectedMessages += ranges.length;
      out.push({ block: name, ranges });
    }
    return out;
  }

  stats(): InjectorStats {
    const s = [...this.samples].sort((a, b) => a - b);
    const total = s.reduce((a, b) => a + b, 0);
    return {
      ...this.st,
      perBlock: { ...this.st.perBlock },
      predictUs: {
        count: s.length,
        total: round(total),
        max: round(s.length ? s[s.length - 1] : 0),
        median: round(s.length ? s[Math.floor(s.length / 2)] : 0),
        p99: round(s.length ? s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] : 0),
      },
    };
  }

  /**
   * The strategy's upkeep (Strategy.maintain), for after a chunk's requests and their injections
   * are written: the engine counts the last request in its page trie there, and runs a due prune.
   */
  maintain(): void {
    const qs = this.strategy as Partial<QemuStrategy> | null;
    if (qs && typeof qs.maintain === "function") qs.maintain();
  }

  /** The strategy's model (snapshot bytes), when it has one. */
  snapshot(): Uint8Array | null {
    const qs = this.strategy as Partial<QemuStrategy> | null;
    return qs && typeof qs.snapshot === "function" ? qs.snapshot() : null;
  }

  /** Tell the strategy how to steer QEMU's push in this migration (QemuStrategy.steer), if it can. */
  steer(s: Steering): void {
    (this.strategy as Partial<QemuStrategy> | null)?.steer?.(s);
  }

  /** Where the strategy's model came from and how often its gate held injection back. */
  strategyInfo(): { name: string; origin?: string; gated?: number; feedback?: TrustFeedback } | null {
    if (!this.strategy) return null;
    const qs = this.strategy as Partial<QemuStrategy>;
    return { name: this.strategy.name, origin: qs.origin, gated: qs.gated, ...(qs.feedback ? { feedback: { ...qs.feedback } } : {}) };
  }

  dispose(): void {
    this.strategy?.dispose?.();
    this.strategy = null;
  }
}

/** Consecutive pages as one range, keeping the order of runs. */
function coalesce(pages: number[], b: BlockState): InjectRange[] {
  const ranges: InjectRange[] = [];
  for (let k = 0; k < pages.length;) {
    let j = k + 1;
    while (j < pages.length && pages[j] === pages[j - 1] + 1) j++;
    const off = pages[k] * TARGET_PAGE_SIZE;
    const len = (j - k) * TARGET_PAGE_SIZE;
    if (off + len > b.size) throw new Error("internal: injection outside the RAMBlock"); // cannot happen
    ranges.push({ offset: off, length: len });
    k = j;
  }
  return ranges;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
