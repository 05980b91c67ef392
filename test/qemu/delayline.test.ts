/** The user-space link emulator: order kept, delay and rate applied. */
import assert from "node:assert/strict";
import net from "node:net";
import { it } from "node:test";
import { DelayLine } from "../../src/qemu/delayline.js";

async function pair(): Promise<{ a: net.Socket; b: net.Socket; close: () => void }> {
  let b!: net.Socket;
  const srv = net.createServer((s) => (b = s));
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const a = await new Promise<net.Socket>((r) => { const s = net.connect((srv.address() as net.AddressInfo).port, "127.0.0.1", () => r(s)); });
  while (!b) await new Promise((r) => setTimeout(r, 5));
  return { a, b, close: () => { a.destroy(); b.destroy(); srv.close(); } };
}

it("delays every chunk, keeps order, and serialises at the rate", async () => {
  const { a, b, close } = await pair();
  const src = new net.Socket(); // only paused/resumed by the line
  const line = new DelayLine(src, a, { delayMs: 30, rateMbps: 8 }); // 1 MB/s
  const got: Buffer[] = [];
  const t0 = performance.now();
  let firstAt = 0;
  b.on("data", (d) => { if (!firstAt) firstAt = performance.now() - t0; got.push(d); });
  const chunks = Array.from({ length: 10 }, (_, i) => Buffer.alloc(10000, i));
  for (const c of chunks) line.write(c);
  line.end();
  await new Promise((r) => b.on("end", r));
  const total = performance.now() - t0;
  assert.deepEqual(Buffer.concat(got), Buffer.concat(chunks));
  assert.ok(firstAt >= 38, `first byte after delay + serialisation (${firstAt} ms)`);
  assert.ok(total >= 125, `100 kB at 1 MB/s plus 30 ms (${total} ms)`);
  close();
});
