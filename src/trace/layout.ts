/**
 * Guest-physical layouts for process traces.
 *
 * A process trace carries virtual pages; a VM migrates guest-physical ones, and the placement decides
 * what a spatial prefetcher can see:
 *   virtual  pages as recorded (contiguous mappings stay contiguous)
 *   2m       each 2 MiB block (512 pages) of the trace lands at a random free 2 MiB block of the VM,
 *            as with transparent huge pages; pages keep their offset inside the block
 *   4k       every page lands at a random free 4 KiB frame: a long-running, fragmented guest
 * The placement is a seeded random injection, so a (trace, layout, seed) triple is reproducible.
 */
import { Rng } from "../util/random.js";
import { describe } from "./check.js";

export type LayoutName = "virtual" | "2m" | "4k";
export const LAYOUTS: readonly LayoutName[] = ["virtual", "2m", "4k"];
export const PAGES_PER_2M = 512;
/** 1 GiB of 4 KiB pages: the default VM size the layouts scatter into. */
export const DEFAULT_VM_PAGES = 1 << 18;

export interface Placement {
  /** Guest-physical page of every access, same length as the input. */
  readonly pages: Uint32Array;
  /** Size of the guest-physical space (pages); every entry of `pages` is below it. */
  readonly pageCount: number;
}

export interface LayoutOptions {
  layout: LayoutName;
  /** Guest size in pages; raised to the trace's span for `virtual`. */
  vmPages?: number;
  seed?: number;
}

export function isLayoutName(s: string): s is LayoutName {
  return (LAYOUTS as readonly string[]).includes(s);
}

/**
 * Map a trace's pages into a guest-physical space according to the layout. A bad argument is a
 * TypeError or RangeError naming it and its value (`pages`: a Uint32Array; `opts`: an object with
 * `layout` one of virtual, 2m, 4k, `vmPages` an integer in 1..2^32, `seed` an integer).
 */
export function placePages(pages: Uint32Array, opts: LayoutOptions): Placement {
  if (!(pages instanceof Uint32Array)) throw new TypeError(`pages must be a Uint32Array of page numbers, got ${describe(pages)}`);
  if (opts === null || typeof opts !== "object" || Array.isArray(opts)) {
    throw new TypeError(`opts must be an object ({ layout, vmPages?, seed? }), got ${describe(opts)}`);
  }
  for (const k of Object.keys(opts)) if (k !== "layout" && k !== "vmPages" && k !== "seed") throw new TypeError(`opts.${k} is not a layout option (known: layout, vmPages, seed)`);
  if (typeof opts.layout !== "string" || !isLayoutName(opts.layout)) {
    const err = typeof opts.layout === "string" ? RangeError : TypeError;
    throw new err(`opts.layout must be one of ${LAYOUTS.join(", ")}, got ${describe(opts.layout)}`);
  }
  if (opts.vmPages !== undefined && (typeof opts.vmPages !== "number" || !Number.isInteger(opts.vmPages))) {
    throw new TypeError(`opts.vmPages must be an integer in 1..2^32, got ${describe(opts.vmPages)}`);
  }
  if (opts.seed !== undefined && (typeof opts.seed !== "number" || !Number.isInteger(opts.seed))) {
    throw new TypeError(`opts.seed must be an integer, got ${describe(opts.seed)}`);
  }
  let maxPage = 0;
  for (let i = 0; i < pages.length; i++) if (pages[i] > maxPage) maxPage = pages[i];
  const span = pages.length === 0 ? 1 : maxPage + 1;
  const vmPages = opts.vmPages ?? Math.max(DEFAULT_VM_PAGES, span);
  if (vmPages < 1 || vmPages > 0x100000000) {
    throw new RangeError(`opts.vmPages must be an integer in 1..2^32, got ${opts.vmPages}`);
  }
  const seed = opts.seed ?? 1;
  if (opts.layout === "virtual") return { pages, pageCount: Math.max(vmPages, span) };
  const rng = new Rng(seed);
  if (opts.layout === "4k") {
    const distinct = countDistinct(pages);
    if (distinct > vmPages) throw new RangeError(`vmPages ${vmPages} is smaller than the trace's ${distinct} distinct pages`);
    const map = randomInjection(rng, vmPages);
    const out = new Uint32Array(pages.length);
    for (let i = 0; i < pages.length; i++) out[i] = map(pages[i]);
    return { pages: out, pageCount: vmPages };
  }
  if (opts.layout === "2m") {
    const vmBlocks = Math.floor(vmPages / PAGES_PER_2M);
    const blocks = countDistinct(pages.map((p) => Math.floor(p / PAGES_PER_2M)));
    if (blocks > vmBlocks) throw new RangeError(`vmPages ${vmPages} holds ${vmBlocks} 2 MiB blocks, the trace needs ${blocks}`);
    const map = randomInjection(rng, vmBlocks);
    const out = new Uint32Array(pages.length);
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i];
      out[i] = map(Math.floor(p / PAGES_PER_2M)) * PAGES_PER_2M + (p % PAGES_PER_2M);
    }
    return { pages: out, pageCount: vmBlocks * PAGES_PER_2M };
  }
  throw new Error(`internal: layout ${JSON.stringify(opts.layout)} checked but not placed`);
}

function countDistinct(a: Uint32Array): number {
  return new Set(a).size;
}

/** A lazily drawn random injection key -> [0, n): each new key gets a uniformly chosen free slot. */
function randomInjection(rng: Rng, n: number): (key: number) => number {
  const assigned = new Map<number, number>();
  // Sparse Fisher-Yates: swaps recorded in a map, so memory stays proportional to the keys used.
  const swaps = new Map<number, number>();
  let next = 0;
  return (key) => {
    let v = assigned.get(key);
    if (v !== undefined) return v;
    const j = next + rng.below(n - next);
    const atJ = swaps.get(j) ?? j;
    const atNext = swaps.get(next) ?? next;
    swaps.set(j, atNext);
    next++;
    v = atJ;
    assigned.set(key, v);
    return v;
  };
}
