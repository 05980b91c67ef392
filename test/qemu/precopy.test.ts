/**
 * A migration that converges in precopy (never switched over): the source ends the ram section and
 * sends the device state as full sections (no length: not followed) before QEMU_VM_EOF; the
 * destination answers SHUT 0 on the return path once it loaded everything. The proxy reports it
 * completed, in precopy; it does not save the model (nothing was learned).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { describe, it } from "node:test";
import type { MigrationReport } from "../../src/qemu/proxy.js";
import { formatReport } from "../../src/cli/qemu-proxy.js";
import { encodeMessage, RP_PONG, RP_SHUT } from "../../src/qemu/returnpath.js";
import type { QemuStrategy } from "../../src/qemu/policy.js";
import { connect, proxyTo } from "./harness.js";
import { S, parse } from "./streams.js";

const HEAD = fs.readFileSync(path.join(import.meta.dirname, "fixtures", "forward-head-7.2.bin")); // ram is section 2
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };

/** The end of a precopy migration: the last ram pages (END), two devices' full sections, EOF. */
const precopyEnd = () => Buffer.concat([
  S.end(S.page(0x3000, "pc.ram")),
  S.full(5, Buffer.from([0x00, 0x08, 0x02, 0x03, 0x7e, 0x00])), // device bytes that look like items
  S.full(6, Buffer.alloc(40, 0x02)),
  S.eof(),
]);

describe("precopy completion in the forward stream", () => {
  it("stops at the device state after the last ram section, followed (not lost)", () => {
    const r = parse("main", [Buffer.concat([HEAD, S.footer(), S.part(S.page(0x1000, "pc.ram")), precopyEnd()])]);
    assert.equal(r.p.lost, null);
    assert.ok(r.p.done);
    assert.equal(r.deviceState, 1);
    assert.match(r.p.stoppedAt ?? "", /precopy completion/);
    assert.deepEqual(r.pages, [["pc.ram", 1, false], ["pc.ram", 3, false]]);
  });

  it("after a switch-over a full section is not a precopy completion: lost, as before", () => {
    const r = parse("main", [Buffer.concat([HEAD, S.footer(), S.packaged(Buffer.from("dev")), S.full(5, Buffer.alloc(4))])]);
    assert.equal(r.deviceState, 0);
    assert.match(r.p.lost ?? "", /unexpected top-level byte 0x4/);
  });
});

describe("the proxy and a migration that completes in precopy", () => {

  /** Run one migration: `fwd` from the source; the destination answers `rp` once it has it all, then closes. */
  async function migrate(fwd: Buffer, rp: Buffer) {
    const target = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on("error", () => {});
      let got = 0;
      s.on("data", (d) => { got += d.length; if (got === fwd.length) s.end(rp); });
    });
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    const strategy: QemuStrategy = { name: "fake", origin: "new", gated: 0, onFault: () => [], onRequest: () => [], snapshot: () => new Uint8Array([1]) };
    const { proxy, port, saved } = await proxyTo((target.address() as net.AddressInfo).port, strategy);
    const done = new Promise<MigrationReport>((r) => proxy.once("migration", r));
    const src = await connect(port);
    src.on("error", () => {});
    src.resume();
    src.on("end", () => src.end()); // QEMU's source closes once the return path is done
    src.write(fwd);
    const r = await done;
    await proxy.close();
    target.close();
    return { r, saved };
  }

  it("is reported completed, in precopy (the destination's SHUT 0), and its model is not saved", { timeout: 10000 }, async () => {
    const fwd = Buffer.concat([HEAD, S.footer(), S.part(S.page(0x1000, "pc.ram")), precopyEnd()]);
    const { r, saved } = await migrate(fwd, Buffer.concat([encodeMessage(RP_PONG, be32(1)), encodeMessage(RP_SHUT, be32(0))]));
    assert.equal(r.phase, "completed", JSON.stringify(r.phases));
    assert.equal(r.completedIn, "precopy");
    assert.deepEqual(r.phases.map((p) => p.phase), ["setup", "precopy", "completed"]);
    assert.match(r.service.followed.main, /followed to the device state of a precopy completion/);
    assert.equal(r.error, undefined);
    assert.match(String(r.modelSaved), /not saved: completed in precopy/);
    assert.equal(saved.length, 0);
    // what --json prints
    assert.equal(JSON.parse(JSON.stringify(r)).completedIn, "precopy");
    // and what the CLI's summary says
    assert.match(formatReport(r), /^migration \d+: completed \(in precopy\) after/);
  });

  it("a destination that failed to load (SHUT 1) is not completed", { timeout: 10000 }, async () => {
    const fwd = Buffer.concat([HEAD, S.footer(), S.part(S.page(0x1000, "pc.ram")), precopyEnd()]);
    const { r } = await migrate(fwd, encodeMessage(RP_SHUT, be32(1)));
    // failed with the destination's status (it used to end "closed", like a migration cut short)
    assert.equal(r.phase, "failed");
    assert.match(r.error ?? "", /SHUT with status 1/);
    assert.equal(r.completedIn, undefined);
  });

  it("SHUT 0 with a forward stream it could not follow: completed, where unknown", { timeout: 10000 }, async () => {
    // section 3 is another iterable device: the reader stops, a switch-over could have gone by unseen
    const fwd = Buffer.concat([HEAD, S.footer(), S.part(S.page(0x1000, "pc.ram")), Buffer.from([0x02]), be32(3), Buffer.alloc(64, 1), precopyEnd()]);
    const { r, saved } = await migrate(fwd, encodeMessage(RP_SHUT, be32(0)));
    assert.equal(r.phase, "completed");
    assert.equal(r.completedIn, "unknown");
    assert.match(r.service.followed.main, /^lost: section 3/);
    assert.equal(saved.length, 0);
  });
});
