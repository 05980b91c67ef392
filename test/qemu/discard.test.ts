/**
 * MIG_CMD_POSTCOPY_RAM_DISCARD: pages sent in precopy and dirtied again are discarded at the
 * destination at the switch-over; the proxy must treat them as absent again (parser, injector,
 * service tracker, strategy, and the proxy end to end), and never fall over a malformed command.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MIG_CMD_PACKAGED, MIG_CMD_POSTCOPY_RAM_DISCARD, decodeRamDiscard } from "../../src/qemu/forward.js";
import { RequestInjector } from "../../src/qemu/injector.js";
import { until, connect, acceptingTarget } from "./harness.js";
import { ServiceTracker } from "../../src/qemu/service.js";
import { QemuProxy, type MigrationReport } from "../../src/qemu/proxy.js";
import { encodeReqPages, encodeReqPagesId } from "../../src/qemu/returnpath.js";
import { createQemuPolicy, loadPolicyEngine, type QemuStrategy } from "../../src/qemu/policy.js";
import { S, discardPayload, parse } from "./streams.js";

const HEAD = fs.readFileSync(path.join(import.meta.dirname, "fixtures", "forward-head-7.2.bin")); // ram is section 2
const be16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
const rawCmd = (cmd: number, payload: Buffer) => Buffer.concat([Buffer.from([0x08]), be16(cmd), be16(payload.length), payload]);
const P = 4096;

/** Precopy pages 1..5 of pc.ram, then the switch-over's discards (pages 2-3 and 5), the device state, one more page, EOF. */
function switchOver(discards: Buffer[]): Buffer {
  return Buffer.concat([
    HEAD, S.footer(),
    S.part(S.page(1 * P, "pc.ram"), S.page(2 * P, null), S.page(3 * P, null), S.page(4 * P, null), S.page(5 * P, null)),
    ...discards,
    S.packaged(Buffer.from("device state")),
    S.part(S.page(9 * P, "pc.ram")),
    S.eof(),
  ]);
}
const PAGES = [1, 2, 3, 4, 5, 9].map((p) => ["pc.ram", p, false]);

describe("POSTCOPY_RAM_DISCARD in the forward stream", () => {
  it("is decoded (block, page ranges) and the stream is followed after it, however it is split", () => {
    const cmds = [S.discard("pc.ram", [[2 * P, 2 * P], [5 * P, P]]), S.discard("pc.bios", [[0, 3 * P]])];
    const s = switchOver(cmds);
    const want = [["pc.ram", [{ page: 2, pages: 2 }, { page: 5, pages: 1 }]], ["pc.bios", [{ page: 0, pages: 3 }]]];
    const whole = parse("main", [s]);
    assert.equal(whole.p.lost, null);
    assert.deepEqual(whole.discards, want);
    assert.deepEqual(whole.discardErrors, []);
    assert.deepEqual(whole.pages, PAGES);
    assert.deepEqual(whole.cmds, [MIG_CMD_POSTCOPY_RAM_DISCARD, MIG_CMD_POSTCOPY_RAM_DISCARD, MIG_CMD_PACKAGED]);
    assert.equal(whole.eof, 1);
    assert.equal(whole.p.discards, 2);
    // Every split point inside and around the commands, and random n-way splits.
    const at = s.indexOf(cmds[0]);
    for (let i = at - 3; i < at + cmds[0].length + cmds[1].length + 3; i++) {
      const r = parse("main", [s.subarray(0, i), s.subarray(i)]);
      assert.deepEqual(r.discards, want, `split at ${i}`);
      assert.deepEqual(r.pages, PAGES, `split at ${i}`);
    }
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: s.length - 1 }), { maxLength: 30 }), (cuts) => {
      const xs = [...new Set(cuts)].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const c of xs) { chunks.push(s.subarray(prev, c)); prev = c; }
      chunks.push(s.subarray(prev));
      const r = parse("main", chunks);
      assert.deepEqual(r.discards, want);
      assert.deepEqual(r.pages, PAGES);
    }), { numRuns: 150 });
  });

  it("a malformed command is refused with a reason (what QEMU's destination refuses), skipped on its length, never throws", () => {
    const good = discardPayload("pc.ram", [[2 * P, P]]);
    const bad: [string, Buffer, RegExp][] = [
      ["too short", good.subarray(0, 19), /expected >= 20/],
      ["version 1", Buffer.concat([Buffer.from([1]), good.subarray(1)]), /version 1/],
      ["empty name", Buffer.concat([Buffer.from([0, 0, 0]), good.subarray(9), good.subarray(9)]), /empty RAMBlock name/],
      ["name past the end", Buffer.concat([Buffer.from([0, 200]), good.subarray(2)]), /does not fit/],
      ["no NUL", Buffer.concat([good.subarray(0, 8), Buffer.from([1]), good.subarray(9)]), /missing NUL/],
      ["NUL in the name", Buffer.concat([good.subarray(0, 4), Buffer.from([0]), good.subarray(5)]), /NUL inside/],
      ["half a range", discardPayload("pc.ram", [[2 * P, P], [5 * P, P]]).subarray(0, 41 - 8), /not a multiple of 16/],
      ["unaligned", discardPayload("pc.ram", [[2 * P + 1, P]]), /unaligned/],
    ];
    for (const [what, payload, why] of bad) {
      assert.match(String(decodeRamDiscard(payload)), why, what);
      const r = parse("main", [switchOver([rawCmd(MIG_CMD_POSTCOPY_RAM_DISCARD, payload)])]);
      assert.equal(r.p.lost, null, what);
      assert.deepEqual(r.discards, [], what);
      assert.equal(r.discardErrors.length, 1, what);
      assert.match(r.discardErrors[0], why, what);
      assert.deepEqual(r.pages, PAGES, `${what}: followed after it`);
      assert.equal(r.eof, 1, what);
    }
    // Whatever the payload, on a correct length: never throws, the stream goes on.
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
      const r = parse("main", [switchOver([rawCmd(MIG_CMD_POSTCOPY_RAM_DISCARD, Buffer.from(junk))])]);
      assert.deepEqual(r.pages, PAGES);
      assert.equal(r.discards.length + r.discardErrors.length, 1);
    }), { numRuns: 300 });
    // Huge ranges (u64) come out clamped, never as imprecise pages inside a block.
    const huge = decodeRamDiscard(Buffer.concat([discardPayload("pc.ram", []), Buffer.from("fffffffffffff000fffffffffffff000", "hex")]));
    assert.ok(typeof huge !== "string");
    assert.ok(huge.ranges[0].page >= 2 ** 40 && Number.isSafeInteger(huge.ranges[0].pages));
  });

  it("a stream cut inside the command reports nothing and does not throw; the rest completes it", () => {
    const s = switchOver([S.discard("pc.ram", [[2 * P, 2 * P]])]);
    const at = s.indexOf(S.discard("pc.ram", [[2 * P, 2 * P]]));
    for (const cut of [at + 3, at + 5, at + 12, at + 20]) {
      const r = parse("main", [s.subarray(0, cut)]);
      assert.deepEqual([r.discards, r.discardErrors, r.p.lost], [[], [], null], `cut at ${cut - at}`);
      r.p.push(s.subarray(cut));
      assert.deepEqual(r.discards, [["pc.ram", [{ page: 2, pages: 2 }]]]);
    }
  });
});

