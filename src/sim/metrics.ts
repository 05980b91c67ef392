/** What one simulated migration reports. Times are in seconds (the CLI prints milliseconds). */
export interface StallSummary {
  /** Stall events: network faults plus accesses that waited on a page another vCPU had requested. */
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Log-2 buckets from 1 us: `count` stalls in (le/2, le] seconds (the first bucket starts at 0). */
  histogram: { le: number; count: number }[];
}

export interface SimResult {
  strategy: string;
  trace: string;
  /** Network faults: requests whose page had not left the source when they arrived (== faulted pages sent). */
  faults: number;
  /** Requests for pages already on the wire (predicted or pushed, late): the guest waits, no page is sent. */
  inflightFaults: number;
  /** Faults of plain demand paging without push: distinct pages touched after switch-over. */
  demandFaults: number;
  /** Total vCPU stall time (QEMU's blocktime), summed over streams. */
  stallS: number;
  /** Time from switch-over until the last vCPU finishes its trace. */
  completionS: number;
  /** The same without migration (no stalls). */
  baselineS: number;
  /** Until every page of the footprint is present at the destination. */
  migrationS: number;
  /** Pages sent on the fault path: faulted pages plus predicted pages (zero pages included). */
  faultPathPages: number;
  demandPages: number;
  predictedPages: number;
  pushedPages: number;
  /** Predicted pages outside the footprint (sent as a bare header). */
  zeroPages: number;
  /** Footprint pages sent, each exactly once: equals the footprint at the end. */
  footprintPagesSent: number;
  footprintPages: number;
  bytesOnWire: number;
  /** Predicted pages the guest touched before the migration completed. */
  prefetchedTouched: number;
  /** prefetchedTouched / predictedPages (null when nothing was predicted). */
  accuracy: number | null;
  /** (demandFaults - faults) / demandFaults. */
  coverage: number;
  stall: StallSummary;
  /** Effective link bandwidth used (bits/s). */
  bitsPerSecond: number;
  accesses: number;
  wallMs: number;
}

export function summarizeStalls(stalls: Float64Array, n: number): StallSummary {
  const a = stalls.slice(0, n).sort();
  const q = (f: number) => (n === 0 ? 0 : a[Math.min(n - 1, Math.floor(f * n))]);
  const histogram: { le: number; count: number }[] = [];
  let le = 1e-6, i = 0;
  while (i < n) {
    let c = 0;
    while (i < n && a[i] <= le) { c++; i++; }
    histogram.push({ le, count: c });
    le *= 2;
  }
  return { count: n, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: n ? a[n - 1] : 0, histogram };
}
