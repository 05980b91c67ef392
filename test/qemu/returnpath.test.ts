import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { RequestInjector } from "../../src/qemu/injector.js";
import { parseRamSetup, RamHeaderScanner } from "../../src/qemu/ramheader.js";
import {
  encodeMessage, encodeReqPages, encodeReqPagesId, ReturnPathError, ReturnPathFilter,
  RP_PONG, RP_RECV_BITMAP, RP_REQ_PAGES, RP_REQ_PAGES_ID, RP_SHUT, type PageRequest,
} from "../../src/qemu/returnpath.js";
import { NextNStrategy } from "../../src/qemu/strategies.js";
import type { Strategy } from "../../src/strategies/types.js";

const FIX = path.join(import.meta.dirname, "fixtures");
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };

function recvBitmap(name: string, bitmap: Buffer): Buffer {
  const n = Buffer.from(name, "latin1");
  const size = Buffer.alloc(8); size.writeBigUInt64BE(BigInt(bitmap.length));
  const end = Buffer.alloc(8); end.writeBigUInt64BE(0x0123456789abcdefn);
  return Buffer.concat([encodeMessage(RP_RECV_BITMAP, Buffer.concat([Buffer.from([n.length]), n])), size, bitmap, end]);
}

/** A synthetic return path: every message type, including unknown ones and a receive bitmap. */
function syntheticStream(): Buffer[] {
  return [
    encodeMessage(RP_PONG, be32(1)),
    encodeReqPagesId(0x5000, 4096, "pc.ram"),
    encodeReqPages(0x9000, 4096),
    encodeMessage(9, Buffer.from([1, 2, 3])), // unknown type: passed through on its length
    encodeMessage(7, Buffer.alloc(0)), // SWITCHOVER_ACK in newer QEMUs
    encodeReqPagesId(0x1000, 8192, "pc.bios"),
    recvBitmap("pc.ram", Buffer.from([0xff, 0x00, 0x03, 0x04, 0x05])),
    encodeReqPagesId(0x3ff000, 4096, "pc.ram"),
    encodeMessage(RP_SHUT, be32(0)),
  ];
}

/** Inject a fixed pattern: the next two pages after the request. */
const hook = (seen: PageRequest[]) => ({
  onRequest: (r: PageRequest) => { seen.push(r); return [{ offset: r.offset + r.length, length: 8192 }]; },
});

function expected(msgs: Buffer[]): Buffer {
  const out: Buffer[] = [];
  for (const m of msgs) {
    out.push(m);
    const t = m.readUInt16BE(0);
    if (t === RP_REQ_PAGES_ID || t === RP_REQ_PAGES) {
      const off = Number(m.readBigUInt64BE(4));
      const len = m.readUInt32BE(12);
      out.push(encodeReqPages(off + len, 8192));
    }
  }
  return Buffer.concat(out);
}

function runChunks(chunks: Buffer[]): { out: Buffer; seen: PageRequest[]; f: ReturnPathFilter } {
  const seen: PageRequest[] = [];
  const f = new ReturnPathFilter(hook(seen));
  const out = Buffer.concat(chunks.map((c) => f.push(c)));
  return { out, seen, f };
}

