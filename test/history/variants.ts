// ppm policy variants x history sources: what a change to the ppm strategy would give (RESULTS.md
// "History sources"; not a test). node --import tsx test/history/variants.ts TRACE... [--sources a,b]
//   [--layouts ...] [--push qemu,none] [--variants '{"f0":{"engine":{"filter":0}}}']
import { readTrace } from "../../src/trace/read.js";
import { prepareRun, trainingPlan, earlierMigration } from "../../src/sim/run.js";
import { simulate, prepare } from "../../src/sim/simulator.js";
import { eventLog, recording } from "../../src/history/earlier.js";
import { createPpmPolicy, type PpmPolicy } from "../../src/strategies/ppm-policy.js";
import { parseHistorySpec } from "../../src/history/sources.js";
import type { LayoutName } from "../../src/trace/layout.js";
import type { PushMode } from "../../src/sim/push.js";

const args = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = args.indexOf(k); if (i < 0) return d; const v = args[i + 1]; args.splice(i, 2); return v; };
const sources = opt("--sources", "full,first-touch:1e5,first-touch:1e6,first-touch:1e7,none").split(",");
const layouts = opt("--layouts", "virtual,2m,4k").split(",") as LayoutName[];
const pushes = opt("--push", "qemu").split(",") as PushMode[];
const variants: Record<string, Partial<PpmPolicy>> = JSON.parse(opt("--variants", '{"base":{},"f0":{"engine":{"filter":0}}}'));
for (const path of args) {
  const trace = await readTrace(path);
  for (const push of pushes) for (const layout of layouts) {
    const { prep, params, link } = prepareRun(trace, { layout, push });
    for (const src of sources) {
      const spec = parseHistorySpec(src);
      if ((spec.kind === "writes" || spec.kind === "write-sets") && !trace.writes) continue;
      const plan = spec.kind === "earlier" ? undefined : trainingPlan(trace, prep, spec);
      const row: string[] = [];
      for (const [vn, pol] of Object.entries(variants)) {
        const ctx = { pageCount: prep.trace.pageCount, depth: params.depth, streams: Math.min(4096, prep.streamCount), push: params.push };
        const s = createPpmPolicy(ctx, pol);
        let h = plan ? plan.derived : undefined;
        if (spec.kind === "earlier") {
          const t = prep.trace, n = prep.switchIndex;
          const first = prepare({ name: t.name, pages: t.pages.subarray(0, n), gaps: t.gaps.subarray(0, n), streams: t.streams.subarray(0, n), pageCount: t.pageCount }, 0, prep.ips);
          const log = eventLog();
          const e = createPpmPolicy(ctx, pol);
          simulate(first, recording(e, log), link, params);
          e.dispose?.();
          h = log.history();
        }
        if (h) s.train?.(h.pages, h.streams);
        const r = simulate(prep, s, link, params);
        s.dispose?.();
        row.push(`${vn} ${r.faults}/${(r.stallS * 1e3).toFixed(1)}`);
      }
      console.log(`${trace.name} ${layout} ${push} ${src}: ${row.join("  ")}`);
    }
  }
}
