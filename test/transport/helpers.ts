/** Test helpers for the transport: a next-N strategy, images, synthetic traces, socket killers. */
import type { Socket } from "node:net";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Strategy } from "../../src/strategies/types.js";
import { generateImage } from "../../src/transport/image.js";
import { Rng } from "../../src/util/random.js";

/** Predicts the N pages after the faulted one that it has not yet seen sent. */
export function nextN(pageCount: number, n = 8): Strategy & { faults: number; touches: number } {
  const present = new Uint8Array(pageCount);
  const s = {
    name: `next-${n}`,
    faults: 0,
    touches: 0,
    onFault(page: number): ArrayLike<number> {
      s.faults++;
      const out: number[] = [];
      for (let p = page + 1; p < pageCount && out.length < n; p++) if (!present[p]) out.push(p);
      return out;
    },
    onTouch(): void { s.touches++; },
    onPresent(page: number): void { present[page] = 1; },
  };
  return s;
}

export function image(pages: number, seed = 7): Buffer {
  return generateImage(pages * 4096, seed);
}

/** A synthetic trace over `span` pages: runs of sequential pages with random jumps. */
export function syntheticTrace(length: number, span: number, seed = 3, streams = 1): { pages: Uint32Array; gaps: Uint32Array; streams: Uint16Array; length: number } {
  const rng = new Rng(seed);
  const pages = new Uint32Array(length);
  const gaps = new Uint32Array(length);
  const st = new Uint16Array(length);
  let p = 0;
  for (let i = 0; i < length; i++) {
    if (rng.next() < 0.1) p = rng.below(span); else p = (p + 1) % span;
    pages[i] = p;
    gaps[i] = 50 + rng.below(200);
    st[i] = streams > 1 ? rng.below(streams) : 0;
  }
  return { pages, gaps, streams: st, length };
}

/** Destroy the socket once it has received `afterBytes` bytes (mid-frame, usually). */
export function killAfter(sock: Socket, afterBytes: number): void {
  let n = 0;
  sock.on("data", (c: Buffer) => {
    n += c.length;
    if (n >= afterBytes && !sock.destroyed) sock.destroy();
  });
}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** serve's listening line: the human one, or the JSON event `serve --json` prints instead. */
export const LISTENING = /listening on [\d.]+:(\d+)|"event":"listening".*?"port":(\d+)/;

/** Start `ppm-prefetch serve ARGS` (from the sources) and resolve with its port once it listens. */
export function spawnServe(args: string[]): Promise<{ port: number; done: Promise<number> }> {
  const p = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), "serve", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const done = new Promise<number>((r) => p.on("close", (c) => r(c ?? -1)));
  return new Promise((resolve, reject) => {
    let out = "";
    p.stdout.on("data", (d) => {
      out += d;
      const m = LISTENING.exec(out);
      if (m) resolve({ port: Number(m[1] ?? m[2]), done });
    });
    done.then((c) => reject(new Error(`serve exited ${c}`)));
  });
}

/** A TCP relay to `target` whose link can go down: connections are cut and new ones refused until it is back. */
export async function relay(target: number): Promise<{ port: number; outage: (ms: number) => Promise<void>; close: () => void }> {
  const { createServer, connect } = await import("node:net");
  const live = new Set<Socket>();
  const listen = (port: number) => new Promise<import("node:net").Server>((resolve) => {
    const s = createServer((down) => {
      const up = connect({ port: target, host: "127.0.0.1", noDelay: true });
      down.setNoDelay(true);
      live.add(down); live.add(up);
      down.pipe(up); up.pipe(down);
      const end = () => { down.destroy(); up.destroy(); live.delete(down); live.delete(up); };
      down.on("error", end); up.on("error", end); down.on("close", end); up.on("close", end);
    });
    // the port may not be free again at once: retry until it is
    s.on("error", () => setTimeout(() => s.listen(port, "127.0.0.1"), 20));
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
  let server = await listen(0);
  const port = (server.address() as import("node:net").AddressInfo).port;
  return {
    port,
    async outage(ms) {
      await new Promise<void>((r) => { server.close(() => r()); for (const s of live) s.destroy(); });
      await new Promise((r) => setTimeout(r, ms));
      server = await listen(port);
    },
    close() { for (const s of live) s.destroy(); server.close(); },
  };
}
