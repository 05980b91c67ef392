/**
 * The destination's SHUT with a non-zero status (it failed to load the migration): the migration is
 * failed with that status, even after QEMU_VM_EOF made it "completed", and no model is saved; the
 * SHUT itself still reaches the source.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { it } from "node:test";
import type { MigrationReport } from "../../src/qemu/proxy.js";
import { encodeMessage, encodeReqPagesId, RP_SHUT } from "../../src/qemu/returnpath.js";
import type { QemuStrategy } from "../../src/qemu/policy.js";
import { until, connect, acceptingTarget, proxyTo, toPostcopy } from "./harness.js";
import { S } from "./streams.js";

const HEAD = fs.readFileSync(path.join(import.meta.dirname, "fixtures", "forward-head-7.2.bin"));
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };

async function postcopyThenShut(status: number) {
  const { target, accepted } = await acceptingTarget();
  const strategy: QemuStrategy = { name: "fake", origin: "new", gated: 0, onFault: () => [], onRequest: () => [], snapshot: () => new Uint8Array([1, 2, 3]) };
  const { proxy, port, saved } = await proxyTo((target.address() as net.AddressInfo).port, strategy);
  const done = new Promise<MigrationReport>((r) => proxy.once("migration", r));
  const src = await connect(port);
  src.on("error", () => {});
  const srcGot: Buffer[] = [];
  src.on("data", (d) => srcGot.push(d));
  src.on("end", () => src.end());
  const dst = await toPostcopy(src, HEAD, accepted, proxy);
  dst.write(encodeReqPagesId(0x8000, 4096, "pc.ram"));
  src.write(Buffer.concat([S.part(S.page(0x8000, "pc.ram")), S.eof()]));
  await until(() => proxy.current()?.phase === "completed", "QEMU_VM_EOF: completed");
  // Then the destination's last word, as migration_incoming_state_destroy sends it.
  const shut = encodeMessage(RP_SHUT, be32(status));
  dst.end(shut);
  const r = await done;
  await proxy.close();
  target.close();
  return { r, saved, srcGot: Buffer.concat(srcGot), shut };
}

it("a non-zero SHUT from the destination fails the migration (after QEMU_VM_EOF too) and saves no model", { timeout: 15000 }, async () => {
  const { r, saved, srcGot, shut } = await postcopyThenShut(1);
  assert.equal(r.phase, "failed", JSON.stringify(r.phases));
  assert.match(r.error ?? "", /SHUT with status 1/);
  assert.equal(r.completedIn, undefined);
  assert.deepEqual(r.phases.map((p) => p.phase), ["setup", "precopy", "postcopy", "completed", "failed"]);
  assert.equal(saved.length, 0);
  assert.match(String(r.modelSaved), /not saved: the migration ended failed/);
  assert.ok(srcGot.subarray(srcGot.length - shut.length).equals(shut), "the SHUT still reaches the source");
});

it("SHUT 0 after QEMU_VM_EOF leaves a post-copy completed, model saved", { timeout: 15000 }, async () => {
  const { r, saved } = await postcopyThenShut(0);
  assert.equal(r.phase, "completed");
  assert.equal(r.completedIn, "postcopy");
  assert.equal(r.error, undefined);
  assert.equal(saved.length, 1);
});
