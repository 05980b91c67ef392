/**
 * `ppm`: the product's one default. The engine under a send policy that pays in a real migration,
 * where a background push keeps the link busy and every predicted page takes a push page's slot:
 * each page sent ahead of the push delays every push page behind it by one page time, the next
 * fault's page among them when the push was about to deliver it.
 *
 * With a push running (qemu, linear, hines):
 *  - where our source owns the push (`ownPush`, the default: the transport's source), it sets the
 *    push's order whatever order it was given: every other page replays the training history after
 *    the faulted page's last occurrence (temporal-push.ts: on a saturated link the order of the push
 *    is what decides the stall), the others are Hines' bubbling around the latest fault (p-1, p+1,
 *    p-2, p+2, ...): the pages next to a fault, on both sides, are the likeliest next ones where
 *    memory is contiguous (over the 11 traces, Hines' push alone has the least stall of the
 *    spatial anchors in 14 of the 22 contiguous cells, Leap's and Linux's readahead on QEMU's push
 *    in 7: `node --import tsx scripts/ppm-table.ts`). Where the push is someone else's (QEMU's own
 *    scanner, in the proxy) the policy plans around it;
 *  - few pages per fault (`pushDepth`, 2): the first pages of a search carry most of its probability;
 *    the later ones are worth less than the push pages they hold back (depth 3 measured no better
 *    over all traces, and deeper batches lose the contiguous layouts: RESULTS.md section 2);
 *  - a short search (`pushEngineOptions`): 2 expansions over contexts of up to 2 pages, nothing under
 *    the confidence bar; the engine's longer default search found the same 2 pages no better
 *    (RESULTS.md section 2) at about twice the time per fault;
 *  - the page alphabet: the push already covers spatial order (QEMU's scanner continues after each
 *    fault), so the engine spends its slots on what the push cannot know, learned correlations;
 *  - no page the push delivers soon anyway: its window (push-window.ts) is as many pages as one
 *    fault's budget (`depth`), what the push sends in the time a full batch of predictions would take;
 *  - no page whose confidence (path probability, the engine's `confidence` view) is under
 *    `minConfidence`, or under what the engine believes of the push window's pages: a prediction
 *    goes ahead of the push only when it is at least as likely to be touched as what it displaces.
 * The engine's training filter (an LRU of recent pages) is for a full access stream, where it hides
 * hot-page ping-pong; a history a hypervisor records (first touches or sets per interval, writes, an
 * earlier migration's faults) is already deduplicated, and the filter would drop the pages it repeats
 * from one interval to the next: with such a history the filter is off.
 * Without a push the link is idle between faults and a prediction displaces nothing: up to `depth`
 * pages, first those that followed the faulted page's last occurrence in the history (the same
 * temporal streaming as the push above), then the engine's at its own defaults (hybrid alphabet,
 * which the quality table judges) and the absent pages right after the fault (readahead's prior),
 * each engine page ahead of those only while its confidence is at least the after-pages' measured
 * touch rate.
 *
 * Pages the engine returns stay marked sent in it when the policy skips them (in the push window:
 * the push brings them; under the confidence bar: the tail of the batch). `unsend()` would let the
 * engine offer them again; measured worse (RESULTS.md section 2), so the policy does not, except for
 * pages displaced by the history's (no longer worse than the push: just not this time). The history's
 * pages are not marked sent anywhere until onPresent says they were: a caller may cut the answer.
 */
import type { SimStrategy, SimStrategyContext } from "./context.js";
import type { Predictor, PredictorOptions } from "../engine/types.js";
import type { PushMode, PushOrder } from "../sim/push.js";
import { createPredictor } from "../engine/predictor.js";
import type { FullPredictorOptions } from "../engine/options.js";
import { predictorStrategy } from "./predictor-strategy.js";
import { createPushWindow } from "./push-window.js";
import { SentPages } from "./sent-pages.js";
import { TemporalPush } from "./temporal-push.js";

