/**
 * Hostile and clumsy input: every command fails with one line on stderr (no stack trace) and exit
 * code 2 (bad input) or 1 (runtime failure); an interrupted `convert` leaves no temp file.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { describeError, nameFile, UsageError, RuntimeFailure } from "../../src/cli/errors.js";
import { checkSpan, MAX_GUEST_PAGES } from "../../src/cli/input.js";
import { busyAndClosedPorts } from "./ports.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const dir = mkdtempSync(join(tmpdir(), "ppm-errors-"));
const f = (name: string) => join(dir, name);

interface Run { code: number | null; signal: NodeJS.Signals | null; out: string; err: string }

function cli(args: string[], env: NodeJS.ProcessEnv = {}): { pid: number; done: Promise<Run>; kill: (s?: NodeJS.Signals) => void } {
  const p = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
    cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PPM_DEBUG: "", ...env },
  });
  let out = "", err = "";
  p.stdout.on("data", (d) => { out += d; });
  p.stderr.on("data", (d) => { err += d; });
  const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
  const done = new Promise<Run>((resolve) => p.on("close", (code, signal) => { clearTimeout(timer); resolve({ code, signal, out, err }); }));
  return { pid: p.pid!, done, kill: (s) => p.kill(s) };
}

let busyServer: net.Server;
let busyPort = 0;
let closedPort = 0;

before(async () => {
  writeFileSync(f("ok.txt"), "1\n2\n3\n4\n5\n6\n7\n8\n");
  writeFileSync(f("bad.txt"), "1\n2\nfoo\n4\n");
  writeFileSync(f("empty.txt"), "");
  writeFileSync(f("comments.txt"), "# nothing but a comment\n\n");
  writeFileSync(f("one.txt"), "7\n");
  writeFileSync(f("far.txt"), "0\n4294967295\n0\n4294967295\n");
  // the first 3000 bytes of a real gzipped trace: a truncated .gz
  writeFileSync(f("trunc.txt.gz"), readFileSync(join(ROOT, "traces/sqlite.txt.gz")).subarray(0, 3000));
  writeFileSync(f("garbage.gz"), Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.alloc(64, 0x55)]));
  mkdirSync(f("out"));
  ({ busy: busyServer, busyPort, closedPort } = await busyAndClosedPorts());
});

after(() => {
  busyServer?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Case {
  args: () => string[];
  code: 1 | 2;
  /** What the line must say (a function when it depends on the ports picked in before()). */
  match: RegExp | (() => RegExp);
  /** Extra checks after the run (files left behind). */
  check?: () => void;
}

const nothingIn = (d: string) => () => assert.deepEqual(readdirSync(d), []);
const image = () => ["--image", f("img.bin"), "--generate", "1M"];

