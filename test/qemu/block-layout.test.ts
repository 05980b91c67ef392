/**
 * `--block` (QemuProxyOptions.blocks) against the RAMBlock list the stream announces: a disagreeing
 * option is reported and never used to inject past a block's end; an agreeing one is used with the
 * defaults of the machine type the stream names (they used to be the unknown version's).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { it } from "node:test";
import { QemuProxy, type MigrationReport } from "../../src/qemu/proxy.js";
import { encodeReqPagesId } from "../../src/qemu/returnpath.js";
import type { RamLayout } from "../../src/qemu/injector.js";
import type { QemuStrategy } from "../../src/qemu/policy.js";
import { until, connect, acceptingTarget } from "./harness.js";
import { streams } from "./streams.js";

const FIX = path.join(import.meta.dirname, "fixtures");
const RAM = 512 << 20; // pc.ram in both fixtures' heads (machine pc-i440fx-7.2 / pc-i440fx-10.0)
const LAST = RAM / 4096 - 1;

/** One migration: the fixture's head, a switch-over, one request for pc.ram's last page. */
async function migrate(head: string, section: number, blocks: { name: string; size: number }[], logs: string[]) {
  const S = streams(section);
  const { target, accepted } = await acceptingTarget();
  const layouts: RamLayout[] = [];
  // Predicts the pages right after the fault: past pc.ram's end for its last page.
  const strategy: QemuStrategy = { name: "fake", origin: "new", gated: 0, onFault: () => [], onRequest: (g) => [g + 1, g + 2] };
  const proxy = new QemuProxy({
    listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port, blocks,
    makeStrategy: (_n, layout) => { layouts.push(layout); return strategy; }, log: (l) => logs.push(l),
  });
  const port = (await proxy.listen()).port;
  const src = await connect(port);
  src.on("error", () => {});
  const srcGot: Buffer[] = [];
  src.on("data", (d) => srcGot.push(d));
  src.write(Buffer.concat([fs.readFileSync(path.join(FIX, head)), S.footer(), S.part(S.page(0x1000, "pc.ram")), S.packaged(Buffer.from("device state"))]));
  await until(() => accepted.length === 1);
  const dst = accepted[0];
  dst.resume();
  await until(() => proxy.current()?.phase === "postcopy", "postcopy");
  const req = encodeReqPagesId(LAST * 4096, 4096, "pc.ram");
  dst.write(req);
  await until(() => proxy.current()!.stats.requests === 1, "request seen");
  await until(() => Buffer.concat(srcGot).length >= req.length, "request forwarded");
  await new Promise((r) => setTimeout(r, 50));
  const live = proxy.current()!;
  const done = new Promise<MigrationReport>((r) => proxy.once("migration", r));
  src.end(S.eof());
  dst.end();
  src.resume();
  const r = await done;
  await proxy.close();
  target.close();
  return { live, r, got: Buffer.concat(srcGot), req, layouts };
}

it("a --block size larger than the stream's is reported and never used to request pages past the block", { timeout: 15000 }, async () => {
  const logs: string[] = [];
  const { r, got, req, layouts } = await migrate("forward-head-7.2.bin", 2, [{ name: "pc.ram", size: 2 * RAM }], logs);
  assert.deepEqual(got, req, "only the destination's own request reaches the source");
  assert.equal(r.stats.injectedPages, 0);
  assert.equal(r.layoutSource, "stream");
  assert.equal(r.layout!.find((b) => b.name === "pc.ram")!.size, RAM, "the report's layout is the one in use");
  assert.equal(layouts[0].blocks.find((b) => b.name === "pc.ram")!.size, RAM);
  assert.match(r.layoutConflict ?? "", /--block disagrees .*pc\.ram=1073741824 \(the stream: pc\.ram=536870912\)/);
  assert.ok(logs.some((l) => /WARNING: --block disagrees/.test(l)), "said on the log (stderr) too");
});

it("a --block that agrees with the stream is used with the defaults of the machine type the stream names", { timeout: 15000 }, async () => {
  const logs: string[] = [];
  const { live, layouts } = await migrate("forward-head-10.0.bin", 1, [{ name: "pc.ram", size: RAM }], logs);
  assert.equal(live.layoutSource, "option");
  assert.equal(live.layoutConflict, undefined);
  assert.deepEqual(live.layout, [{ name: "pc.ram", size: RAM }]);
  assert.equal(live.machine, "pc-i440fx-10.0");
  assert.equal(live.tuning?.maxPages, 4, `tuning follows the stream's machine: ${live.tuning?.basis}`);
  assert.match(live.tuning!.basis, /10\.0/);
  assert.equal(layouts[0].machine, "pc-i440fx-10.0", "the strategy is built knowing the machine");
});
