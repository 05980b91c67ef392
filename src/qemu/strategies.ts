/**
 * The strategies the QEMU proxy can run:
 *  - `ppm` (default): the engine under the QEMU injection policy (src/qemu/policy.ts): learns online
 *    from the destination's requests, starts from a saved model when one is given, injects at most
 *    2 sure pages (4 for QEMU >= 8.0) and only while the source's queue holds nothing the proxy injected;
 *  - `ppm-sim`: the simulator's push-aware `ppm` strategy (src/strategies/ppm-policy.ts, planning
 *    around QEMU's scanner, `ownPush: false`), ungated: kept for comparison;
 *  - `next8`: the next 8 pages after every request (spatial baseline), ungated;
 *  - `none`: a pass-through counter.
 * The engine is loaded lazily so the proxy works (with `none`/`next8`) in a tree without it.
 */
import type { PredictorOptions } from "../engine/types.js";
import type { Strategy } from "../strategies/types.js";
import { createQemuPolicy, defaultsForMachine, loadPolicyEngine, type QemuPolicyOptions } from "./policy.js";
import type { RamLayout } from "./injector.js";

export type PredictKind = "ppm" | "ppm-sim" | "next8" | "none";
export const PREDICT_KINDS: PredictKind[] = ["ppm", "ppm-sim", "next8", "none"];

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

/** Load the engine (and the simulator's ppm strategy for `ppm-sim`). */
export async function loadEngine(): Promise<void> {
  try {
    await loadPolicyEngine();
    // V8 tiers the core up during its first predictions (calls of 1-3 ms): taken now, when the proxy
    // starts, not on a migration's first requests (engine/warm-up.ts).
    const warmUpPath = "../engine/warm-up.js";
    ((await import(warmUpPath)) as { warmUp(): number }).warmUp();
    if (!adapter) {
      const adapterPath = "../strategies/ppm-policy.js";
      adapter = (await import(adapterPath)) as AdapterModule;
    }
  } catch (e) {
    throw new Error(`the PPM engine is not available: ${(e as Error).message}`);
  }
}

export interface FactoryOptions extends Omit<PredictorOptions, "pageCount"> {
  /** QEMU policy knobs for `ppm`. */
  policy?: Partial<Omit<QemuPolicyOptions, "engine">>;
  /** The saved model to start from (`ppm`), read when a migration's layout is known. */
  loadModel?: () => Uint8Array | null;
}

/** Build a strategy factory; await loadEngine() first for "ppm" and "ppm-sim". */
export function strategyFactory(kind: PredictKind, opts: FactoryOptions = {}):
    (pageCount: number, layout?: RamLayout) => Strategy | null {
  return (pageCount, layout) => {
    if (kind === "none") return null;
    if (kind === "next8") return new NextNStrategy(pageCount, 8);
    const { depth, policy, loadModel, ...engine } = opts;
    if (kind === "ppm") {
      // The policy sets the engine's depth (maxPages) itself; --depth is for ppm-sim. Unless given,
      // maxPages follows the migration's QEMU (the machine type its stream names).
      const maxPages = policy?.maxPages ?? defaultsForMachine(layout?.machine).maxPages;
      return createQemuPolicy(pageCount, { ...policy, maxPages, engine }, loadModel?.() ?? null);
    }
    if (!adapter) throw new Error("loadEngine() was not awaited before using the ppm-sim strategy");
    // QEMU's scanner is not ours to steer: the policy plans around it.
    return adapter.createPpmPolicy({ pageCount, depth: depth ?? 8, push: "qemu" }, { engine, ownPush: false });
  };
}
