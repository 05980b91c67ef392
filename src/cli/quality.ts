/**
 * `ppm-prefetch quality [TRACE...] [--layouts virtual,4k] [--switch-at 0.3] [--depth 8] [--feedback on|off]
 *   [--seed 1] [--engine JSON] [--train-chunk N] [--json]`
 * The engine's quality table (faults as % of demand paging) against next-8, markov1 and the blend.
 * Without traces it uses the bundled real ones. `--engine '{"filter":128}'` replaces engine defaults
 * (how the design choices in RESULTS.md are measured); `--seed` places the 4k/2m layouts differently;
 * `--train-chunk N` feeds the engine its history in train() calls of N pages (0: one call);
 * `--history SRC` trains every strategy on a history source instead of every access (src/history/);
 * `--feedback on|off` (default off; a bare `--feedback` is on, as it was when it took no value).
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { qualityTable, formatQualityTable, type QualityRow } from "../quality/table.js";
import { isLayoutName, type LayoutName } from "../trace/layout.js";
import { UsageError, choiceOption, intOption, numberOption, optionalValue } from "./args.js";
import type { FullPredictorOptions } from "../engine/options.js";
import { resolveSized } from "../engine/predictor.js";
import { inFile } from "./errors.js";
import { parseHistorySpec, formatHistorySpec, needsWrites, type HistorySpec } from "../history/sources.js";
import { stat } from "node:fs/promises";
import { checkAccesses, checkInputFile, checkSpan, maxPageOf, readTraceFile, scanTraceFile } from "./input.js";
import type { Trace } from "../trace/format.js";
import { readAnyTraceChunks } from "../trace/read.js";

export const BUNDLED_TRACES = ["sqlite.txt.gz", "xz.txt.gz"].map((f) => fileURLToPath(new URL(`../../traces/${f}`, import.meta.url)));

export async function run(given: string[]): Promise<number> {
  // `--feedback` was a bare flag: it still is (on), and takes on|off as compare's does
  const { args, after } = optionalValue(given, "feedback", "on", ["on", "off"]);
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      layouts: { type: "string" }, "switch-at": { type: "string" }, depth: { type: "string" },
      feedback: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
      seed: { type: "string" }, engine: { type: "string" }, "train-chunk": { type: "string" }, history: { type: "string" }, ips: { type: "string" },
    },
  });
  if (values.help) {
    process.stdout.write("usage: ppm-prefetch quality [TRACE...] [--layouts L,...] [--switch-at 0.3] [--depth 8] [--feedback on|off] [--seed 1] [--engine JSON] [--train-chunk N] [--history SRC] [--ips N] [--json]\n" +
      "  TRACE...        default: the bundled sqlite and xz traces (2 of the 11 in traces/)\n" +
      "  --layouts L,... any of virtual, 2m, 4k (default virtual,4k)\n" +
      "  --feedback on|off  piggybacked feedback of touched prefetched pages (default off; a bare --feedback is on)\n" +
      "  --history SRC   what every strategy trains on: full (default), first-touch:T, sets:T, writes:T, write-sets:T\n" +
      "                  (T guest instructions, e.g. 1e7, or a time, e.g. 10ms, at --ips), earlier, none; see the README\n" +
      "  --ips N         guest instructions per second (default 1e9)\n");
    return 0;
  }
  const layouts = (values.layouts ?? "virtual,4k").split(",");
  for (const l of layouts) if (!isLayoutName(l)) throw new UsageError(`--layouts takes virtual, 2m, 4k; got ${JSON.stringify(l)}`);
  const twice = layouts.find((l, i) => layouts.indexOf(l) !== i);
  if (twice !== undefined) throw new UsageError(`--layouts names ${twice} twice, got ${JSON.stringify(values.layouts)}`);
  const switchAt = numberOption("switch-at", values["switch-at"], 0.3, 0, 0.99);
  const depth = intOption("depth", values.depth, 8, 1, 256);
  const seed = intOption("seed", values.seed, 1, 0, 0xffffffff);
  const engine = engineOptions(values.engine);
  const trainChunk = intOption("train-chunk", values["train-chunk"], 0, 0, 0xffffffff);
  const feedback = choiceOption("feedback", values.feedback, "off", ["on", "off"] as const) === "on";
  // guest instructions per second: what a --history interval given as a time (10ms) means, as in compare
  const ips = numberOption("ips", values.ips, 1e9, 1e3, 1e13);
  let history: HistorySpec;
  try {
    history = parseHistorySpec(values.history ?? "full", ips);
  } catch (e) {
    throw new UsageError(`--history: ${(e as Error).message}`);
  }
  const traces = positionals.length ? positionals : BUNDLED_TRACES;
  for (const t of traces) {
    if (!positionals.length) await checkInputFile("the bundled trace", t, "give TRACE files");
    else await checkInputFile("trace", t, t === after ? "--feedback takes on or off, so this word was read as a trace" : undefined);
  }
  // Every trace is checked before any replay runs: a malformed, truncated or empty trace, or one
  // whose pages span more than a replay can hold, is refused up front and named. A file is checked
  // in one streaming pass (nothing kept) and read again for its table; a pipe or FIFO (/dev/stdin,
  // <(...)) can be read only once, so it is read whole here and kept.
  const kept = new Map<string, Trace>();
  for (const t of traces) {
    const writesNeeded = needsWrites(history.kind);
    let writes: boolean;
    if ((await stat(t)).isFile()) {
      const s = await scanTraceFile(t);
      checkAccesses(t, s.accesses);
      checkSpan(t, s.maxPage, layouts as LayoutName[], undefined, false);
      writes = writesNeeded && await recordsWrites(t);
    } else {
      const tr = await readTraceFile(t);
      checkAccesses(t, tr.pages.length);
      checkSpan(t, maxPageOf(tr.pages), layouts as LayoutName[], undefined, false);
      writes = tr.writes !== undefined;
      kept.set(t, tr);
    }
    if (writesNeeded && !writes) throw new UsageError(`--history ${values.history} needs a trace that records writes (the r/w kind column); ${t} does not`);
  }
  const progress = process.stderr.isTTY ? (m: string) => process.stderr.write(`\r\x1b[K${m}`) : undefined;
  const opts = { layouts: layouts as LayoutName[], switchAt, depth, feedback, seed, engine, trainChunk, history, onProgress: progress };
  // one trace per call (the table treats traces independently), so an error names its file
  const rows: QualityRow[] = [];
  for (const t of traces) rows.push(...await inFile(t, () => qualityTable([kept.get(t) ?? t], opts)));
  if (progress) process.stderr.write("\r\x1b[K");
  if (values.json) process.stdout.write(JSON.stringify({ depth, switchAt, feedback, seed, engine, trainChunk, history: formatHistorySpec(history), rows }, null, 2) + "\n");
  else process.stdout.write((history.kind === "full" ? "" : `history: ${formatHistorySpec(history)}\n\n`) + formatQualityTable(rows, depth));
  return 0;
}

/** Whether a trace records access kinds (every data line or none has one: the first chunk says). */
async function recordsWrites(path: string): Promise<boolean> {
  for await (const c of readAnyTraceChunks(path)) return c.writes !== undefined;
  return false;
}

/** `--engine '{"filter":128}'`: engine options over the defaults, checked before any replay runs. */
function engineOptions(text: string | undefined): Partial<FullPredictorOptions> {
  if (text === undefined) return {};
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw new UsageError(`--engine takes a JSON object of engine options, got ${JSON.stringify(text)}`);
  }
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new UsageError(`--engine takes a JSON object of engine options, got ${JSON.stringify(text)}`);
  const setBy: Record<string, string> = { pageCount: "the trace's pages", depth: "--depth", streams: "the trace's vCPUs" };
  for (const [k, by] of Object.entries(setBy)) if (k in o) throw new UsageError(`--engine: ${k} is set by the replay (from ${by}), not by --engine`);
  try {
    // (a memoryBytes budget is sized here for a 1-page guest; a replay's guest needs its bitmap too,
    // and a budget too small for it is refused by that replay, naming the trace)
    resolveSized({ pageCount: 1, ...(o as Partial<FullPredictorOptions>) });
  } catch (e) {
    throw new UsageError(`--engine: ${(e as Error).message}`);
  }
  return o as Partial<FullPredictorOptions>;
}
