/**
 * The strategies the QEMU proxy can run: none, next-8 (spatial baseline) and `ppm`, the engine under
 * the push-aware send policy (src/strategies/ppm-policy.ts) with QEMU's own push beside it: QEMU's
 * scanner jumps after every request, so the proxy injects only a few confident pages the scanner
 * would not bring next. The engine is loaded lazily so the proxy works (with `none`/`next8`) in a
 * tree without it.
 */
import type { PredictorOptions } from "../engine/types.js";
import type { Strategy } from "../strategies/types.js";

export type PredictKind = "ppm" | "next8" | "none";

/** Next-N pages after the fault that are not yet present: the spatial baseline. */
export class NextNStrategy implements Strategy {
  readonly name: string;
  private present: Uint8Array;
  constructor(private readonly pageCount: number, private readonly n = 8) {
    this.name = `next${n}`;
    this.present = new Uint8Array(pageCount);
  }
  onFault(page: number): number[] {
    if (page < this.pageCount) this.present[page] = 1;
    const out: number[] = [];
    for (let p = page + 1; p <= page + this.n && p < this.pageCount; p++) if (!this.present[p]) out.push(p);
    return out;
  }
  onPresent(page: number): void {
    if (page >= 0 && page < this.pageCount) this.present[page] = 1;
  }
}

type AdapterModule = {
  createPpmPolicy(ctx: { pageCount: number; depth: number; push: "qemu" }, policy: { engine: Partial<PredictorOptions>; ownPush: boolean }): Strategy;
};

let adapter: AdapterModule | null = null;

/** Load the engine through the project's adapter (src/strategies/predictor-strategy.ts). */
export async function loadEngine(): Promise<void> {
  if (adapter) return;
  const adapterPath = "../strategies/ppm-policy.js";
  try {
    adapter = (await import(adapterPath)) as AdapterModule;
  } catch (e) {
    throw new Error(`the PPM engine is not available: ${(e as Error).message}`);
  }
}

/** Build a strategy factory; await loadEngine() first for "ppm". */
export function strategyFactory(kind: PredictKind, opts: Omit<PredictorOptions, "pageCount"> = {}):
    (pageCount: number) => Strategy | null {
  return (pageCount) => {
    if (kind === "none") return null;
    if (kind === "next8") return new NextNStrategy(pageCount, 8);
    if (!adapter) throw new Error("loadEngine() was not awaited before using the ppm strategy");
    const { depth = 8, ...engine } = opts;
    // QEMU's scanner is not ours to steer: the policy plans around it.
    return adapter.createPpmPolicy({ pageCount, depth, push: "qemu" }, { engine, ownPush: false });
  };
}
