/** The stream head is read incrementally: an unrecognised head costs work linear in its size. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { RamHeaderScanner } from "../../src/qemu/ramheader.js";
import { RamStreamParser } from "../../src/qemu/forward.js";

it("a large unrecognised head in small chunks is scanned in linear work", { timeout: 60_000 }, () => {
  const limit = 8 << 20, chunk = 512;
  const s = new RamHeaderScanner(limit);
  const p = new RamStreamParser("main", () => {});
  const head = Buffer.from("QEVM\0\0\0\x03", "latin1");
  s.push(head); p.push(head);
  let pushed = head.length;
  const filler = Buffer.alloc(chunk, 0x55); // never a ram section start
  while (!s.done) { s.push(filler); p.push(filler); pushed += chunk; }
  assert.match(s.reason, /no ram section setup/);
  // copies (doubling) + one look per byte: a small multiple of the bytes, not bytes^2 / chunk
  assert.ok(s.work > 0 && s.work <= 4 * pushed, `scanner work ${s.work} for ${pushed} bytes`);
  assert.ok(p.headWork > 0 && p.headWork <= 4 * pushed, `parser work ${p.headWork} for ${pushed} bytes`);
});
