/**
 * `serve` and `migrate` as a new user meets them: a refused run leaves the image as it was (nothing is
 * generated before every check passed), empty traces and nothing to replay are bad input (exit 2),
 * the messages name the value, and a rejected or never-made connection says what happened.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { busyAndClosedPorts } from "./ports.js";
import { cli, until } from "./spawn-cli.js";
const dir = mkdtempSync(join(tmpdir(), "ppm-fresh-serve-"));
const f = (name: string) => join(dir, name);

const run = (args: string[]) => cli(args).done;

let busy: net.Server;
let busyPort = 0;
let closedPort = 0;

before(async () => {
  writeFileSync(f("ok.txt"), Array.from({ length: 40 }, (_, i) => `${i % 30}\n`).join(""));
  writeFileSync(f("bad.txt"), "1\n2\nfoo\n4\n");
  writeFileSync(f("empty.txt"), "");
  writeFileSync(f("comments.txt"), "# nothing but a comment\n\n");
  writeFileSync(f("three.txt"), "0\n0\n0\n"); // fits the 1-page image of --generate 4K
  // 40 accesses one guest instruction apart: at --ips 10 the replay takes seconds (a long migration)
  writeFileSync(f("slow.txt"), Array.from({ length: 40 }, (_, i) => `${i} 1\n`).join(""));
  mkdirSync(f("adir"));
  ({ busy: busy, busyPort, closedPort } = await busyAndClosedPorts());
});

after(() => {
  busy?.close();
  rmSync(dir, { recursive: true, force: true });
});

// --- serve --generate: nothing is written before every check passed ---------------------------------

const REFUSED: Record<string, { extra: () => string[]; code: 1 | 2; match: RegExp | (() => RegExp) }> = {
  "a history that does not exist": { extra: () => ["--history", f("nonexist.txt")], code: 2, match: /cannot read --history '.*nonexist\.txt': no such file$/m },
  "a malformed history": { extra: () => ["--history", f("bad.txt")], code: 2, match: /bad\.txt:3: .*"foo"/ },
  "an empty history": { extra: () => ["--history", f("empty.txt")], code: 2, match: /--history .*empty\.txt has 0 accesses; need at least 2/ },
  "a comment-only history": { extra: () => ["--history", f("comments.txt")], code: 2, match: /comments\.txt has 0 accesses/ },
  "a history with nothing before --switch-at": { extra: () => ["--history", f("three.txt")], code: 2, match: /--switch-at 0\.3 of 3 accesses holds none to train on/ },
  "an address not on this host": { extra: () => ["--host", "10.255.255.1"], code: 2, match: /--host 10\.255\.255\.1: cannot listen there \(EADDRNOTAVAIL\)/ },
  "a port in use": { extra: () => ["--port", String(busyPort)], code: 1, match: () => new RegExp(`127\\.0\\.0\\.1:${busyPort}.*EADDRINUSE`) },
  "--max-contexts 1": { extra: () => ["--max-contexts", "1"], code: 2, match: /maxContexts .*got 1/ },
  "--timeline without --json": { extra: () => ["--timeline"], code: 2, match: /--timeline needs --json/ },
};

const PRECIOUS = Buffer.concat([Buffer.from("precious\n"), Buffer.alloc(4096 - 9, 7)]);

for (const [name, c] of Object.entries(REFUSED)) {
  test(`serve --generate with ${name}: exit ${c.code}, the image is left as it was`, async () => {
    const img = f(`precious-${name.replace(/\W+/g, "-")}.img`);
    writeFileSync(img, PRECIOUS); // an image (whole pages): --generate may replace it, once every check passed
    const r = await run(["serve", "--image", img, "--generate", "4K", "--port", "0", ...c.extra()]);
    assert.equal(r.code, c.code, r.err);
    assert.match(r.err, typeof c.match === "function" ? c.match() : c.match);
    assert.equal(r.err.trim().split("\n").length, 1, `one line: ${r.err}`);
    assert.deepEqual(readFileSync(img), PRECIOUS, "the image was not replaced");
  });
}

test("serve --generate does not overwrite a file that is not an image (a trace named by mistake): exit 2, file kept", async () => {
  const trace = f("precious-trace.txt");
  writeFileSync(trace, "1 10\n2 10\n3 10\n");
  const r = await run(["serve", "--image", trace, "--generate", "4K", "--port", "0"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--image .*precious-trace\.txt exists and is not a memory image \(15 bytes, not whole 4096-byte pages\)/);
  assert.equal(readFileSync(trace, "utf8"), "1 10\n2 10\n3 10\n");
});

test("serve --generate refuses a size that is not whole pages, naming it; nothing is written", async () => {
  const img = f("odd.img");
  const r = await run(["serve", "--image", img, "--generate", "5000", "--port", "0"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--generate must be a whole number of 4096-byte pages, got "5000"/);
  assert.equal(existsSync(img), false);
});

test("serve --generate onto a directory or into a missing directory: exit 2 before anything is written", async () => {
  const a = await run(["serve", "--image", f("adir"), "--generate", "4K", "--port", "0"]);
  assert.equal(a.code, 2, a.err);
  assert.match(a.err, /--image: cannot write .*adir: it is a directory/);
  assert.ok(statSync(f("adir")).isDirectory());
  const b = await run(["serve", "--image", f("nodir/x.img"), "--generate", "4K", "--port", "0"]);
  assert.equal(b.code, 2, b.err);
  assert.match(b.err, /--image: cannot write .*nodir\/x\.img: directory .*nodir does not exist/);
  assert.equal(existsSync(f("nodir")), false);
});

test("serve --help says --timeline needs --json and --generate takes whole pages", async () => {
  const r = await run(["serve", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.out, /--timeline\s+with --json \(required\)/);
  assert.match(r.out, /a whole number of 4096-byte pages/);
});

// --- migrate: bad input is refused before connecting --------------------------------------------------

test("migrate refuses an empty trace, a comment-only one, a --switch-at leaving nothing to replay and --timeline without --json (exit 2, not a run)", async () => {
  // closedPort: a check that were missing would get as far as the connection (exit 1, ECONNREFUSED)
  const cases: [string[], RegExp][] = [
    [["--trace", f("empty.txt")], /--trace .*empty\.txt has 0 accesses; need at least 2/],
    [["--trace", f("comments.txt")], /--trace .*comments\.txt has 0 accesses; need at least 2/],
    [["--trace", f("ok.txt"), "--switch-at", "1"], /--switch-at 1 leaves none of the 40 accesses of .*ok\.txt to replay/],
    [["--trace", f("ok.txt"), "--timeline"], /--timeline needs --json/],
  ];
  for (const [args, re] of cases) {
    const r = await run(["migrate", "--connect", `127.0.0.1:${closedPort}`, ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, re);
    assert.equal(r.out, "");
  }
});

test("migrate to a host that does not resolve: exit 2 at once, not 'lost the connection'", async () => {
  const t0 = Date.now();
  const r = await run(["migrate", "--connect", "nohost.invalid:7403", "--trace", f("ok.txt"), "--reconnect-timeout", "0"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--connect nohost\.invalid:7403: host nohost\.invalid not found \(ENOTFOUND\)/);
  assert.doesNotMatch(r.err, /lost the connection|resume/);
  assert.ok(Date.now() - t0 < 20_000);
});

test("migrate that never connected says it could not connect, not that it lost the connection", async () => {
  // 255.255.255.255: connect() fails at once (ENETUNREACH/EACCES), which is not a refusal
  const r = await run(["migrate", "--connect", "255.255.255.255:7403", "--trace", f("ok.txt"), "--reconnect-timeout", "0.2"]);
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /(could not|cannot) connect to 255\.255\.255\.255:7403/);
  assert.doesNotMatch(r.err, /lost the connection|could not resume/);
});

// --- a real pair: the generated image serves; busy is said once; accuracy "-" for no predictions ------

test("serve --generate then migrate: verified, 'accuracy -' without predicted pages, a refused session says 'server busy' once", { timeout: 120_000 }, async () => {
  const img = f("served.img");
  const srv = cli(["serve", "--image", img, "--generate", "1M", "--port", "0", "--strategy", "demand", "--max-sessions", "1", "--exit-after", "1", "--quiet"], { timeoutMs: 110_000 });
  await until(() => /listening on 127\.0\.0\.1:\d+/.test(srv.out()), "the server to listen");
  const port = /listening on 127\.0\.0\.1:(\d+)/.exec(srv.out())![1];
  assert.equal(statSync(img).size, 1 << 20, "the image was generated");
  const first = cli(["migrate", "--connect", `127.0.0.1:${port}`, "--trace", f("slow.txt"), "--ips", "10"], { timeoutMs: 100_000 });
  await new Promise((r) => setTimeout(r, 1500)); // the first one is in its 2.8 s replay
  const second = await run(["migrate", "--connect", `127.0.0.1:${port}`, "--trace", f("ok.txt")]);
  const one = await first.done;
  const s = await srv.done;
  assert.equal(second.code, 1, second.err);
  assert.match(second.err, /server busy: the server already serves its limit of 1 migrations/);
  assert.doesNotMatch(second.err, /server busy: server busy/);
  assert.equal(one.code, 0, one.err);
  assert.match(one.out, /image +verified/);
  assert.match(one.out, /0\/0 predicted pages touched before the end \(accuracy -\)/);
  assert.match(one.out, /faults +\d+ network faults, \d+ waits for pages already on the wire \(\d+ requests\)/);
  assert.doesNotMatch(one.out, /DONE not acknowledged/);
  assert.equal(s.code, 0, s.err);
});

test("migrate --connect to something that is not a ppm-prefetch source (an HTTP server) says so, with what it sent", async () => {
  const http = net.createServer((c) => { c.on("data", () => undefined); c.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"); });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  try {
    const port = (http.address() as net.AddressInfo).port;
    const r = await run(["migrate", "--connect", `127.0.0.1:${port}`, "--trace", "traces/perl.txt.gz"]);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, new RegExp(`127\\.0\\.0\\.1:${port} is not a ppm-prefetch source \\(it sent "HTTP/1\\.1 400 Bad Request"`));
    assert.equal(r.err.trim().split("\n").length, 1, r.err);
  } finally {
    http.close();
  }
});
