/**
 * Bad frames from the source: the destination names them to the source in an ERROR frame before it
 * closes (docs/protocol.md, "Errors"), and a page that fails its checksum on every connection ends the
 * migration with an error naming it instead of reconnecting forever.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration, SAME_FAILURE_LIMIT } from "../../src/transport/destination.js";
import { ErrorCode, FrameType, PAGE_SIZE, PageKind, RemoteError, encodePage, pageFrameSize } from "../../src/transport/protocol.js";
import { errorOf, fakeSource } from "./raw.js";
import { image, syntheticTrace } from "./helpers.js";

test("a frame of unknown type from the source: the destination fails naming it and tells the source in an ERROR frame", { timeout: 20_000 }, async () => {
  const src = await fakeSource(image(16, 2), {
    onWelcome: (c) => { const b = Buffer.alloc(5); b.writeUInt32LE(1, 0); b[4] = 99; c.sock.write(b); },
  });
  try {
    await assert.rejects(runMigration({ port: src.port, trace: { pages: Uint32Array.of(0, 1, 2) }, switchAt: 0, ips: 0, timeoutMs: 10_000 }),
      /^ProtocolError: malformed frame: unknown frame type 99 from the source$/);
    const f = await src.conns[0].inbox.waitFor((x) => x.type === FrameType.Error, 5000, "ERROR frame from the destination");
    assert.deepEqual(errorOf(f), { code: ErrorCode.Malformed, message: "unknown frame type 99 from the source" });
  } finally { await src.close(); }
});

/** A relay to `target` that flips one byte, `at` bytes into what the source sends on each connection. */
async function corruptingRelay(target: number, at: number): Promise<{ port: number; connections: () => number; close: () => void }> {
  const live = new Set<Socket>();
  let n = 0;
  const server = createServer((down) => {
    n++;
    const up = connect({ port: target, host: "127.0.0.1", noDelay: true });
    down.setNoDelay(true);
    live.add(down); live.add(up);
    let seen = 0;
    up.on("data", (c: Buffer) => {
      if (seen <= at && at < seen + c.length) { c = Buffer.from(c); c[at - seen] ^= 0xff; }
      seen += c.length;
      down.write(c);
    });
    down.pipe(up);
    const end = () => { down.destroy(); up.destroy(); live.delete(down); live.delete(up); };
    down.on("error", end); up.on("error", end); down.on("close", end); up.on("close", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as AddressInfo).port, connections: () => n, close: () => { for (const s of live) s.destroy(); server.close(); } };
}

test(`a page that fails its checksum on ${SAME_FAILURE_LIMIT} connections in a row ends the migration with an error naming it`, { timeout: 30_000 }, async () => {
  const errors: Error[] = [];
  const srv = await startPageServer({ image: image(64, 5), push: "linear", onError: (e) => errors.push(e) });
  // byte 200 of each connection: inside the data of the first page after the 49-byte WELCOME
  const link = await corruptingRelay(srv.port, 200);
  try {
    const err = await runMigration({ port: link.port, trace: syntheticTrace(500, 64, 4), switchAt: 0, ips: 0, timeoutMs: 8000 }).then(
      () => assert.fail("the migration should fail"), (e: Error) => e);
    assert.match(err.message, new RegExp(`^checksum mismatch: page \\d+ does not match its checksum; ${SAME_FAILURE_LIMIT} connections in a row failed this way with no page accepted in between: giving up$`));
    assert.equal(link.connections(), SAME_FAILURE_LIMIT);
    // the source heard why each connection was dropped
    for (let i = 0; i < 100 && errors.length < SAME_FAILURE_LIMIT; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(errors.length >= 1 && errors.every((e) => e instanceof RemoteError && e.code === ErrorCode.Checksum), errors.map((e) => e.message).join("; "));
  } finally { link.close(); await srv.close(); }
});

test("checksum failures with pages accepted in between are a flaky link, not a repetition: the migration completes", { timeout: 30_000 }, async () => {
  // the first SAME_FAILURE_LIMIT + 2 connections each deliver 8 new pages, then a corrupt one; the next delivers the rest
  const PAGES = 128, img = image(PAGES, 6);
  let next = 0;
  const src = await fakeSource(img, {
    onWelcome: (c) => {
      if (c.index < SAME_FAILURE_LIMIT + 2) {
        for (let i = 0; i < 8; i++) src.page(c, next++, PageKind.Push);
        const b = Buffer.alloc(pageFrameSize(PAGE_SIZE));
        encodePage(b, 0, next, PageKind.Push, img, PAGE_SIZE);
        b[b.length - 1] ^= 0xff; // the data no longer matches its CRC-32
        c.sock.write(b);
      } else {
        while (next < PAGES) src.page(c, next++, PageKind.Push);
      }
    },
    onFrame: (c, f) => { if (f.type === FrameType.Done) c.sock.end(); },
  });
  try {
    const r = await runMigration({ port: src.port, trace: syntheticTrace(2000, PAGES, 5), switchAt: 0, ips: 0, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    assert.equal(r.reconnects, SAME_FAILURE_LIMIT + 2);
    assert.equal(src.conns.length, SAME_FAILURE_LIMIT + 3);
  } finally { await src.close(); }
});