describe("discarded pages are absent again", () => {
  const layout = { blocks: [{ name: "pc.ram", size: 16 * P }, { name: "pc.bios", size: 4 * P }] };

  it("the injector predicts and requests them again, and tells the strategy its present set once", () => {
    const told: (readonly [number, number])[][] = [];
    const strategy = {
      name: "next3", origin: "new", gated: 0,
      onFault: () => [], onRequest: (g: number) => [g + 1, g + 2, g + 3],
      resetPresent: (runs: readonly (readonly [number, number])[]) => { told.push(runs.map((r) => [r[0], r[1]] as const)); },
    } satisfies QemuStrategy;
    const inj = new RequestInjector(() => strategy, 8);
    inj.setLayout(layout);
    for (const p of [1, 2, 3, 4]) inj.onForwardPage("pc.ram", p);
    inj.onForwardPage("pc.bios", 0);
    assert.equal(inj.onDiscard("pc.ram", 2, 2), 2);
    assert.equal(inj.onDiscard("pc.ram", 9, 1), 0, "never present: nothing to discard");
    assert.equal(inj.onDiscard("pc.ram", 12, 2 ** 50), 0, "a range past the block is cut at its end");
    assert.equal(inj.onDiscard("nosuch", 0, 4), 0);
    // Fault on page 0: 1 is present (dropped), 2 and 3 were discarded (requested again).
    assert.deepEqual(inj.onRequest({ block: "pc.ram", offset: 0, length: P, named: true }), [{ offset: 2 * P, length: 2 * P }]);
    assert.equal(inj.stats().discardedPages, 2);
    // The strategy was told once, before it was asked: pc.ram 0-1 (the fault, 1), 4; pc.bios (base 16) 0.
    assert.deepEqual(told, [[[0, 2], [4, 1], [16, 1]]]);
    inj.onRequest({ block: "pc.ram", offset: 8 * P, length: P, named: false });
    assert.equal(told.length, 1, "no new discards: not told again");
  });

  it("the QEMU policy (the engine) forgets the discarded pages it had as present, keeps the others", async () => {
    await loadPolicyEngine();
    // A model whose switch-over pages are 10, 20, 30 (its one remembered start), restored.
    const first = createQemuPolicy(64);
    for (const g of [10, 20, 30]) first.onRequest(g, { outstanding: 1, outstandingInjected: 0 });
    const saved = first.snapshot!();
    first.dispose!();
    const fresh = () => { const q = createQemuPolicy(64, { preloadPages: 8 }, saved); assert.match(q.origin, /^restored/); for (const g of [10, 20, 30]) q.onPresent!(g); return q; };
    const kept = fresh();
    assert.deepEqual(kept.preload!(), [], "all present: nothing to preload");
    const q = fresh();
    q.resetPresent!([[10, 1], [40, 2]]); // 20 and 30 were discarded
    assert.deepEqual(q.preload!(), [20, 30]);
    for (const x of [kept, q]) x.dispose!();
  });

  it("the service tracker counts them as not sent: a request for one is not 'already sent'", () => {
    const t = new ServiceTracker();
    for (const p of [1, 2, 3]) t.onPage("pc.ram", p, "main", 0);
    t.forget("pc.ram", 2, 1);
    t.forget("pc.ram", 0, 2 ** 52); // bounded by the pages seen, whatever the range says
    assert.equal(t.isSeen("pc.ram", 1), false);
    t.onPage("pc.ram", 3, "main", 0);
    t.forget("pc.ram", 2, 1);
    assert.equal(t.isSeen("pc.ram", 3), true, "outside the range: still seen");
    t.onDestRequest("pc.ram", 2, 1, 10);
    assert.equal(t.report().destAlreadySent, 0);
    t.onPage("pc.ram", 2, "main", 14);
    assert.equal(t.report().dest.count, 1);
  });
});