const CASES: Record<string, Case> = {
  "compare: malformed trace": { args: () => ["compare", "--trace", f("bad.txt")], code: 2, match: /bad\.txt:3: .*"foo"/ },
  "simulate: --strategies (compare's option) is refused, not half-read": { args: () => ["simulate", "--trace", f("ok.txt"), "--strategy", "ppm", "--strategies", "qemu"], code: 2, match: /--strategies is for `compare`; simulate runs one --strategy NAME, got --strategies "qemu"/ },
  "simulate: malformed trace": { args: () => ["simulate", "--trace", f("bad.txt")], code: 2, match: /bad\.txt:3:/ },
  "quality: malformed trace": { args: () => ["quality", f("bad.txt")], code: 2, match: /bad\.txt:3:/ },
  "compare: truncated .gz": { args: () => ["compare", "--trace", f("trunc.txt.gz")], code: 2, match: /trunc\.txt\.gz: truncated gzip data/ },
  "simulate: truncated .gz": { args: () => ["simulate", "--trace", f("trunc.txt.gz")], code: 2, match: /trunc\.txt\.gz: truncated gzip data/ },
  "quality: truncated .gz": { args: () => ["quality", f("trunc.txt.gz")], code: 2, match: /trunc\.txt\.gz: truncated gzip data/ },
  "convert: truncated .gz": {
    args: () => ["convert", f("trunc.txt.gz"), f("out/t.ppmt")], code: 2, match: /trunc\.txt\.gz: truncated gzip data/, check: nothingIn(f("out")),
  },
  "compare: corrupt .gz": { args: () => ["compare", "--trace", f("garbage.gz")], code: 2, match: /garbage\.gz: corrupt gzip data/ },
  "migrate: truncated .gz": {
    args: () => ["migrate", "--connect", `127.0.0.1:${closedPort}`, "--trace", f("trunc.txt.gz")], code: 2, match: /trunc\.txt\.gz: .*(truncated|unexpected end of file)/,
  },
  "serve --history: truncated .gz": {
    args: () => ["serve", ...image(), "--port", "0", "--history", f("trunc.txt.gz")], code: 2, match: /trunc\.txt\.gz: .*(truncated|unexpected end of file)/,
  },
  "migrate: malformed trace (named with its line, as compare names it)": {
    args: () => ["migrate", "--connect", `127.0.0.1:${closedPort}`, "--trace", f("bad.txt")], code: 2, match: /bad\.txt:3: .*"foo"/,
  },
  "serve --history: malformed trace": {
    args: () => ["serve", ...image(), "--port", "0", "--history", f("bad.txt")], code: 2, match: /bad\.txt:3: .*"foo"/,
  },
  // A file that cannot be read (here an I/O error, which root meets too, unlike EACCES): exit 1, as compare's
  "migrate: an unreadable trace is not bad input": {
    args: () => ["migrate", "--connect", `127.0.0.1:${closedPort}`, "--trace", "/proc/self/mem"], code: 1, match: /cannot read \/proc\/self\/mem: i\/o error \(EIO\)/,
  },
  "serve --history: an unreadable trace is not bad input": {
    args: () => ["serve", ...image(), "--port", "0", "--history", "/proc/self/mem"], code: 1, match: /cannot read \/proc\/self\/mem: i\/o error \(EIO\)/,
  },
  "migrate: connection refused": {
    args: () => ["migrate", "--connect", `127.0.0.1:${closedPort}`, "--trace", f("ok.txt")], code: 1, match: () => new RegExp(`127\\.0\\.0\\.1:${closedPort}.*ECONNREFUSED`),
  },
  "serve: address in use": { args: () => ["serve", ...image(), "--port", String(busyPort)], code: 1, match: () => new RegExp(`127\\.0\\.0\\.1:${busyPort}.*EADDRINUSE`) },
  "serve: address not on this host": { args: () => ["serve", ...image(), "--host", "192.0.2.1", "--port", "0"], code: 2, match: /192\.0\.2\.1.*EADDRNOTAVAIL/ },
  "qemu-proxy: address in use": {
    args: () => ["qemu-proxy", "--listen", `127.0.0.1:${busyPort}`, "--target", "127.0.0.1:1", "--predict", "none"], code: 1, match: () => new RegExp(`cannot listen on 127\\.0\\.0\\.1:${busyPort}.*EADDRINUSE`),
  },
  "qemu-proxy: address not on this host": {
    args: () => ["qemu-proxy", "--listen", "192.0.2.1:0", "--target", "127.0.0.1:1", "--predict", "none"], code: 2, match: /cannot listen on 192\.0\.2\.1.*EADDRNOTAVAIL/,
  },
  "qemu-proxy: --memory-bytes over the engine's 4 GiB is refused as an option": {
    args: () => ["qemu-proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--memory-bytes", String(2 ** 33)], code: 2, match: /--memory-bytes must be an integer in 1\.\.4294967296/,
  },
  "qemu-proxy: --memory-bytes 5 is refused at start": {
    args: () => ["qemu-proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--memory-bytes", "5"], code: 2, match: /memoryBytes 5 is too small/,
  },
  "qemu-proxy: --depth with --predict ppm (it was ignored) names --max-pages": {
    args: () => ["qemu-proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--predict", "ppm", "--depth", "16"], code: 2, match: /--depth is for --predict ppm-sim .*use --max-pages, got --depth 16/,
  },
  "qemu-proxy: an engine option without the engine": {
    args: () => ["qemu-proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--predict", "next8", "--order", "2"], code: 2, match: /--order is an engine option: it needs --predict ppm or ppm-sim, got --predict next8/,
  },
  "qemu-proxy: a --block size past what a bitmap can hold is refused at start (it crashed at the first connection)": {
    args: () => ["qemu-proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--predict", "none", "--block", "pc.ram=99999999999999999999"], code: 2, match: /--block pc\.ram: size must be at most 16T/,
  },
  "qemu-proxy: a --block name given twice": {
    args: () => ["qemu-proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--predict", "none", "--block", "pc.ram=4096", "--block", "pc.ram=8192"], code: 2, match: /--block names pc\.ram twice/,
  },
  "qemu-proxy: --threshold with --predict ppm (the policy's --min-confidence overrode it)": {
    args: () => ["qemu-proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--predict", "ppm", "--threshold", "0.9"], code: 2, match: /--threshold with --predict ppm: .*give --min-confidence instead, got --threshold 0\.9/,
  },
  "qemu-proxy: --max-pages with --predict next8 (it was ignored)": {
    args: () => ["qemu-proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--predict", "next8", "--max-pages", "4"], code: 2, match: /--max-pages is for --predict ppm, got --predict next8/,
  },
  "convert: into a missing directory": {
    args: () => ["convert", f("ok.txt"), f("missing/dir/out.txt")], code: 2, match: /missing\/dir\/out\.txt: directory .* does not exist/, check: () => assert.equal(existsSync(f("missing")), false),
  },
  "compare --svg: into a missing directory": {
    args: () => ["compare", "--trace", f("ok.txt"), "--strategies", "demand", "--layout", "virtual", "--svg", f("missing/c.svg")], code: 2, match: /--svg: cannot write .*missing\/c\.svg/,
  },
  "compare --svg: onto a directory": {
    args: () => ["compare", "--trace", f("ok.txt"), "--strategies", "demand", "--layout", "virtual", "--svg", f("out")], code: 2, match: /--svg: cannot write .*out: it is a directory/,
  },
  "serve: --max-contexts 1": { args: () => ["serve", ...image(), "--port", "0", "--max-contexts", "1"], code: 2, match: /maxContexts/ },
  "quality: empty trace": { args: () => ["quality", f("empty.txt")], code: 2, match: /empty\.txt has 0 accesses; need at least 2/ },
  "quality: only comments": { args: () => ["quality", f("comments.txt")], code: 2, match: /comments\.txt has 0 accesses/ },
  "compare: one access": { args: () => ["compare", "--trace", f("one.txt")], code: 2, match: /one\.txt has 1 access; need at least 2/ },
  "convert: empty trace": { args: () => ["convert", f("empty.txt"), f("out/e.ppmt")], code: 2, match: /holds no accesses; nothing written/, check: nothingIn(f("out")) },
  "compare: pages 2^32 apart": { args: () => ["compare", "--trace", f("far.txt")], code: 2, match: /page 4294967295 .* 4294967296 pages, over the limit of 268435456/ },
  "quality: pages 2^32 apart": { args: () => ["quality", f("far.txt")], code: 2, match: /page 4294967295 .* over the limit of 268435456/ },
  "serve: a strategy that reads the future is refused at start, with the ones serve runs": {
    args: () => ["serve", "--image", f("ok.txt"), "--port", "0", "--strategy", "oracle"], code: 2, match: /--strategy oracle reads the future trace.*serve runs one of demand, qemu, .*ppm-hybrid$/,
  },
  "serve: an unknown strategy lists each servable one once": {
    args: () => ["serve", "--image", f("ok.txt"), "--port", "0", "--strategy", "bogus"], code: 2, match: /^ppm-prefetch serve: --strategy must be one of demand, qemu(?!.*demand.*demand)(?!.*oracle).*got "bogus"$/,
  },
  "serve: --switch-at without --history (nothing read it)": { args: () => ["serve", "--image", f("ok.txt"), "--port", "0", "--switch-at", "0.5"], code: 2, match: /--switch-at needs --history TRACE/ },
  "serve: --image-seed without --generate (nothing read it)": { args: () => ["serve", "--image", f("ok.txt"), "--port", "0", "--image-seed", "3"], code: 2, match: /--image-seed needs --generate SIZE/ },
  "serve: an engine option with --strategy demand": { args: () => ["serve", "--image", f("ok.txt"), "--port", "0", "--strategy", "demand", "--order", "2"], code: 2, match: /--order is an engine option: it has no effect with --strategy demand/ },
  "serve: a missing --history is named even with --history-source none": { args: () => ["serve", "--image", f("ok.txt"), "--port", "0", "--history", f("nope.txt"), "--history-source", "none"], code: 2, match: /cannot read --history '.*nope\.txt': no such file$/ },
  "compare: a strategy named twice": { args: () => ["compare", "--trace", f("ok.txt"), "--strategies", "qemu,ppm,qemu"], code: 2, match: /--strategies names qemu twice/ },
  "quality: a layout named twice": { args: () => ["quality", f("ok.txt"), "--layouts", "4k,virtual,4k"], code: 2, match: /--layouts names 4k twice/ },
  "compare: --limit with --workload (it was ignored)": { args: () => ["compare", "--workload", "seq", "--limit", "5"], code: 2, match: /--limit goes with a trace file, not --workload/ },
  "compare: --vm-pages too small for the 4k layout": {
    args: () => ["compare", "--workload", "seq", "--pages", "4096", "--layout", "4k", "--vm-pages", "512"], code: 2, match: /4096 distinct pages, more than --vm-pages 512/,
  },
};

