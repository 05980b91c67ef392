/**
 * The destination holds guest memory in one Buffer: a WELCOME naming an image larger than Node allows
 * (or of 0 pages) is refused by name, fatally, and named to the source, before anything is allocated.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { constants } from "node:buffer";
import { runMigration } from "../../src/transport/destination.js";
import { encodeWelcome, PROTOCOL_VERSION, PAGE_SIZE, LEN_BYTES, WELCOME_BODY } from "../../src/transport/protocol.js";
import { syntheticTrace } from "./helpers.js";

/** A fake source that answers the first bytes (HELLO) with a WELCOME of `pageCount` pages; returns what it heard after. */
async function fakeSource(pageCount: number): Promise<{ port: number; heard: () => Buffer; close: () => void }> {
  const socks: Socket[] = [];
  let heard = Buffer.alloc(0);
  const srv = createServer((s) => {
    socks.push(s);
    let welcomed = false;
    s.on("data", (d: Buffer) => {
      if (!welcomed) {
        welcomed = true;
        const b = Buffer.alloc(LEN_BYTES + 1 + WELCOME_BODY);
        encodeWelcome(b, 0, { version: PROTOCOL_VERSION, flags: 0, pageSize: PAGE_SIZE, pageCount, digest: Buffer.alloc(32, 1) });
        s.write(b);
      } else heard = Buffer.concat([heard, d]);
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return { port: (srv.address() as AddressInfo).port, heard: () => heard, close: () => { for (const s of socks) s.destroy(); srv.close(); } };
}

test("a WELCOME of more pages than one Buffer holds, or of 0 pages, fails the migration by name", { timeout: 20_000 }, async () => {
  const tooMany = Math.floor(constants.MAX_LENGTH / PAGE_SIZE) + 1;
  for (const [pages, msg, said] of [[tooMany, /holds at most \d+ .*one Node Buffer/, "one Node Buffer"], [0, /WELCOME names an image of 0 pages/, "0 pages"]] as const) {
    const src = await fakeSource(pages);
    try {
      await assert.rejects(runMigration({ port: src.port, trace: syntheticTrace(100, 64, 2), switchAt: 0, ips: 0, timeoutMs: 10_000, reconnectTimeoutMs: 2000 }), msg);
      for (let i = 0; i < 50 && src.heard().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(src.heard().includes(Buffer.from(said)), `the source is told why (an ERROR frame): ${src.heard().toString("latin1")}`);
    } finally { src.close(); }
  }
});
