/** The forward-stream reader (ram records on the main and preempt channels) and the service-time tracker. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MIG_CMD_PACKAGED, MIG_CMD_POSTCOPY_RESUME, RamStreamParser } from "../../src/qemu/forward.js";
import { ServiceTracker } from "../../src/qemu/service.js";
import { S, parse } from "./streams.js";

const HEAD = fs.readFileSync(path.join(import.meta.dirname, "fixtures", "forward-head-7.2.bin")); // ram is section 2
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
const be64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); return b; };

function mainStream(): Buffer {
  // A blob that would derail a parser that looked inside it (0x04 FULL sections, page-like bytes).
  const blob = Buffer.concat([Buffer.from([0x04, 0, 0, 0, 9]), S.page(0x1000, "pc.ram"), Buffer.from([0x04])]);
  return Buffer.concat([
    HEAD, S.footer(), S.cmd(2, be32(1)),
    S.part(S.page(0x0, "pc.ram"), S.page(0x1000, null), S.zero(0x2000, null), S.page(0x0, "pc.bios")),
    S.packaged(blob), S.cmd(2, be32(2)),
    S.part(S.page(0x5000, "pc.ram"), S.zero(0x6000, null)),
    Buffer.concat([Buffer.from([0x03]), be32(2), S.page(0x7000, "pc.ram"), be64(0x10), S.footer()]),
    S.eof(),
  ]);
}
const WANT = [["pc.ram", 0, false], ["pc.ram", 1, false], ["pc.ram", 2, true], ["pc.bios", 0, false], ["pc.ram", 5, false], ["pc.ram", 6, true], ["pc.ram", 7, false]];

describe("forward stream reader", () => {
  it("follows the main channel: sections, commands, the packaged device state skipped whole, EOF", () => {
    const r = parse("main", [mainStream()]);
    assert.equal(r.p.lost, null);
    assert.deepEqual(r.pages, WANT);
    assert.deepEqual(r.cmds, [2, MIG_CMD_PACKAGED, 2]);
    assert.equal(r.eof, 1);
    assert.ok(r.p.done);
  });

  it("gives the same answer however the stream is split (every 2-way split, random n-way splits)", () => {
    const s = mainStream();
    for (let i = 1; i < s.length; i += 7) {
      const r = parse("main", [s.subarray(0, i), s.subarray(i)]);
      assert.deepEqual(r.pages, WANT, `split at ${i}`);
      assert.equal(r.eof, 1);
    }
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: s.length - 1 }), { maxLength: 40 }), (cuts) => {
      const at = [...new Set(cuts)].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const c of at) { chunks.push(s.subarray(prev, c)); prev = c; }
      chunks.push(s.subarray(prev));
      const r = parse("main", chunks);
      assert.deepEqual(r.pages, WANT);
      assert.equal(r.eof, 1);
    }), { numRuns: 200 });
  });

  it("follows the preempt channel (records only, EOS between bursts) and a resumed main channel", () => {
    const pre = Buffer.concat([S.page(0x3000, "pc.ram"), S.eos(), S.page(0x9000, "pc.ram"), S.zero(0xa000, null), S.eos()]);
    const r = parse("preempt", [pre.subarray(0, 4100), pre.subarray(4100)]);
    assert.deepEqual(r.pages, [["pc.ram", 3, false], ["pc.ram", 9, false], ["pc.ram", 10, true]]);
    const pages: number[] = [];
    const cmds: number[] = [];
    const res = new RamStreamParser("main", (_b, pg) => pages.push(pg), { onCommand: (c) => cmds.push(c) }, 2);
    res.push(Buffer.concat([S.cmd(10, Buffer.from([6, ...Buffer.from("pc.ram")])), S.cmd(MIG_CMD_POSTCOPY_RESUME), S.part(S.page(0x4000, "pc.ram")), S.eof()]));
    assert.equal(res.lost, null);
    assert.deepEqual(cmds, [10, MIG_CMD_POSTCOPY_RESUME]);
    assert.deepEqual(pages, [4]);
  });

  it("stops with a reason on what it cannot follow, never throws", () => {
    const r = parse("main", [Buffer.concat([HEAD, S.footer(), Buffer.from([0x02]), be32(3)])]);
    assert.match(r.p.lost ?? "", /section 3 is not ram/);
    const q = parse("preempt", [be64(0x1000 | 0x40)]);
    assert.match(q.p.lost ?? "", /unsupported ram record flags 0x40/);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (junk) => {
      parse("main", [Buffer.concat([HEAD, S.footer(), Buffer.from(junk)])]);
      parse("preempt", [Buffer.from(junk)]);
    }), { numRuns: 300 });
  });
});

describe("service tracker", () => {
  it("times requests to their pages, separates requests behind injected pages, counts pages already sent", () => {
    const t = new ServiceTracker();
    t.onPage("pc.ram", 1, "main", 0); // background push
    t.onDestRequest("pc.ram", 1, 1, 5); // already on its way
    t.onDestRequest("pc.ram", 10, 1, 10); // queue empty of injected pages
    t.onInjected("pc.ram", 11, 2, 10);
    assert.equal(t.outstanding, 3);
    assert.equal(t.outstandingInjected, 2);
    t.onDestRequest("pc.ram", 20, 1, 12); // behind two injected pages
    t.onPage("pc.ram", 10, "preempt", 14);
    t.onPage("pc.ram", 11, "preempt", 15);
    t.onDestRequest("pc.ram", 12, 1, 16); // the guest faults on an injected page still on its way
    t.onPage("pc.ram", 12, "preempt", 18);
    t.onPage("pc.ram", 20, "preempt", 30);
    const r = t.report();
    assert.equal(r.destAlreadySent, 1);
    assert.deepEqual([r.destQueueEmpty.count, r.destQueueEmpty.median], [1, 4]);
    assert.deepEqual([r.destQueueBusy.count, r.destQueueBusy.median], [1, 18]);
    assert.deepEqual([r.destOnInjected.count, r.destOnInjected.median], [1, 2]);
    assert.deepEqual([r.injected.count, r.injected.max], [2, 8]);
    assert.equal(r.destByChannel.preempt.count, 3);
    assert.equal(t.outstanding, 0);
    assert.deepEqual(r.queueAtDestRequest.max, 3);
    assert.deepEqual(r.timeline.map((e) => e[3]), [1, 10, 20, 12]);
  });
});
