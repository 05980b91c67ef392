/**
 * `ppm-prefetch simulate`: one strategy, one layout, every metric (stall distribution included).
 * Takes compare's options, with `--strategy NAME` (default `ppm`, the product default) and `--layout`
 * (default virtual; `all` runs each layout in turn). `--json` prints the full result record (times in
 * seconds, as the simulator keeps them, plus compare's millisecond keys stallMs, completionMs,
 * migrationMs and baselineMs).
 */
import { parseCompareArgs, describeHistory } from "./compare.js";
import { compareStrategies, type Comparison } from "../sim/run.js";
import { formatHistorySpec, DEFAULT_HISTORY } from "../history/sources.js";
import { describeComparison, formatDetail, msTwins, writeAtomic, renderSvg } from "./report.js";

const USAGE = `usage: ppm-prefetch simulate [--trace FILE | --workload NAME] [--strategy NAME] [--layout virtual|2m|4k|all] [options]

Runs one strategy (default ppm, the product default) in one layout (default virtual; all: each in turn) and prints every metric; the other options are those of \`ppm-prefetch compare --help\`
(--history SRC among them, default ${DEFAULT_HISTORY}: full, first-touch:T, sets:T, writes:T, write-sets:T, earlier, none).
`;

export async function run(args: string[]): Promise<number> {
  const setup = await parseCompareArgs(args, true);
  if (!setup) { process.stdout.write(USAGE); return 0; }
  const out: Comparison[] = [];
  for (const layout of setup.layouts) {
    const c = await compareStrategies(setup.trace, setup.names, { ...setup.run, layout, bandwidthGbps: setup.bandwidths[0] });
    out.push(c);
    if (!setup.json) process.stdout.write(`${describeComparison(c, setup.run.rawBandwidth ?? false)}\n${describeHistory(c)}\n${formatDetail(c.results[0])}`);
  }
  // the result's times are in seconds (stallS, ..., stall.p50, ...); compare's record has milliseconds:
  // stallMs, completionMs, baselineMs and migrationMs are added beside them, rounded as compare's
  const record = (c: Comparison) => ({ layout: c.layout, history: formatHistorySpec(c.history), ...c.results[0], ...msTwins(c.results[0]) });
  if (setup.json) process.stdout.write(JSON.stringify(out.length === 1 ? record(out[0]) : out.map(record), null, 2) + "\n");
  if (setup.svg) await writeAtomic(setup.svg, await renderSvg(setup.trace.name, out, `${setup.names[0]}, push ${setup.run.push}`));
  return 0;
}
