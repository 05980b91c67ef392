/**
 * One interface for every prefetch strategy, so the replay, the simulator and the transport can run
 * any of them side by side.
 *
 * A strategy lives at the source. It sees the pre-switch-over history once (`train`), then every
 * network fault (`onFault`), and optionally feedback from the destination about prefetched pages the
 * guest touched (`onTouch`, piggybacked on the next request). It answers each fault with the pages to
 * send along with the faulted one. It must never return a page that is already present or already
 * sent: it keeps that knowledge through `onPresent` (called for every page that reaches the
 * destination by any path: fault, prediction, background push).
 */
export interface Strategy {
  readonly name: string;
  train?(pages: Uint32Array, streams?: Uint16Array): void;
  onFault(page: number, stream: number): ArrayLike<number>;
  onTouch?(page: number, stream: number): void;
  onPresent?(page: number): void;
  /** Off-fault-path upkeep (the engine's prune when its arena filled): called between faults, never inside one. */
  maintain?(): void;
  dispose?(): void;
}

/** What every strategy is built from. */
export interface StrategyContext {
  /** Pages in the guest-physical space. */
  pageCount: number;
  /** Most pages to send along with one fault. */
  depth: number;
}
