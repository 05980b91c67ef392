/**
 * A connection half-closed by one side is torn down only after what that side sent has crossed the
 * emulated link: with --return-delay-ms longer than the old fixed 2000 + 2 x delayMs teardown, the
 * destination's last bytes (and its end) used to be cut before reaching the source.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { it } from "node:test";
import { QemuProxy } from "../../src/qemu/proxy.js";

it("the destination's last bytes reach the source through a return delay longer than the teardown grace", { timeout: 20000 }, async () => {
  const reply = Buffer.from("the destination's last words");
  // The destination reads the source's stream to its end, answers and closes: its socket at the
  // proxy is then closed both ways while the reply is still in the return delay line.
  const target = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    s.resume();
    s.on("end", () => s.end(reply));
  });
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  const proxy = new QemuProxy({
    listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port, returnDelayMs: 3000,
  });
  const port = (await proxy.listen()).port;
  const src = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  try {
    src.on("error", () => {});
    const got: Buffer[] = [];
    src.on("data", (d) => got.push(d));
    const outcome = new Promise<string>((r) => { src.on("end", () => r("end")); src.on("close", () => r("close")); });
    src.end(Buffer.from("not a migration stream"));
    assert.equal(await outcome, "end", "the source sees the destination's end, not a teardown");
    assert.deepEqual(Buffer.concat(got), reply);
  } finally {
    src.destroy();
    await proxy.close();
    target.close();
  }
});
