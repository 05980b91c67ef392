/**
 * N HELLOs with fresh session ids against one `serve` process (as in the robustness issue): how many
 * sessions it accepts, how fast it answers (WELCOME or "server busy"), and its peak RSS.
 *
 *   node --import tsx test/transport/hello-flood.ts [--n 30] [--strategy ppm] [--main dist/cli/main.js]
 *     [--max-sessions 16] [--seconds 60]
 */
import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { FrameReader, FrameType, HELLO_BODY, LEN_BYTES, PAGE_SIZE, PROTOCOL_VERSION, encodeHello } from "../../src/transport/protocol.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const { values: v } = parseArgs({ options: { n: { type: "string" }, strategy: { type: "string" }, main: { type: "string" }, "max-sessions": { type: "string" }, seconds: { type: "string" } } });
const n = Number(v.n ?? 30);
const MAIN = v.main ? resolve(v.main) : join(ROOT, "src/cli/main.ts");
const dir = mkdtempSync(join(tmpdir(), "ppm-flood-"));
const args = [...(MAIN.endsWith(".ts") ? ["--import", "tsx"] : []), MAIN, "serve", "--image", join(dir, "img.bin"), "--generate", "64M", "--port", "0",
  "--strategy", v.strategy ?? "ppm", "--history", join(ROOT, "test/fixtures/sqlite-300k.txt.gz"), "--layout", "4k", "--quiet",
  ...(v["max-sessions"] ? ["--max-sessions", v["max-sessions"]] : [])];
const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
const rss = () => { try { return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"))![1]) / 1024; } catch { return 0; } };
const port = await new Promise<number>((res) => { let out = ""; p.stdout.on("data", (d) => { out += d; const m = /listening on [\d.]+:(\d+)/.exec(out); if (m) res(Number(m[1])); }); });
const rss0 = rss();
let peak = rss0;
const sampler = setInterval(() => { peak = Math.max(peak, rss()); }, 50);
// the event loop of serve, seen from outside: a HELLO with a bad version is answered at once by a free loop
const answers: { type: number; ms: number }[] = [];
const socks: Socket[] = [];
const t0 = performance.now();
const flood = Promise.all(Array.from({ length: n }, () => new Promise<void>((res) => {
  const s = connect({ port, host: "127.0.0.1" });
  socks.push(s);
  const r = new FrameReader((t) => { answers.push({ type: t, ms: performance.now() - t0 }); res(); });
  s.on("data", (c: Buffer) => r.push(c));
  s.on("error", () => res());
  const b = Buffer.alloc(LEN_BYTES + 1 + HELLO_BODY);
  encodeHello(b, 0, { version: PROTOCOL_VERSION, flags: 0, pageSize: PAGE_SIZE, sessionId: randomBytes(16), pageCount: 0, digest: Buffer.alloc(32) });
  s.write(b);
})));
const probe = async (): Promise<number> => {
  const a = performance.now();
  await new Promise<void>((res) => {
    const s = connect({ port, host: "127.0.0.1" });
    const b = Buffer.alloc(LEN_BYTES + 1 + HELLO_BODY);
    encodeHello(b, 0, { version: 99, flags: 0, pageSize: PAGE_SIZE, sessionId: randomBytes(16), pageCount: 0, digest: Buffer.alloc(32) });
    s.on("data", () => { s.destroy(); res(); });
    s.on("error", () => res());
    s.write(b);
  });
  return performance.now() - a;
};
// probe while the sessions are built and trained
const probes: number[] = [];
let all = false;
void flood.then(() => { all = true; });
const until = performance.now() + Number(v.seconds ?? 60) * 1000;
while (!all && performance.now() < until) { probes.push(await probe()); await new Promise((r) => setTimeout(r, 100)); }
clearInterval(sampler);
const welcomed = answers.filter((a) => a.type === FrameType.Welcome);
const refused = answers.filter((a) => a.type === FrameType.Error);
process.stdout.write(`${n} HELLOs: ${welcomed.length} welcomed (last after ${Math.max(0, ...welcomed.map((a) => a.ms)).toFixed(0)} ms), ` +
  `${refused.length} refused (last after ${Math.max(0, ...refused.map((a) => a.ms)).toFixed(0)} ms); RSS ${rss0.toFixed(0)} -> peak ${peak.toFixed(0)} MB; ` +
  `a bad HELLO answered in max ${Math.max(...probes).toFixed(1)} ms, median ${[...probes].sort((a, b) => a - b)[probes.length >> 1].toFixed(1)} ms (${probes.length} probes while the sessions were built)\n`);
for (const s of socks) s.destroy();
p.kill("SIGTERM");
await new Promise((r) => p.on("close", r));
rmSync(dir, { recursive: true, force: true });
