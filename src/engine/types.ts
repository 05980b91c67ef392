/** The public shapes of the predictor: options, statistics and the predictor itself. */
import type { ResolvedOptions } from "./options.js";

export type Alphabet = "page" | "delta" | "hybrid";
export type EscapeMethod = "A" | "B" | "C" | "D";

export interface PredictorOptions {
  /** Pages in the guest (the bitmap's size); every page argument must be below it. Required. */
  pageCount: number;
  /** Highest context order K (1..8). */
  order?: number;
  alphabet?: Alphabet;
  escape?: EscapeMethod;
  /** Most pages returned by one predictNext call (0..256). */
  depth?: number;
  /** Stop extending a prediction when its probability falls below this (0..1). */
  threshold?: number;
  /** Number of independent context histories (vCPUs), 1..4096. */
  streams?: number;
  /** Capacity of the context arena in entries; memory is fixed at creation. */
  maxContexts?: number;
  /** Alternative to maxContexts: a byte budget for the whole model (at most 2^32, what Wasm linear memory holds). */
  memoryBytes?: number;
  /** Deltas beyond +-deltaRange pages share one symbol (a far jump), 1..2^20. */
  deltaRange?: number;
  /** Pages of train()'s LRU filter (only its misses are learned), 0..1024; 0: every access. */
  filter?: number;
  /** States the best-first search may expand per fault, 1..128. */
  lookahead?: number;
  /** A context's total count above which its counts are halved. */
  ageLimit?: number;
  /** train() also learns the first touches of the history's suffixes (simulated switch-overs). */
  rehearse?: boolean;
  /** Pages kept for the pending rehearsal, all streams together, 0..2^30. */
  pendingBudget?: number;
}

export interface PredictorStats {
  /** Faults learned: predictNext, predictInto and predictFirst calls. */
  faults: number;
  /** Pages returned by predictions in total (predictFirst's and predictRest's both counted; pages a stopped search never output are not). */
  predictions: number;
  /** observe calls. */
  observed: number;
  /** Pages passed to train (the history). */
  trained: number;
  /** First touches learned by train's switch-over rehearsal (see README). */
  rehearsed: number;
  /** Pages trained since the last rehearsal, awaiting it (0: nothing pending; see rehearse()). */
  pendingHistory: number;
  /** Live context entries in the arena. */
  contexts: number;
  /** Arena capacity in entries. */
  capacity: number;
  /** Bytes of linear memory the engine holds (the Wasm predictor also keeps pageCount / 8 bytes of JavaScript memory: which pages a prediction sent, for unsend). */
  memoryBytes: number;
  /** Times the arena was full and counts were halved and dead entries dropped. */
  prunes: number;
  /** The arena filled on the fault path and awaits maintain() (predictNext/observe never prune, except in a pending rehearsal: see maintain). */
  pruneDue: boolean;
  /** Pages marked present or sent. */
  presentPages: number;
}