describe("return path filter", () => {
  const msgs = syntheticStream();
  const whole = Buffer.concat(msgs);
  const want = expected(msgs);

  it("parses a whole stream, injects after each request, passes everything else untouched", () => {
    const { out, seen, f } = runChunks([whole]);
    assert.deepEqual(out, want);
    assert.deepEqual(seen.map((r) => [r.block, r.offset, r.length, r.named]), [
      ["pc.ram", 0x5000, 4096, true], ["pc.ram", 0x9000, 4096, false], ["pc.bios", 0x1000, 8192, true], ["pc.ram", 0x3ff000, 4096, true],
    ]);
    assert.equal(f.counts.get(9), 1);
    assert.equal(f.counts.get(7), 1);
    assert.ok(f.atBoundary);
  });

  it("gives the same output split at every possible boundary (two chunks)", () => {
    for (let cut = 0; cut <= whole.length; cut++) {
      const { out, seen } = runChunks([whole.subarray(0, cut), whole.subarray(cut)]);
      assert.deepEqual(out, want, `cut at ${cut}`);
      assert.equal(seen.length, 4);
    }
  });

  it("gives the same output byte by byte and for every pair of cuts", () => {
    assert.deepEqual(runChunks([...whole].map((b) => Buffer.from([b]))).out, want);
    for (let a = 0; a <= whole.length; a += 3) {
      for (let b = a; b <= whole.length; b += 5) {
        const { out } = runChunks([whole.subarray(0, a), whole.subarray(a, b), whole.subarray(b)]);
        assert.deepEqual(out, want, `cuts ${a},${b}`);
      }
    }
  });

  it("with a forward hook: each request leaves before its prediction runs, and the bytes are the same stream for every cut", () => {
    /** The filter's output: what went through `forward` and what push() returned, in order; and each onRequest's view of it. */
    const run = (chunks: Buffer[]) => {
      const sent: Buffer[] = [];
      const atRequest: number[] = []; // bytes out when each prediction began
      const f = new ReturnPathFilter({
        forward: (b) => { sent.push(Buffer.from(b)); },
        onRequest: (r) => { atRequest.push(Buffer.concat(sent).length); return [{ offset: r.offset + r.length, length: 8192 }]; },
      });
      for (const c of chunks) sent.push(Buffer.from(f.push(c)));
      return { out: Buffer.concat(sent), atRequest };
    };
    // where each request of the synthetic stream ends in it (what must be out when its prediction runs)
    const ends: number[] = [];
    let at = 0, injectedBefore = 0;
    for (const m of msgs) {
      at += m.length;
      const t = m.readUInt16BE(0);
      if (t === RP_REQ_PAGES_ID || t === RP_REQ_PAGES) { ends.push(at + injectedBefore); injectedBefore += 16; }
    }
    for (let cut = 0; cut <= whole.length; cut++) {
      const { out, atRequest } = run([whole.subarray(0, cut), whole.subarray(cut)]);
      assert.deepEqual(out, want, `cut at ${cut}`);
      assert.deepEqual(atRequest, ends, `cut at ${cut}: every byte up to the request (and the injections before it) was out`);
    }
    assert.deepEqual(run([...whole].map((x) => Buffer.from([x]))).out, want);
  });

  it("with a forward hook, two requests in one chunk keep the first one's injections ahead of the second (a bare REQ_PAGES means the block last named)", () => {
    const sent: Buffer[] = [];
    const f = new ReturnPathFilter({
      forward: (b) => { sent.push(Buffer.from(b)); },
      onRequest: (r) => [{ offset: r.offset + r.length, length: 4096 }],
    });
    const a = encodeReqPagesId(0x5000, 4096, "pc.ram"), b = encodeReqPagesId(0x1000, 4096, "pc.bios");
    sent.push(Buffer.from(f.push(Buffer.concat([a, b]))));
    assert.deepEqual(Buffer.concat(sent), Buffer.concat([a, encodeReqPages(0x6000, 4096), b, encodeReqPages(0x2000, 4096)]));
    assert.equal(f.forwardedOfChunk, a.length + b.length);
  });

  it("returns the input chunk itself when nothing is injected", () => {
    const f = new ReturnPathFilter();
    const c = encodeMessage(RP_PONG, be32(5));
    assert.equal(f.push(c), c);
  });

  it("rejects malformed messages and then refuses more input", () => {
    const bad: [string, Buffer][] = [
      ["REQ_PAGES with 11 bytes", Buffer.concat([Buffer.from([0, 4, 0, 11]), Buffer.alloc(11)])],
      ["PONG with 2 bytes", Buffer.from([0, 2, 0, 2, 0, 0])],
      ["REQ_PAGES before REQ_PAGES_ID", encodeReqPages(0, 4096)],
      ["REQ_PAGES_ID name length mismatch", (() => { const b = encodeReqPagesId(0, 4096, "pc.ram"); b[16] = 3; return b; })()],
      ["REQ_PAGES_ID too short", Buffer.concat([Buffer.from([0, 3, 0, 5]), Buffer.alloc(5)])],
      ["unaligned offset", encodeReqPagesId(0x1001, 4096, "pc.ram")],
      ["zero length", encodeReqPagesId(0x1000, 0, "pc.ram")],
    ];
    for (const [what, bytes] of bad) {
      const f = new ReturnPathFilter({ onRequest: () => [] });
      assert.throws(() => f.push(bytes), ReturnPathError, what);
      assert.throws(() => f.push(encodeMessage(RP_PONG, be32(1))), ReturnPathError, `${what}: sticky`);
    }
  });

  it("parses a return path recorded from QEMU 7.2 at every split", () => {
    const file = path.join(FIX, "return-path-7.2.bin");
    const rec = fs.readFileSync(file);
    const ref = runChunks([rec]);
    assert.ok(ref.seen.length > 0, "the recording holds page requests");
    assert.ok(ref.seen.every((r) => r.block === "pc.ram" || r.block.length > 0));
    assert.ok(ref.f.atBoundary);
    for (let cut = 0; cut <= rec.length; cut++) {
      const { out, seen } = runChunks([rec.subarray(0, cut), rec.subarray(cut)]);
      assert.deepEqual(out, ref.out);
      assert.equal(seen.length, ref.seen.length);
    }
    // Without injection the output is the recording, byte for byte.
    const plain = new ReturnPathFilter({ onRequest: () => [] });
    assert.deepEqual(plain.push(rec), rec);
  });
});

