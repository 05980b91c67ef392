/**
 * One real QEMU post-copy migration through the proxy (next-8 prediction, postcopy-preempt on so the
 * second channel goes through the proxy too). Skipped with a reason when qemu-system-x86_64 is absent
 * or the guest cannot be built from Debian packages.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { buildGuest, type Guest } from "../../scripts/qemu/guest.js";
import { qemuBinary, runMigration } from "../../scripts/qemu/migrate.js";

let skip: string | false = false;
let guest: Guest | null = null;
if (!qemuBinary()) skip = "qemu-system-x86_64 not installed (apt-get install -y qemu-system-x86)";
else {
  try {
    guest = buildGuest();
  } catch (e) {
    skip = `cannot build the guest from Debian packages: ${(e as Error).message.split("\n")[0]}`;
  }
}

it("migrates a running guest through the proxy with intact memory", { skip, timeout: 150_000 }, async () => {
  const r = await runMigration({ guest: guest!, config: "proxy-next8", preempt: true, timeoutMs: 110_000 });
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.status, "completed");
  assert.ok(r.guestRunning, "guest running on the destination");
  assert.ok(r.checksumOk, `checksums: ${JSON.stringify(r.sums)}`);
  assert.ok(Object.keys(r.sums.before).length === 3);
  assert.ok(r.proxy, "proxy report");
  assert.equal(r.proxy!.layoutSource, "stream");
  assert.ok(r.requests > 0, "page requests observed on the return path");
  assert.ok(r.proxy!.connections >= 2, `postcopy-preempt channel proxied (${r.proxy!.connections} connections)`);
  assert.ok(r.sourceRequests >= r.requests, "the source saw at least the destination's requests");
  // The proxy followed both directions and both channels to the end of the stream.
  assert.equal(r.proxy!.phase, "completed", JSON.stringify(r.proxy!.phases));
  assert.equal(r.proxy!.completedIn, "postcopy");
  // QEMU's POSTCOPY_RAM_DISCARD commands (QEMU 7.2 sends one per RAM block here) decode as QEMU decodes them
  assert.equal(r.proxy!.discards.malformed, 0, JSON.stringify(r.proxy!.discards));
  assert.equal(r.proxy!.service.followed.main, "followed to the end");
  assert.match(r.proxy!.service.followed.preempt, /^followed/);
  assert.ok(r.proxy!.service.dest.count > 0, "service times measured");
  assert.ok(r.proxy!.service.pagesSeen.main > 100000, `pages seen going forward: ${JSON.stringify(r.proxy!.service.pagesSeen)}`);
});
