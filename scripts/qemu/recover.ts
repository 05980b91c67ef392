/**
 * `node --import tsx scripts/qemu/recover.ts [--runs N] [--break-ms MS] [--no-preempt] [--qemu PATH]`: real post-copy
 * migrations of the md5 guest through the proxy (proxy-ppm, return path +2 ms) whose proxied
 * connections are cut MS after the switch-over, as a network failure would; QEMU pauses
 * (postcopy-paused), then recovers through the same proxy (`migrate-recover` on the destination,
 * `migrate resume=true` on the source). Prints one JSON line per run: completion, checksums, the
 * proxy's phases. `--qemu PATH` (or $PPM_QEMU): the QEMU binary (e.g. scripts/qemu/install-qemu10.sh's).
 */
import { parseArgs } from "node:util";
import { buildGuest } from "./guest.js";
import { qemuBinary, qemuVersion, runMigration } from "./migrate.js";

const { values } = parseArgs({ options: { runs: { type: "string" }, "break-ms": { type: "string" }, "no-preempt": { type: "boolean" }, verbose: { type: "boolean" }, qemu: { type: "string" } } });
if (values.qemu) process.env.PPM_QEMU = values.qemu;
if (!qemuBinary()) { process.stderr.write(`recover: ${process.env.PPM_QEMU ?? "qemu-system-x86_64"} not found\n`); process.exit(2); }
const qemu = qemuVersion();
const guest = buildGuest();
let bad = 0;
for (let i = 0; i < Number(values.runs ?? 1); i++) {
  const r = await runMigration({
    guest, config: "proxy-ppm", preempt: !values["no-preempt"], returnDelayMs: 2, breakAfterMs: Number(values["break-ms"] ?? 300),
    log: values.verbose ? (s) => process.stderr.write(s + "\n") : undefined,
  });
  const ok = !r.error && r.checksumOk && r.guestRunning;
  if (!ok) bad++;
  process.stdout.write(JSON.stringify({
    qemu, ok, error: r.error, recovered: r.recovered, checksumOk: r.checksumOk, requests: r.requests, blocktimeMs: r.blocktimeMs,
    phase: r.proxy?.phase, pauses: r.proxy?.pauses, resumes: r.proxy?.resumes, connections: r.proxy?.connections,
    phases: r.proxy?.phases.map((p) => `${p.phase}@${p.atMs}`), followed: r.proxy?.service.followed,
  }) + "\n");
}
process.exit(bad ? 1 : 0);