describe("RAM layout from the forward stream", () => {
  it("reads the RAMBlock list of a recorded QEMU 7.2 stream head, at every split", () => {
    const head = fs.readFileSync(path.join(FIX, "forward-head-7.2.bin"));
    const r = parseRamSetup(head);
    assert.ok(Array.isArray(r), String(r));
    const blocks = r as { name: string; size: number }[];
    assert.equal(blocks[0].name, "pc.ram");
    assert.equal(blocks[0].size, 512 << 20);
    for (let cut = 1; cut < 2000; cut += 7) {
      const s = new RamHeaderScanner();
      const a = s.push(head.subarray(0, cut));
      const b = s.push(head.subarray(cut));
      assert.deepEqual(a ?? b, blocks);
    }
  });

  it("refuses streams without the magic", () => {
    assert.equal(typeof parseRamSetup(Buffer.from("hello world")), "string");
  });
});

const LAYOUT = { blocks: [{ name: "pc.ram", size: 64 * 4096 }, { name: "pc.bios", size: 4 * 4096 }, { name: "vga.vram", size: 16 * 4096 }] };

class Scripted implements Strategy {
  readonly name = "scripted";
  constructor(private readonly answer: (fault: number) => number[]) {}
  onFault(page: number): number[] { return this.answer(page); }
}

describe("request injector", () => {
  it("injects next-8 runs inside the block and never twice", () => {
    const inj = new RequestInjector((n) => new NextNStrategy(n, 8));
    inj.setLayout(LAYOUT);
    assert.deepEqual(inj.onRequest({ block: "pc.ram", offset: 0, length: 4096, named: true }), [{ offset: 4096, length: 8 * 4096 }]);
    // Page 5 was injected: of 6..13 only 9..13 are new (1..8 were injected).
    assert.deepEqual(inj.onRequest({ block: "pc.ram", offset: 5 * 4096, length: 4096, named: false }), [{ offset: 9 * 4096, length: 5 * 4096 }]);
    // At the end of a block nothing spills into the next one.
    assert.deepEqual(inj.onRequest({ block: "pc.ram", offset: 62 * 4096, length: 4096, named: false }), [{ offset: 63 * 4096, length: 4096 }]);
    assert.deepEqual(inj.onRequest({ block: "pc.bios", offset: 2 * 4096, length: 4096, named: true }), [{ offset: 3 * 4096, length: 4096 }]);
    const s = inj.stats();
    assert.equal(s.requests, 4);
    assert.equal(s.requestsForInjected, 1);
    assert.equal(s.injectedPages, 8 + 5 + 1 + 1);
  });

  it("no prediction for blocks of unknown size or without a layout", () => {
    const inj = new RequestInjector((n) => new NextNStrategy(n, 8));
    assert.deepEqual(inj.onRequest({ block: "pc.ram", offset: 0, length: 4096, named: true }), []);
    inj.setLayout(LAYOUT);
    assert.deepEqual(inj.onRequest({ block: "mystery", offset: 0, length: 4096, named: true }), []);
    assert.equal(inj.stats().unknownBlockRequests, 2);
  });

  it("never injects outside the RAMBlock or an already requested page, whatever the strategy says", () => {
    const total = 64 + 4 + 16;
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.constantFrom(0, 1, 2), fc.nat(70), fc.array(fc.integer({ min: -5, max: total + 5 }), { maxLength: 40 })), { maxLength: 30 }),
      (steps) => {
        let k = 0;
        const inj = new RequestInjector(() => new Scripted(() => steps[k]?.[2] ?? []));
        inj.setLayout(LAYOUT);
        const requested = LAYOUT.blocks.map((b) => new Uint8Array(b.size / 4096));
        for (k = 0; k < steps.length; k++) {
          const [bi, pg] = steps[k];
          const b = LAYOUT.blocks[bi];
          const page = pg % (b.size / 4096);
          requested[bi][page] = 1;
          for (const r of inj.onRequest({ block: b.name, offset: page * 4096, length: 4096, named: true })) {
            assert.ok(r.offset >= 0 && r.length > 0 && r.offset + r.length <= b.size, "inside the block");
            assert.equal(r.offset % 4096, 0);
            for (let p = r.offset / 4096; p < (r.offset + r.length) / 4096; p++) {
              assert.equal(requested[bi][p], 0, "not requested before");
              requested[bi][p] = 1;
            }
          }
        }
      },
    ), { numRuns: 300 });
  });
});
