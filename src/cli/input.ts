/**
 * The CLI's checks on what the user hands it, made before any work that depends on them:
 *   - an input file that is not there (or is a directory) is refused in one wording for every
 *     command: `cannot read WHAT 'PATH': no such file` (checkInputFile / noSuchFile);
 *   - a trace file is read with its name attached to any error (a truncated .gz names the file);
 *   - an empty trace (fewer than 2 accesses) is refused;
 *   - a trace whose pages span more of the guest than the simulator can hold is refused before any
 *     per-page array is allocated (the message names the span and the limit);
 *   - an output file's directory must exist before a long run that ends by writing it.
 *
 * Why refuse a huge span rather than renumber it: the `virtual` layout is defined as "pages as
 * recorded", so compacting the holes would silently change what the spatial strategies (next-N,
 * readahead, Leap) and the background push see; the user can renumber (as `record` does) or choose a
 * layout that places the pages into a guest of a given size (`--layout 4k --vm-pages N`), and both
 * say what they mean. The simulator and the replay hold about 15-20 bytes per page of the guest
 * (state, arrival time, footprint, a strategy's present bitmap), committed as pages are touched.
 * The limit is 2^28 pages (a 1 TiB guest of 4 KiB pages, already --vm-pages' maximum): every
 * strategy on a 5-access trace spanning it took 5 s and 470 MB peak RSS here (2^29: 8 s, 800 MB;
 * 2^30: 25 s, 1.45 GB; 2^32 ran 29 s to 4.2 GB and died with `Array buffer allocation failed`).
 */
import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import { readTrace, readAnyTraceChunks, type TraceEncoding } from "../trace/read.js";
import type { Trace } from "../trace/format.js";
import { DEFAULT_VM_PAGES, PAGES_PER_2M, type LayoutName } from "../trace/layout.js";
import { UsageError, inFile, nameFile } from "./errors.js";

/** The most guest pages a simulation or replay may span (a 1 TiB guest of 4 KiB pages). */
export const MAX_GUEST_PAGES = 1 << 28;

/** The least accesses a trace must hold to be simulated (one before, one after the switch-over). */
export const MIN_ACCESSES = 2;

/**
 * The one wording of a missing input file: `cannot read WHAT 'PATH': no such file` (exit code 2).
 * WHAT names the argument: the option (`--trace`, `--history`, `--image`), `trace` for a positional
 * one, `the bundled trace` for a default; HINT, when given, says what to do instead.
 */
export function noSuchFile(what: string, path: string, hint?: string): UsageError {
  return new UsageError(`cannot read ${what} '${path}': no such file${hint ? ` (${hint})` : ""}`);
}

/**
 * An input file must be there, and not be a directory, before the work that reads it: otherwise bad
 * input (noSuchFile's wording). Other failures (permissions) are left to errors.ts, naming the file.
 */
export async function checkInputFile(what: string, path: string, hint?: string): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw noSuchFile(what, path, hint);
    throw nameFile(e, path);
  }
  if (st.isDirectory()) throw new UsageError(`cannot read ${what} '${path}': it is a directory`);
}

/** Read a whole trace; any error names the file. */
export function readTraceFile(path: string, opts: { limit?: number } = {}): Promise<Trace> {
  return inFile(path, () => readTrace(path, opts));
}

export interface TraceSummary {
  accesses: number;
  maxPage: number;
  encoding: TraceEncoding;
}

/** Stream a trace once without keeping it: access count, highest page, encoding. Errors name the file. */
export function scanTraceFile(path: string): Promise<TraceSummary> {
  return inFile(path, async () => {
    let accesses = 0, maxPage = 0;
    let encoding: TraceEncoding = "text";
    for await (const c of readAnyTraceChunks(path, (e) => { encoding = e; })) {
      accesses += c.length;
      const p = c.pages;
      for (let i = 0; i < p.length; i++) if (p[i] > maxPage) maxPage = p[i];
    }
    return { accesses, maxPage, encoding };
  });
}

/** The highest page of a trace. */
export function maxPageOf(pages: Uint32Array): number {
  let m = 0;
  for (let i = 0; i < pages.length; i++) if (pages[i] > m) m = pages[i];
  return m;
}

/** Refuse a trace with fewer than MIN_ACCESSES accesses. */
export function checkAccesses(name: string, accesses: number): void {
  if (accesses < MIN_ACCESSES) {
    throw new UsageError(`${name} has ${accesses} access${accesses === 1 ? "" : "es"}; need at least ${MIN_ACCESSES}`);
  }
}

/**
 * The guest size (pages) the layouts give a trace whose highest page is `maxPage` (as placePages
 * computes it): `virtual` spans at least the trace, `2m`/`4k` take `vmPages` or else the span.
 */
export function guestPagesFor(layout: LayoutName, maxPage: number, vmPages?: number): number {
  const span = maxPage + 1;
  const vm = vmPages ?? Math.max(DEFAULT_VM_PAGES, span);
  return layout === "virtual" ? Math.max(vm, span) : vm;
}

/** Refuse, before any per-page allocation, a trace whose guest would exceed MAX_GUEST_PAGES. */
export function checkSpan(name: string, maxPage: number, layouts: readonly LayoutName[], vmPages?: number, hasVmPages = true): void {
  for (const layout of layouts) {
    const pages = guestPagesFor(layout, maxPage, vmPages);
    if (pages > MAX_GUEST_PAGES) {
      // only where the command has --vm-pages (quality has not)
      const fix = hasVmPages && vmPages === undefined && layout !== "virtual" ? " or give --vm-pages N" : "";
      throw new UsageError(
        `${name}: page ${maxPage} makes the ${layout} layout's guest ${pages} pages, over the limit of ${MAX_GUEST_PAGES} ` +
        `(2^28 pages, 1 TiB); renumber the pages densely (as \`record\` does)${fix}`,
      );
    }
  }
}

/** With --vm-pages, the 2m/4k layouts must find room for the trace's distinct pages (2 MiB blocks). */
export function checkFits(name: string, pages: Uint32Array, layouts: readonly LayoutName[], vmPages: number): void {
  if (layouts.includes("4k")) {
    const distinct = new Set(pages).size;
    if (distinct > vmPages) throw new UsageError(`${name} touches ${distinct} distinct pages, more than --vm-pages ${vmPages} holds (layout 4k)`);
  }
  if (layouts.includes("2m")) {
    const seen = new Set<number>();
    for (let i = 0; i < pages.length; i++) seen.add(Math.floor(pages[i] / PAGES_PER_2M));
    const blocks = seen.size;
    const room = Math.floor(vmPages / PAGES_PER_2M);
    if (blocks > room) throw new UsageError(`${name} touches ${blocks} distinct 2 MiB blocks, more than the ${room} of --vm-pages ${vmPages} (layout 2m)`);
  }
}

/** The directory an output file goes into must exist, and the file must not be a directory (checked before the work that ends by writing it). */
export async function checkOutputDir(path: string, option = ""): Promise<void> {
  if (path === "" || path.endsWith("/")) throw new UsageError(`${option ? `${option}: ` : ""}expected a file name, got ${JSON.stringify(path)}`);
  const dir = dirname(path);
  const st = await stat(dir).catch(() => null);
  if (!st || !st.isDirectory()) throw new UsageError(`${option ? `${option}: ` : ""}cannot write ${path}: directory ${dir} does not exist`);
  if ((await stat(path).catch(() => null))?.isDirectory()) throw new UsageError(`${option ? `${option}: ` : ""}cannot write ${path}: it is a directory`);
}