export interface Predictor {
  /** Every option, defaults filled in (memoryBytes resolved to maxContexts). */
  readonly options: Readonly<ResolvedOptions>;
  /**
   * Learn a pre-migration history: its LRU misses (the `filter`), then, with `rehearse`, the
   * first-touch order of its suffixes of 4096, 6144, 8192, ... pages up to half of it (simulated
   * switch-overs). Calls add up: train(a, s); train(b, s) learns what train(a ++ b, s) would, when
   * no other stream trains in between (the filter and the statistics are shared, so interleaving
   * streams' calls matters) and the pending histories fit `pendingBudget` (which is applied per call). The rehearsal needs the history's end, so it waits for the
   * switch-over: rehearse() runs it, or else the first predictNext or observe does.
   */
  train(pages: Uint32Array | readonly number[], stream?: number): void;
  /**
   * Run the pending switch-over rehearsal of every stream trained since the last one (stream order).
   * Call it at the switch-over, when the history is complete, to keep its cost (tens of
   * milliseconds; its input crosses into Wasm) off the first fault; nothing happens when none is
   * pending.
   */
  rehearse(): void;
  /**
   * Lay the model out for the fault path: every context's successors in adjacent memory, so a
   * prediction touches far fewer cache lines and memory pages (1.7-2.1x faster on a 336k-context
   * model). It changes no prediction and does not end training (a pending rehearsal stays pending:
   * call rehearse() at the switch-over). Call it once the bulk of the history is in, e.g. before
   * the switch-over to keep it out of the downtime: 0.25-0.5 us per context (O(contexts), in
   * place, no extra memory).
   */
  compact(): void;
  /**
   * Prune now: halve every count and drop the contexts that fall to zero, as a full arena does by
   * itself inside train() (O(contexts): ~25-60 ms for 1-2M).
   */
  prune(): void;
  /**
   * Off-fault-path upkeep for the transport's idle moments: it counts the last fault in the page
   * trie (predictNext leaves that until after its prediction). predictNext and observe do bounded work
   * only (once rehearse() has run: a pending switch-over rehearsal runs in the first of them, and it
   * learns, and prunes, as train() does): when one finds the arena full it does not prune (O(contexts), tens of milliseconds) but
   * goes on without the new context and flags the prune (`stats().pruneDue`); maintain() runs it.
   * Returns true if it pruned. Until it runs, the full model keeps counting what it holds but learns
   * no new context (ageing still frees some). Not sliced: a due prune takes its O(contexts) time
   * here (23-46 ms for 1.3M contexts), so call it where that pause delays no fault.
   */
  maintain(): boolean;
  /**
   * Learn from a fault and return the pages to send with it, most probable first, marked sent. The
   * page trie counts the fault after the prediction (at the next call that uses the model, or in
   * maintain()); every other call sees it counted. The result is a view of the output buffer that
   * the next call overwrites (.slice() to keep it).
   */
  predictNext(fault: number, stream?: number): Uint32Array;
  /** predictNext without creating a view (nothing allocated): returns the count; the pages are output[0..count). */
  predictInto(fault: number, stream?: number): number;
  /**
   * predictInto in two parts, for a caller that sends pages as they are found: learn from the fault
   * and search only until `first` pages are out (fewer if the search ends first); returns that
   * count, the pages are output[0..count). predictRest() then finishes the same search. The two
   * parts return exactly the pages (and confidences), in the same order, that predictInto would:
   * the first pages are usually found after one or two of the search's expansions, so they can go
   * on the wire behind the faulted page while the rest is searched. The rest can be had only if
   * predictRest is the next call on the predictor: any other call (except reading output,
   * confidence or isPresent, and a call refused for its arguments, which changes nothing) ends the
   * search where it stopped.
   */
  predictFirst(fault: number, first: number, stream?: number): number;
  /**
   * Finish the search predictFirst stopped; returns the count of pages in all, the new ones are
   * output[firstCount..count) (none when the search had ended in predictFirst). Called again, it
   * returns the same count. Throws an Error if there was no predictFirst, or another call ended its
   * search (see predictFirst); nothing changes then.
   */
  predictRest(): number;
  /** The long-lived view of the output buffer that predictInto fills. */
  readonly output: Uint32Array;
  /**
   * The long-lived view of each output page's confidence: its path probability in the search (the
   * product of the blended probabilities along the path from the fault; a page reached through
   * present pages carries their probabilities too). Non-increasing along the output. A caller weighs
   * it against the cost of sending the page (see the `ppm` strategy).
   */
  readonly confidence: Float32Array;
  observe(page: number, stream?: number): void;
  markPresent(page: number): void;
  /**
   * A page a prediction returned (predictNext, predictInto, predictFirst, predictRest: marked sent)
   * that the caller did not send after all (a send policy cut it): it is absent again and may be
   * predicted again. Only such a page, and only until something marks it present (a fault on it,
   * observe, markPresent): anything else is a RangeError and changes nothing. After restorePredictor only pages predicted since the restore qualify (a
   * snapshot does not carry which pages were sent by prediction). Never call it for a page that left.
   */
  unsend(page: number): void;
  markPresentRange(start: number, count: number): void;
  isPresent(page: number): boolean;
  /** Forget every present/sent page, keep the model (a new migration with what was learned). */
  clearPresent(): void;
  stats(): PredictorStats;
  snapshot(): Uint8Array;
  reset(): void;
  dispose(): void;
}
