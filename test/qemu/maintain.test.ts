/**
 * The strategy's upkeep (`maintain`: the engine counts the last request in its page trie there, and
 * runs a due prune) comes after a chunk's requests and their injections are written to the source,
 * once per chunk that held a request, never for a chunk without one.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { it } from "node:test";
import { encodeMessage, encodeReqPages, encodeReqPagesId, RP_PONG } from "../../src/qemu/returnpath.js";
import type { QemuStrategy } from "../../src/qemu/policy.js";
import { until, connect, acceptingTarget, proxyTo, toPostcopy } from "./harness.js";

const HEAD = fs.readFileSync(path.join(import.meta.dirname, "fixtures", "forward-head-7.2.bin"));
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };

it("maintain runs after each chunk's request and injection are written, once per chunk with a request", { timeout: 15000 }, async () => {
  const events: (string | Buffer)[] = [];
  let maintains = 0;
  const strategy: QemuStrategy = {
    name: "fake", origin: "new", gated: 0, onFault: () => [],
    onRequest: (page) => { events.push(`request ${page}`); return [page + 1]; },
    maintain: () => { maintains++; events.push("maintain"); },
  };
  const { target, accepted } = await acceptingTarget();
  const { proxy, port } = await proxyTo((target.address() as net.AddressInfo).port, strategy);
  const src = await connect(port);
  src.on("error", () => {});
  src.resume();
  try {
    await checkOrder(await toPostcopy(src, HEAD, accepted, proxy), events, () => maintains);
  } finally {
    await proxy.close();
    target.close();
    src.destroy();
    for (const s of accepted) s.destroy();
  }
});

async function checkOrder(dst: net.Socket, events: (string | Buffer)[], maintains: () => number): Promise<void> {
  const write = net.Socket.prototype.write;
  // Every socket write from here on, in order with the strategy's calls.
  net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
    if (Buffer.isBuffer(chunk)) events.push(Buffer.from(chunk));
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof write;
  const first = encodeReqPagesId(0x8000, 4096, "pc.ram");
  const second = encodeReqPages(0x9000, 4096); // the block last named
  try {
    dst.write(first);
    await until(() => maintains() === 1, "maintain after the first request");
    dst.write(encodeMessage(RP_PONG, be32(7))); // a chunk without a request
    dst.write(second);
    await until(() => maintains() === 2, "maintain after the second request");
  } finally {
    net.Socket.prototype.write = write;
  }
  const at = (p: (e: string | Buffer) => boolean, from = 0) => events.findIndex((e, i) => i >= from && p(e));
  for (const [req, bytes] of [[0, first], [1, second]] as const) {
    const sent = at((e) => Buffer.isBuffer(e) && e.includes(bytes));
    const asked = at((e) => typeof e === "string" && e.startsWith("request"), req === 0 ? 0 : at((e) => e === "maintain") + 1);
    const upkeep = at((e) => e === "maintain", asked);
    assert.ok(sent >= 0 && sent < asked, `request ${req} reaches the source before its prediction (${sent}, ${asked})`);
    assert.ok(upkeep > asked, `maintain follows prediction ${req}`);
    const injection = events.slice(asked + 1, upkeep).filter(Buffer.isBuffer);
    assert.ok(injection.length > 0, `the injection of request ${req} is written before maintain`);
  }
  assert.equal(maintains(), 2, "one maintain per chunk with a request, none for the PONG");
}