export interface PpmPolicy {
  /** The background push beside the fault path. */
  push: PushMode;
  /** Pages per fault while a push runs (the engine's depth then; without a push: the context's depth). */
  pushDepth: number;
  /** A page under this confidence is not worth a slot on the link. */
  minConfidence: number;
  /** Pages of the push's window: it delivers them within that many page times anyway (0: the context's depth). */
  pushWindow: number;
  /** Our source runs the push and may steer it (bubbling around each fault); false: plan around the given one. */
  ownPush: boolean;
  /** Engine options over the policy's choice (e.g. for experiments). */
  engine: Partial<PredictorOptions>;
  /**
   * Where our source owns the push: one push page in `historyShare` replays the history after the
   * latest fault (temporal-push.ts), the rest is the spatial push. Without a push: a fault's pages
   * replay the history first, the engine's fill the rest. 0: neither.
   */
  historyShare: number;
  /**
   * Where our source owns the push: move the history's share of it (from 1 / `historyShare`, between
   * 1/8 and 7/8) toward whichever order each fault's page was nearer in: the history's or Hines'
   * bubbling (temporal-push.ts, `judge`). Over the 11 traces x 3 layouts x 5 switch-over points
   * (RESULTS.md section 2, the full history and the two-forward bubble of then): mean stall 0.833x
   * QEMU's against 0.838x with the fixed half, the same 144 of 165 runs at or under the best anchor
   * with QEMU's push (140 against 141 with the linear one); the 4 KiB layouts gain 1-4 points, the
   * contiguous gcc and json cells lose 1-2.
   */
  adaptiveShare: boolean;
  /**
   * States the engine's search expands per fault while a push runs (its `lookahead`; the engine's
   * default is 8). At most `pushDepth` pages go, mostly found in the first two expansions; the later
   * ones walk through present pages to tails the confidence bar mostly drops. Over the 11 traces x 3
   * layouts x 5 switch-over points, 2 against 8: the same runs at or under the best anchor (144 of
   * 165 with QEMU's push, 141 with the linear one) and mean stall 0.838x against 0.837x QEMU's,
   * for a fault path of 0.9 us median, 2.9 us p99 instead of 1.4 / 5.0 on a 1.3M-context model
   * (RESULTS.md section 2, BENCHMARKS.md).
   */
  pushLookahead: number;
  /**
   * The engine's longest context under a push (its `order`; the engine's default is 3). With the
   * 2-state search, order 2 and a threshold at `minConfidence` gave the same runs and stall over the
   * five switch-over points (144 / 0.838x with QEMU's push, 141 / 0.838x linear; order 1: 143 /
   * 0.840x) and a 25-30% shorter call (RESULTS.md section 2, BENCHMARKS.md).
   */
  pushOrder: number;
}

export const DEFAULT_POLICY: Omit<PpmPolicy, "push"> = { pushDepth: 2, minConfidence: 0.02, pushWindow: 0, ownPush: true, engine: {}, historyShare: 2, adaptiveShare: true, pushLookahead: 2, pushOrder: 2 };

/**
 * The engine's options under a push (before `policy.engine`'s): what the fault path runs. Its
 * threshold is the policy's confidence bar, so the search never builds states for pages the
 * policy would not send.
 */
export function pushEngineOptions(depth: number, policy: Partial<PpmPolicy> = {}): Partial<FullPredictorOptions> {
  const pol = { ...DEFAULT_POLICY, ...policy };
  return { alphabet: "page", depth: Math.min(depth, pol.pushDepth), lookahead: pol.pushLookahead, order: pol.pushOrder, threshold: pol.minConfidence };
}

/** The history-replaying push of a policy, or null when it does not steer one (no push, or not ours). */
function temporalPushFor(pageCount: number, pol: PpmPolicy): TemporalPush | null {
  return steersWithHistory(pol) ? new TemporalPush(pageCount, { share: pol.historyShare, adaptive: pol.adaptiveShare }) : null;
}
const steersWithHistory = (pol: PpmPolicy): boolean => pol.push !== "none" && pol.ownPush && pol.historyShare > 0;

/**
 * The `ppm` push steering for a source whose strategy runs elsewhere (a worker thread: `serve`): the
 * same history-replaying push, built in the source's own thread from the same history, since the
 * push asks for its next page many times per fault. undefined when the policy steers none.
 */