for (const [name, c] of Object.entries(CASES)) {
  test(`${name}: one line, exit ${c.code}`, { timeout: 90_000 }, async () => {
    const args = c.args();
    const r = await cli(args).done;
    const where = `${args.join(" ")}\n--- stderr:\n${r.err}`;
    assert.equal(r.code, c.code, where);
    assert.doesNotMatch(r.err, /^ {4}at /m, where);
    const lines = r.err.split("\n");
    assert.equal(lines.length, 2, `expected exactly one line: ${where}`);
    assert.equal(lines[1], "", where);
    assert.ok(lines[0].startsWith(`ppm-prefetch ${args[0]}: `), where);
    assert.match(lines[0], typeof c.match === "function" ? c.match() : c.match, where);
    c.check?.();
  });
}

test("PPM_DEBUG=1 adds the stack trace after the line", { timeout: 60_000 }, async () => {
  const r = await cli(["compare", "--trace", f("bad.txt")], { PPM_DEBUG: "1" }).done;
  assert.equal(r.code, 2);
  assert.match(r.err.split("\n")[0], /^ppm-prefetch compare: .*bad\.txt:3:/);
  assert.match(r.err, /^ {4}at /m);
});

test("far-apart pages are refused before anything big is allocated", { timeout: 60_000 }, async () => {
  const t0 = performance.now();
  const r = await cli(["compare", "--trace", f("far.txt")]).done;
  assert.equal(r.code, 2);
  // Before: 29 s and 4.2 GB, then "Array buffer allocation failed". The refusal is immediate.
  assert.ok(performance.now() - t0 < 20_000, `${performance.now() - t0} ms`);
  // A layout into a guest of a given size does not depend on the span: that is the way out.
  const ok = await cli(["compare", "--trace", f("far.txt"), "--layout", "4k", "--vm-pages", "1024", "--strategies", "demand,next8", "--json"]).done;
  assert.equal(ok.code, 0, ok.err);
  assert.equal(JSON.parse(ok.out).strategies.length, 2);
});

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  test(`convert interrupted by ${signal} removes its temp file`, { timeout: 90_000 }, async () => {
    const out = mkdtempSync(join(dir, "sig-"));
    const target = join(out, "xz.txt.gz");
    const c = cli(["convert", join(ROOT, "traces/xz.txt.gz"), target]);
    const tmp = `${target}.tmp-${c.pid}`;
    // wait until the temp file is being written (the conversion takes seconds), then interrupt
    for (let i = 0; i < 600 && !existsSync(tmp); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(existsSync(tmp), "the temp file never appeared");
    c.kill(signal);
    const r = await c.done;
    assert.equal(r.signal, signal, `exit ${r.code}: ${r.err}`);
    assert.deepEqual(readdirSync(out), []);
  });
}