describe("the proxy and POSTCOPY_RAM_DISCARD", () => {

  async function start() {
    const { target, accepted } = await acceptingTarget();
    const strategy: QemuStrategy = { name: "next3", origin: "new", gated: 0, onFault: () => [], onRequest: (g) => [g + 1, g + 2, g + 3] };
    const proxy = new QemuProxy({
      listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port,
      makeStrategy: () => strategy, scannerReturn: false,
    });
    const port = (await proxy.listen()).port;
    const done = new Promise<MigrationReport>((r) => proxy.once("migration", r));
    return { accepted, target, proxy, port, done };
  }

  it("requests discarded pages again after the switch-over", { timeout: 10000 }, async () => {
    const { accepted, target, proxy, port } = await start();
    const src = await connect(port);
    src.on("error", () => {});
    const srcGot: Buffer[] = [];
    src.on("data", (d) => srcGot.push(d));
    src.write(Buffer.concat([HEAD, S.footer(), S.part(S.page(0x1000, "pc.ram"), S.page(0x2000, null), S.page(0x3000, null)),
      S.discard("pc.ram", [[0x2000, 0x2000]]), S.packaged(Buffer.from("device state"))]));
    await until(() => accepted.length === 1, "connected");
    const dst = accepted[0];
    dst.resume();
    // the discard came before the packaged device state: parsed by the time the phase is post-copy
    await until(() => proxy.current()?.phase === "postcopy", "post-copy");
    dst.write(encodeReqPagesId(0, P, "pc.ram"));
    const want = Buffer.concat([encodeReqPagesId(0, P, "pc.ram"), encodeReqPages(0x2000, 0x2000)]);
    await until(() => Buffer.concat(srcGot).length >= want.length, "the request and the injection reach the source");
    assert.deepEqual(Buffer.concat(srcGot), want, "pages 2 and 3 were discarded: predicted and requested again; 1 is present");
    const r = proxy.current()!;
    assert.equal(r.stats.discardedPages, 2);
    assert.equal(r.stats.injectedPages, 2);
    assert.deepEqual(r.discards, { commands: 1, ranges: 1, malformed: 0 });
    src.destroy();
    await proxy.close();
    target.close();
  });

  it("forwards a malformed and a truncated command byte for byte, reports them, does not fall over", { timeout: 10000 }, async () => {
    const { accepted, target, proxy, port, done } = await start();
    const src = await connect(port);
    src.on("error", () => {});
    const bad = rawCmd(MIG_CMD_POSTCOPY_RAM_DISCARD, Buffer.concat([Buffer.from([7]), discardPayload("pc.ram", [[0x2000, 0x1000]]).subarray(1)]));
    const cut = S.discard("pc.ram", [[0x1000, 0x1000]]).subarray(0, 11);
    const fwd = Buffer.concat([HEAD, S.footer(), S.part(S.page(0x1000, "pc.ram")), bad, S.part(S.page(0x4000, "pc.ram")), cut]);
    src.end(fwd);
    await until(() => accepted.length === 1, "connected");
    const dstGot: Buffer[] = [];
    accepted[0].on("data", (d) => dstGot.push(d));
    accepted[0].on("end", () => accepted[0].end());
    const r = await done;
    assert.deepEqual(Buffer.concat(dstGot), fwd);
    assert.deepEqual(r.discards, { commands: 0, ranges: 0, malformed: 1, lastError: "version 7, expected 0" });
    assert.equal(r.service.pagesSeen.main, 2, "followed after the malformed command");
    assert.equal(r.phase, "closed");
    await proxy.close();
    target.close();
  });
});
