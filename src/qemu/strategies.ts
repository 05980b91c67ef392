/**
 * The strategies the QEMU proxy can run: none, next-8 (spatial baseline) and the PPM engine.
 * The engine is loaded lazily so the proxy works (with `none`/`next8`) in a tree without it.
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

interface PredictorLike {
  predictNext(fault: number, stream?: number): ArrayLike<number>;
  observe(page: number, stream?: number): void;
  markPresent(page: number): void;
  dispose(): void;
}

/** A Predictor seen as a Strategy (onFault -> predictNext, onTouch -> observe, onPresent -> markPresent). */
export function predictorAsStrategy(p: PredictorLike, name = "ppm"): Strategy {
  return {
    name,
    onFault: (page, stream) => p.predictNext(page, stream),
    onTouch: (page, stream) => p.observe(page, stream),
    onPresent: (page) => p.markPresent(page),
    dispose: () => p.dispose(),
  };
}

type EngineModule = { createPredictor(o: PredictorOptions): PredictorLike };
type AdapterModule = Record<string, unknown>;

let engine: EngineModule | null = null;
let adapter: AdapterModule | null = null;

/** Load the engine (and the shared adapter if the tree has one). Throws if the engine is missing. */
export async function loadEngine(): Promise<void> {
  if (engine) return;
  const enginePath = "../engine/predictor.js";
  try {
    engine = (await import(enginePath)) as EngineModule;
  } catch (e) {
    throw new Error(`the PPM engine (src/engine/predictor.ts) is not available: ${(e as Error).message}`);
  }
  const adapterPath = "../transport/predictor-strategy.js";
  try {
    adapter = (await import(adapterPath)) as AdapterModule;
  } catch {
    adapter = null;
  }
}

/** Build a strategy factory; call loadEngine() first for "ppm". */
export function strategyFactory(kind: PredictKind, opts: Omit<PredictorOptions, "pageCount"> = {}):
    (pageCount: number) => Strategy | null {
  return (pageCount) => {
    if (kind === "none") return null;
    if (kind === "next8") return new NextNStrategy(pageCount, 8);
    if (!engine) throw new Error("loadEngine() was not awaited before using the ppm strategy");
    const p = engine.createPredictor({ ...opts, pageCount });
    // Prefer the project's shared adapter when it exists.
    const make = adapter && Object.values(adapter).find((v) => typeof v === "function" && /strategy/i.test((v as { name: string }).name));
    if (make) {
      try {
        const s = (make as (p: PredictorLike) => Strategy)(p);
        if (s && typeof s.onFault === "function") return s;
      } catch {
        /* fall back */
      }
    }
    return predictorAsStrategy(p);
  };
}
