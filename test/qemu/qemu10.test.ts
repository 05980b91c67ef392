/**
 * QEMU 10.0's streams (Debian bookworm-backports 1:10.0.2, recorded with scripts/qemu/capture.ts,
 * md5 guest, postcopy-preempt): the layout, the forward reader on both channels, the return path, and
 * the proxy end to end with a QEMU-10-shaped source. The 7.2 tests stay as they are.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { describe, it } from "node:test";
import { findRamSetupEnd, MIG_CMD_PACKAGED, MIG_CMD_SWITCHOVER_START } from "../../src/qemu/forward.js";
import { QemuProxy, type MigrationReport } from "../../src/qemu/proxy.js";
import { parseMachineType, RamHeaderScanner, parseRamSetup } from "../../src/qemu/ramheader.js";
import { encodeMessage, encodeReqPages, encodeReqPagesId, ReturnPathFilter, RP_SHUT } from "../../src/qemu/returnpath.js";
import { strategyFactory } from "../../src/qemu/strategies.js";
import { parseQemuVersion } from "../../scripts/qemu/migrate.js";
import { streams, parse } from "./streams.js";

const FIX = path.join(import.meta.dirname, "fixtures");
/** Main channel: header, configuration "pc-i440fx-10.0", ram setup (section 1), footer, SWITCHOVER_START, 6 discards, PING. */
const HEAD10 = fs.readFileSync(path.join(FIX, "forward-head-10.0.bin"));
/** Preempt channel: its first two records (pc.ram 0x232c named, 0x1fe82 CONTINUE), no handshake. */
const PREEMPT10 = fs.readFileSync(path.join(FIX, "preempt-head-10.0.bin"));
const RP10 = fs.readFileSync(path.join(FIX, "return-path-10.0.bin"));
const S10 = streams(1);
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };

function mainStream10(): Buffer {
  return Buffer.concat([
    HEAD10,
    S10.packaged(Buffer.concat([Buffer.from([0x04, 0, 0, 0, 9]), S10.page(0x1000, "pc.ram")])), S10.cmd(2, be32(5)),
    S10.part(S10.page(0x5000, "pc.ram"), S10.zero(0x6000, null)),
    S10.end(S10.page(0x7000, null)),
    S10.eof(),
  ]);
}