export function ppmPushSteering(pageCount: number, push: PushMode, history: Uint32Array, policy: Partial<PpmPolicy> = {}): ((base: PushOrder) => PushOrder) | undefined {
  const pol = { push, ...DEFAULT_POLICY, ...policy };
  if (!steersWithHistory(pol)) return undefined;
  // One index per history and guest size, shared by every migration served from it (each has its own position).
  const key = `${pageCount}/${pol.historyShare}/${pol.adaptiveShare}`;
  let byKey = learned.get(history);
  if (!byKey) learned.set(history, (byKey = new Map()));
  let t = byKey.get(key);
  if (!t) { t = temporalPushFor(pageCount, pol)!; t.learn(history); byKey.set(key, t); }
  const mine = t.fork();
  return (base) => mine.steer(base);
}
const learned = new WeakMap<Uint32Array, Map<string, TemporalPush>>();

/** `ppm-given-push`: the policy on the push it is given (ownPush false), as the QEMU proxy runs it on QEMU's own scanner. */
export function createPpmGivenPush(ctx: SimStrategyContext): SimStrategy & { readonly predictor: Predictor } {
  return Object.assign(createPpmPolicy(ctx, { ownPush: false }), { name: "ppm-given-push" });
}

export function createPpmPolicy(ctx: SimStrategyContext, policy: Partial<PpmPolicy> = {}): SimStrategy & { readonly predictor: Predictor } {
  const pol: PpmPolicy = { push: ctx.push ?? "qemu", ...DEFAULT_POLICY, ...policy };
  const pushing = pol.push !== "none";
  const steered: PushMode = pushing && pol.ownPush ? "hines" : pol.push;
  const streams = Math.max(1, Math.min(4096, ctx.streams ?? 1));
  const engine: Partial<FullPredictorOptions> = pushing ? pushEngineOptions(ctx.depth, pol) : { depth: ctx.depth };
  const recorded = ctx.history !== undefined && ctx.history !== "full";
  const pred = createPredictor({ pageCount: ctx.pageCount, streams, ...engine, ...(recorded ? { filter: 0 } : {}), ...pol.engine });
  const inner = predictorStrategy(pred, "ppm");
  const window = createPushWindow(steered, pushing ? pol.pushWindow || ctx.depth : 0);
  const ours = new SentPages(ctx.pageCount); // faulted or predicted: every other page committed was pushed
  let pending = -1; // the latest committed page not yet known to be ours (a fault's page is committed before onFault)
  const settle = () => { if (pending >= 0 && !ours.has(pending)) window.onPushed(pending); pending = -1; };
  const slot = streams === 1 ? () => 0 : (s: number) => s % streams;
  // The history replayed (temporal-push.ts): with a push of ours it steers the push and leads each
  // fault's pages; without a push it answers the fault itself, the pages that followed the faulted
  // page last time, in that order, then the engine's where the history has none (no skip bound there
  // beyond the stream's span: a fault can afford to walk past a hot set).
  const history = pushing ? temporalPushFor(ctx.pageCount, pol) : pol.historyShare > 0 ? new TemporalPush(ctx.pageCount, { scan: 1 << 30 }) : null;
  const known = history ? new Uint8Array(ctx.pageCount) : null; // present or sent: what the history's pages skip
  // Without a push: the after-pages sent (the page after a fault and its followers), and how many of
  // them the guest touched (feedback), both decayed per fault: their odds against the engine's pages.
  const after = !pushing && history ? new Uint8Array(ctx.pageCount) : null;
  let afterHits = 0, afterSent = 0;
  return {
    name: "ppm",
    predictor: pred, // for snapshot() / restorePredictor(): a model carried to the next migration
    push: steered === pol.push ? undefined : steered,
    steerPush: pushing && history ? (base) => history.steer(base) : undefined,
    train(pages, ss) {
      inner.train!(pages, ss);
      history?.learn(pages);
    },
    onTouch(p, s) {
      if (after?.[p]) { after[p] = 0; afterHits++; }
      inner.onTouch!(p, s);
    },
    onPresent(p) {
      if (known) known[p] = 1;
      settle();
      pending = p;
      pred.markPresent(p);
    },
    onFault(p, s) {
      ours.add(p);
      settle();
      window.onFault(p);
      const n = pred.predictInto(p, slot(s));
      const pages = pred.output, conf = pred.confidence;
      if (!pushing && history) return replayFirst(history, p, n);
      // What the push is worth here: the engine's own belief in the pages its window brings.
      let pushValue = 0;
      for (let i = 0; i < n; i++) if (window.covers(pages[i]) && conf[i] > pushValue) pushValue = conf[i];
      const bar = pushing ? Math.max(pol.minConfidence, pushValue) : 0;
      const out: number[] = [];
      if (history && known) {
        // The history's next pages after p go first (those the push's window brings anyway excepted);
        // the engine's fill what is left of the budget.
        // Not marked sent here: a caller may cut the answer (adaptive depth, the source's cap); onPresent
        // marks what is actually sent, and a page cut stays free for the history and the engine.
        known[p] = 1;
        for (const q of history.peek(p, known, Math.min(ctx.depth, pol.pushDepth))) {
          if (window.covers(q)) continue;
          ours.add(q); out.push(q);
        }
      }
      const room = Math.min(ctx.depth, pushing ? pol.pushDepth : ctx.depth);
      for (let i = 0; i < n && conf[i] >= bar; i++) {
        const q = pages[i];
        if (window.covers(q) || out.includes(q)) continue;
        if (out.length >= room) { pred.unsend(q); continue; } // displaced by the history's: offer it again later
        ours.add(q);
        out.push(q);
      }
      return out;
    },
    maintain: inner.maintain,
    dispose: inner.dispose,
  };

  /**
   * No push: up to `depth` pages of the history after p, then the engine's and the absent pages after
   * p by their odds (engine pages that are not sent go back to it).
   */
  function replayFirst(replay: TemporalPush, p: number, n: number): number[] {
    // As with a push: nothing is marked sent here (onPresent does, for what is actually sent).
    const out: number[] = [];
    const mine = new Set<number>();
    known![p] = 1;
    replay.recentre(p);
    while (out.length < ctx.depth) {
      const q = replay.nextFromStream(known!);
      if (q < 0) break;
      if (mine.has(q)) continue;
      mine.add(q);
      out.push(q);
    }
    // Then the engine's pages and the pages right after the fault (readahead's prior: it costs nothing
    // on an idle link and is what pays where memory is contiguous), in order of how likely each is to
    // be touched: an engine page by its confidence, an after-page by how often the after-pages sent so
    // far were (the destination's feedback; decayed, prior 1/2). Where memory is scattered they are
    // not, and the engine's pages go first; where it is contiguous the after-pages pass the engine's
    // weaker guesses. RESULTS.md section 2: 136 of 165 runs at or under the best anchor, against 120
    // with the engine's pages alone after the history's.
    const pages = pred.output, conf = pred.confidence;
    const afterOdds = (afterHits + 1) / (afterSent + 2);
    let i = 0;
    const takeEngine = (all: boolean) => {
      for (; i < n && (all || conf[i] >= afterOdds); i++) {
        const q = pages[i];
        if (mine.has(q)) continue; // the history's already: sent with this answer
        if (out.length < ctx.depth) { mine.add(q); out.push(q); } else pred.unsend(q);
      }
    };
    takeEngine(false);
    for (let q = p + 1; out.length < ctx.depth && q < ctx.pageCount && q <= p + 4 * ctx.depth; q++) {
      if (!known![q] && !mine.has(q)) { mine.add(q); out.push(q); after![q] = 1; afterSent++; }
    }
    takeEngine(true); // the rest: sent if there is room, else offered again later
    for (const q of out) ours.add(q);
    afterHits *= AFTER_DECAY; afterSent *= AFTER_DECAY;
    return out;
  }
}

/** Per fault: the after-pages' touch rate follows the last ~50 faults (a program's phase). */
const AFTER_DECAY = 0.98;
