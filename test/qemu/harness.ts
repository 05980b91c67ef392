/**
 * The proxy tests' harness: a stand-in destination that accepts every connection, a client, a poll,
 * a proxy in front of a target with a given strategy, and a migration brought to post-copy.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { QemuProxy } from "../../src/qemu/proxy.js";
import type { QemuStrategy } from "../../src/qemu/policy.js";
import { S } from "./streams.js";

/** Poll `f` every 10 ms for up to 5 s; fail naming `what`. */
export const until = async (f: () => boolean, what = "condition"): Promise<void> => {
  for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(f(), what);
};

/** A half-open-capable client of the proxy's port (as QEMU's source connects). */
export const connect = (port: number): Promise<net.Socket> =>
  new Promise<net.Socket>((r) => { const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => r(s)); });

/** A destination stand-in: every connection the proxy opens, in order (errors ignored). */
export async function acceptingTarget(): Promise<{ target: net.Server; accepted: net.Socket[]; port: number }> {
  const accepted: net.Socket[] = [];
  const target = net.createServer({ allowHalfOpen: true }, (s) => { s.on("error", () => {}); accepted.push(s); });
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  return { target, accepted, port: (target.address() as net.AddressInfo).port };
}

/** A proxy in front of `targetPort` whose migrations use `strategy`; the models it saves land in `saved`. */
export async function proxyTo(targetPort: number, strategy: QemuStrategy): Promise<{ proxy: QemuProxy; port: number; saved: Uint8Array[] }> {
  const saved: Uint8Array[] = [];
  const proxy = new QemuProxy({ listenPort: 0, targetHost: "127.0.0.1", targetPort, makeStrategy: () => strategy, saveModel: (b) => saved.push(b) });
  return { proxy, port: (await proxy.listen()).port, saved };
}

/**
 * The source's stream up to the switch-over (`head`, a page of pc.ram, the packaged device state) on
 * `src`; resolves with the destination's connection once the proxy is in post-copy.
 */
export async function toPostcopy(src: net.Socket, head: Buffer, accepted: net.Socket[], proxy: QemuProxy): Promise<net.Socket> {
  src.write(Buffer.concat([head, S.footer(), S.part(S.page(0x1000, "pc.ram")), S.packaged(Buffer.from("device state"))]));
  await until(() => accepted.length === 1);
  const dst = accepted[0];
  dst.resume();
  await until(() => proxy.current()?.phase === "postcopy", "postcopy");
  return dst;
}