describe("QEMU 10.0 streams", () => {
  it("reads the RAMBlock layout of a recorded 10.0 head (ram is section 1), at every split", () => {
    const r = parseRamSetup(HEAD10);
    assert.ok(Array.isArray(r), String(r));
    assert.deepEqual(r.map((b) => b.name), ["pc.ram", "/rom@etc/acpi/tables", "pc.bios", "pc.rom", "/rom@etc/table-loader", "/rom@etc/acpi/rsdp"]);
    assert.equal(r[0].size, 512 << 20);
    assert.deepEqual(findRamSetupEnd(HEAD10), { section: 1, end: 227 });
    for (let cut = 1; cut < HEAD10.length; cut++) {
      const s = new RamHeaderScanner();
      assert.deepEqual(s.push(HEAD10.subarray(0, cut)) ?? s.push(HEAD10.subarray(cut)), r, `split at ${cut}`);
    }
  });

  it("follows the 10.0 main channel (SWITCHOVER_START, discards, packaged state, section 1) at every split", () => {
    const s = mainStream10();
    const want = [["pc.ram", 5, false], ["pc.ram", 6, true], ["pc.ram", 7, false]];
    const cmds = [MIG_CMD_SWITCHOVER_START, 6, 6, 6, 6, 6, 6, 2, MIG_CMD_PACKAGED, 2];
    for (let cut = 1; cut < s.length; cut += 3) {
      const r = parse("main", [s.subarray(0, cut), s.subarray(cut)]);
      assert.equal(r.p.lost, null, `split at ${cut}`);
      assert.deepEqual(r.pages, want, `split at ${cut}`);
      assert.deepEqual(r.cmds, cmds);
      assert.equal(r.eof, 1);
      assert.equal(r.p.ramSectionId, 1);
    }
  });

  it("follows the 10.0 preempt channel from its first byte (no handshake), at every split", () => {
    const want = [["pc.ram", 0x232c, false], ["pc.ram", 0x1fe82, false]];
    for (let cut = 0; cut <= PREEMPT10.length; cut += cut < 64 ? 1 : 97) {
      const r = parse("preempt", [PREEMPT10.subarray(0, cut), PREEMPT10.subarray(cut)]);
      assert.equal(r.p.lost, null);
      assert.deepEqual(r.pages, want, `split at ${cut}`);
    }
  });

  it("parses a return path recorded from 10.0 (same messages as 7.2) at every split, byte for byte without injection", () => {
    const ref: string[] = [];
    const f = new ReturnPathFilter({ onRequest: (q) => { ref.push(`${q.block}:${q.offset}:${q.length}`); return []; } });
    assert.deepEqual(f.push(RP10), RP10);
    assert.ok(ref.length > 100 && ref[0].startsWith("pc.ram:"), `requests: ${ref.length}`);
    assert.ok(f.atBoundary);
    for (let cut = 0; cut <= RP10.length; cut += 5) {
      const seen: string[] = [];
      const g = new ReturnPathFilter({ onRequest: (q) => { seen.push(`${q.block}:${q.offset}:${q.length}`); return []; } });
      assert.deepEqual(Buffer.concat([g.push(RP10.subarray(0, cut)), g.push(RP10.subarray(cut))]), RP10);
      assert.deepEqual(seen, ref);
    }
  });

  it("reads the machine type of the configuration section (7.2 and 10.0 heads), at every split", () => {
    const head72 = fs.readFileSync(path.join(FIX, "forward-head-7.2.bin"));
    assert.equal(parseMachineType(head72), "pc-i440fx-7.2");
    assert.equal(parseMachineType(HEAD10), "pc-i440fx-10.0");
    assert.equal(parseMachineType(HEAD10.subarray(0, 20)), "need-more");
    assert.equal(parseMachineType(Buffer.from("QEVM\0\0\0\x03\x01rest of it")), "");
    for (let cut = 1; cut < 40; cut++) {
      const s = new RamHeaderScanner();
      s.push(HEAD10.subarray(0, cut));
      s.push(HEAD10.subarray(cut));
      assert.equal(s.machine, "pc-i440fx-10.0");
    }
  });

  it("reads QEMU's version from --version", () => {
    assert.equal(parseQemuVersion("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright"), "10.0.2");
    assert.equal(parseQemuVersion("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"), "7.2.22");
    assert.equal(parseQemuVersion("something else"), "");
  });

  it("proxies a 10.0-shaped migration: layout, both channels followed, service times on the preempt channel", { timeout: 20000 }, async () => {
    const accepted: net.Socket[] = [];
    const target = net.createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    const proxy = new QemuProxy({ listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port, makeStrategy: strategyFactory("none") });
    const port = (await proxy.listen()).port;
    const done = new Promise<MigrationReport>((r) => proxy.once("migration", r));
    const connect = () => new Promise<net.Socket>((r) => { const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => r(s)); });
    const until = async (f: () => boolean) => { for (let i = 0; i < 400 && !f(); i++) await new Promise((r) => setTimeout(r, 10)); assert.ok(f()); };
    const main = await connect();
    main.resume();
    const s = mainStream10();
    const eofAt = s.length - 1;
    main.write(s.subarray(0, eofAt - S10.end(S10.page(0x7000, null)).length)); // up to the last section
    await until(() => accepted.length === 1);
    const pre = await connect();
    await until(() => accepted.length === 2);
    for (const a of accepted) a.resume();
    // The destination asks for 0x232c and 0x1fe82; the preempt channel brings them.
    accepted[0].write(Buffer.concat([encodeReqPagesId(0x232c000, 4096, "pc.ram"), encodeReqPages(0x1fe82000, 4096)]));
    await new Promise((r) => setTimeout(r, 30));
    pre.write(PREEMPT10);
    main.write(s.subarray(eofAt - S10.end(S10.page(0x7000, null)).length));
    await new Promise((r) => setTimeout(r, 30));
    accepted[0].write(encodeMessage(RP_SHUT, be32(0)));
    main.end();
    pre.end();
    for (const a of accepted) a.end();
    const r = await done;
    assert.equal(r.error, undefined);
    assert.equal(r.phase, "completed");
    assert.equal(r.layoutSource, "stream");
    assert.equal(r.machine, "pc-i440fx-10.0");
    assert.equal(r.connections, 2);
    assert.equal(r.service.followed.main, "followed to the end");
    assert.equal(r.service.followed.preempt, "followed");
    assert.equal(r.service.pagesSeen.preempt, 2);
    assert.equal(r.service.destByChannel.preempt.count, 2);
    assert.equal(r.stats.requests, 2);
    await proxy.close();
    target.close();
  });

  // late: the preempt channel connects after the switch-over's bytes ("soon": at once, as when the
  // proxy handles QEMU's earlier connect after the bytes; "request": only before the first request).
  const cases: [boolean, boolean | undefined, "" | "soon" | "request"][] = [[true, undefined, ""], [false, undefined, ""], [true, true, ""], [false, false, ""], [true, undefined, "soon"], [true, undefined, "request"]];
  for (const [preempt, scannerReturn, late] of cases) {
    it(`takes QEMU >= 8.0's defaults from the 10.0 stream's machine type and steers by its channels (${preempt ? `a silent preempt channel${late ? `, seen after the switch-over's bytes (${late})` : ""}` : "no preempt channel"}, scan return ${scannerReturn === undefined ? "by default" : scannerReturn ? "set on" : "set off"})`, { timeout: 20000 }, async () => {
      const accepted: net.Socket[] = [];
      const target = net.createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
      await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
      const layouts: (string | null | undefined)[] = [];
      const steered: unknown[] = [];
      const proxy = new QemuProxy({
        listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port, scannerReturn,
        makeStrategy: (_n, layout) => {
          layouts.push(layout.machine);
          return { name: "fake", onFault: () => [], onRequest: (page: number) => [page + 5], steer: (st: unknown) => steered.push(st) } as never;
        },
      });
      const port = (await proxy.listen()).port;
      const done = new Promise<MigrationReport>((r) => proxy.once("migration", r));
      const main = await new Promise<net.Socket>((r) => { const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => r(s)); });
      const until = async (f: () => boolean) => { for (let i = 0; i < 400 && !f(); i++) await new Promise((r) => setTimeout(r, 10)); assert.ok(f()); };
      const got: Buffer[] = [];
      main.on("data", (d) => got.push(d));
      const s = mainStream10();
      const tail = S10.end(S10.page(0x7000, null)).length + 1;
      main.write(s.subarray(0, HEAD10.length));
      await until(() => accepted.length === 1);
      // QEMU 10 connects its preempt channel at the switch-over, before the packaged device state,
      // and sends nothing on it until a page.
      const connectSecond = async () => {
        const x = await new Promise<net.Socket>((r) => { const y = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => r(y)); });
        await until(() => accepted.length === 2);
        return x;
      };
      let second = preempt && !late ? await connectSecond() : null;
      main.write(s.subarray(HEAD10.length, s.length - tail));
      // The two sockets' events may come in either order: a channel accepted after the switch-over's
      // bytes but before the first request still counts.
      if (preempt && late === "soon") second = await connectSecond();
      if (preempt && late === "request") {
        await until(() => steered.length === 1);
        second = await connectSecond();
      }
      accepted[0].resume();
      accepted[0].write(encodeReqPagesId(0x232c000, 4096, "pc.ram"));
      await until(() => got.length > 0);
      main.write(s.subarray(s.length - tail));
      accepted[0].write(encodeMessage(RP_SHUT, be32(0)));
      main.end();
      accepted[0].end();
      second?.end();
      for (const a of accepted.slice(1)) a.end();
      const r = await done;
      assert.deepEqual(layouts, ["pc-i440fx-10.0"], "the strategy is built knowing the machine");
      assert.equal(r.tuning?.maxPages, 4);
      assert.match(r.tuning!.basis, />= 8\.0/);
      assert.equal(r.tuning?.channel, preempt ? "preempt" : "single");
      const want_ = preempt ? r.tuning!.preempt : r.tuning!.single;
      assert.deepEqual(steered, late === "request" ? [r.tuning!.single, want_] : [want_], "the strategy is told the steering of its channels (again when a late channel changes it)");
      assert.deepEqual(want_.runPages, preempt ? 1 : 64);
      const returns = scannerReturn ?? !preempt;
      assert.equal(r.tuning?.scannerReturnUsed, returns);
      // the destination's request, then the injection: page 0x2331, and with the scan return 0x232d
      const want = returns ? [0x232d, 0x2331] : [0x2331];
      assert.equal(r.stats.injectedPages, want.length);
      assert.equal(r.stats.scannerReturns, returns ? 1 : 0);
      const back = Buffer.concat(got);
      const reqs = encodeReqPagesId(0x232c000, 4096, "pc.ram");
      assert.deepEqual(back.subarray(0, reqs.length), reqs);
      assert.ok(back.length > reqs.length, "something was injected after the request");
      await proxy.close();
      target.close();
    });
  }
});