test("describeError: one line, exit code by kind", () => {
  assert.deepEqual(describeError(new UsageError("bad\n  thing")), { message: "bad thing", exitCode: 2, unexpected: false });
  assert.equal(describeError(new RuntimeFailure("link down")).exitCode, 1);
  const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/x/y'"), { code: "ENOENT", syscall: "open", path: "/x/y", errno: -2 });
  assert.deepEqual(describeError(enoent), { message: "cannot open /x/y: no such file or directory (ENOENT)", exitCode: 2, unexpected: false });
  const eacces = Object.assign(new Error("EACCES: permission denied, open '/x/y.tmp-1'"), { code: "EACCES", syscall: "open", path: "/x/y.tmp-1" });
  assert.equal(describeError(nameFile(eacces, "/x/y", true)).message, "cannot write /x/y: permission denied (EACCES)");
  assert.equal(describeError(eacces).exitCode, 1);
  const zlib = Object.assign(new Error("unexpected end of file"), { code: "Z_BUF_ERROR", errno: -5 });
  assert.deepEqual(describeError(nameFile(zlib, "t.gz")), { message: "t.gz: truncated gzip data (unexpected end of file, Z_BUF_ERROR)", exitCode: 2, unexpected: false });
  assert.equal(describeError(new RangeError("options.depth must be in 0..256, got 300")).exitCode, 2);
  const bug = describeError(new TypeError("x is not a function\nsecond line"));
  assert.equal(bug.exitCode, 1);
  assert.equal(bug.unexpected, true);
  assert.equal(bug.message, "TypeError: x is not a function second line (PPM_DEBUG=1 prints the stack trace)");
  assert.equal(describeError(new RangeError("Array buffer allocation failed")).message, "out of memory: Array buffer allocation failed");
});

test("checkSpan: the limit is the guest the layout would build", () => {
  assert.equal(MAX_GUEST_PAGES, 2 ** 28);
  checkSpan("t", MAX_GUEST_PAGES - 1, ["virtual", "2m", "4k"]);
  assert.throws(() => checkSpan("t", MAX_GUEST_PAGES, ["virtual"]), /t: page 268435456 makes the virtual layout's guest 268435457 pages/);
  // 2m/4k place the pages into --vm-pages whatever the span; without it the guest is the span
  checkSpan("t", 2 ** 32 - 1, ["2m", "4k"], 1 << 18);
  assert.throws(() => checkSpan("t", 2 ** 32 - 1, ["4k"]), /or give --vm-pages N/);
  assert.throws(() => checkSpan("t", 10, ["virtual"], MAX_GUEST_PAGES + 1), /over the limit/);
});
