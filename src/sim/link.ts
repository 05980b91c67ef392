/**
 * The link model and the rule that puts a small trace under realistic pressure.
 *
 * A page costs (pageSize + headerBytes) bytes on the wire, a zero page (outside the trace's
 * footprint) headerBytes only; the link sends one message at a time, back to back, and each arrives
 * one-way latency after its last byte left.
 *
 * Pressure rule. An 8 GiB VM on a 10 Gbit/s link needs ~7 s to push its memory while its vCPUs keep
 * running: the migration lasts about as long as the guest runs through its memory. A recorded trace
 * touches a few MB in a fraction of a second, so at a literal 10 Gbit/s the whole footprint would
 * arrive almost at once and every strategy would look perfect. By default the simulator therefore
 * scales the link: at the nominal 10 Gbit/s, pushing the trace's footprint (distinct pages x page
 * size) takes exactly the guest's run time after switch-over without migration; other nominal
 * bandwidths scale linearly (20 Gbit/s = twice as fast):
 *
 *     effective bits/s = (nominal Gbit/s / 10) x footprint bytes x 8 / run time after switch-over
 *
 * Latency is not scaled: a round trip costs what it costs on a real network. `raw: true` (CLI
 * `--raw-bandwidth`) uses the nominal bandwidth literally.
 */
export const REFERENCE_GBPS = 10;

export interface LinkConfig {
  /** Effective bandwidth in bits per second. */
  bitsPerSecond: number;
  /** One-way latency in seconds. */
  latencyS: number;
  pageSize: number;
  headerBytes: number;
}

export function scaledBitsPerSecond(nominalGbps: number, footprintPages: number, pageSize: number, runSeconds: number): number {
  if (runSeconds <= 0 || footprintPages <= 0) return nominalGbps * 1e9;
  return (nominalGbps / REFERENCE_GBPS) * (footprintPages * pageSize * 8) / runSeconds;
}
