/**
 * The `earlier` history source: what an earlier post-copy migration of the same workload saw at its
 * source, the faults (onFault) and the feedback of touched prefetched pages (onTouch), in the order the
 * source received them, with their vCPUs. The simulator and the quality replay run that earlier
 * migration over the pre-switch-over part of the trace with a strategy that starts empty and learns
 * online; the events it saw become the next migration's training history.
 *
 * The model is carried over as a training history (train() on the recorded events), not as a snapshot
 * of the earlier migration's predictor: the strategies do not expose their predictor, and for the PPM
 * engine the two differ only in the LRU filter (which post-copy faults, distinct pages, pass) and the
 * switch-over rehearsal over the events (whose first touches are the faults themselves).
 */
import type { DerivedHistory } from "./sources.js";

export interface EventLog {
  /** Record a fault or a touched prefetched page. */
  add(page: number, stream: number): void;
  history(): DerivedHistory;
}

export function eventLog(): EventLog {
  let pages = new Uint32Array(1024), streams = new Uint16Array(1024), n = 0;
  return {
    add(p, s) {
      if (n === pages.length) {
        const a = new Uint32Array(n * 2); a.set(pages); pages = a;
        const b = new Uint16Array(n * 2); b.set(streams); streams = b;
      }
      pages[n] = p; streams[n] = s; n++;
    },
    history: () => ({ pages: pages.slice(0, n), streams: streams.slice(0, n) }),
  };
}

/** The same strategy (its methods bound to it), with every onFault and onTouch it receives also written to `log`. */
export function recording<S extends { readonly name: string; readonly push?: unknown; train?(p: Uint32Array, s?: Uint16Array): void; onFault(p: number, s: number): ArrayLike<number>; onTouch?(p: number, s: number): void; onPresent?(p: number): void; dispose?(): void }>(inner: S, log: EventLog): S {
  const onTouch = inner.onTouch?.bind(inner);
  const onFault = inner.onFault.bind(inner);
  return {
    name: inner.name,
    push: inner.push,
    steerPush: (inner as { steerPush?: (b: unknown) => unknown }).steerPush?.bind(inner),
    train: inner.train?.bind(inner),
    onFault: (p: number, s: number) => { log.add(p, s); return onFault(p, s); },
    onTouch: (p: number, s: number) => { log.add(p, s); onTouch?.(p, s); },
    onPresent: inner.onPresent?.bind(inner),
    maintain: (inner as { maintain?: () => void }).maintain?.bind(inner),
    dispose: inner.dispose?.bind(inner),
  } as unknown as S;
}
