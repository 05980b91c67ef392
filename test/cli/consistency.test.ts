/**
 * The CLI says things one way across commands: `serve --json` keeps stdout to JSON lines (the
 * listening address is one of them), `--version` prints package.json's version, `quality --feedback`
 * takes on|off as compare's does, a missing input file is refused in one wording (exit 2), and
 * `simulate --json` carries compare's millisecond keys beside its seconds.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { optionalValue } from "../../src/cli/args.js";
import { DIST_MAIN, ROOT, cli, until, type Run } from "./spawn-cli.js";
const dir = mkdtempSync(join(tmpdir(), "ppm-consistency-"));
const f = (name: string) => join(dir, name);

const run = (args: string[], opts?: { dist?: boolean }) => cli(args, opts).done;

/** One line on stderr, `ppm-prefetch CMD: ...`, and the exit code. */
function oneLine(r: Run, cmd: string, code: number, match: RegExp): void {
  const where = `--- stdout:\n${r.out}\n--- stderr:\n${r.err}`;
  assert.equal(r.code, code, where);
  assert.equal(r.err.split("\n").length, 2, `expected exactly one line: ${where}`);
  assert.ok(r.err.startsWith(`ppm-prefetch ${cmd}: `), where);
  assert.match(r.err.trimEnd(), match, where);
}

before(() => {
  writeFileSync(f("ok.txt"), Array.from({ length: 40 }, (_, i) => `${i % 30}\n`).join(""));
  // a strided walk with jitter (a fixed LCG): enough structure that feedback changes what ppm predicts
  let x = 1;
  const pages: number[] = [];
  for (let i = 0; i < 3000; i++) { x = (x * 1103515245 + 12345) % 2 ** 31; pages.push(((i * 7) % 500) + (x % 4)); }
  writeFileSync(f("walk.txt"), pages.join("\n") + "\n");
  mkdirSync(f("out"));
});

after(() => rmSync(dir, { recursive: true, force: true }));

// --- serve --json: stdout carries JSON lines only ---------------------------------------------------

test("serve --json: the listening address is a JSON line on stdout (the human line without --json), and every stdout line is JSON", { timeout: 120_000 }, async () => {
  const img = f("served.img");
  const srv = cli(["serve", "--image", img, "--generate", "1M", "--port", "0", "--strategy", "demand", "--push", "none", "--exit-after", "1", "--quiet", "--json"], { timeoutMs: 110_000 });
  await until(() => srv.out().includes("\n"), "serve's first line");
  const first = srv.out().split("\n")[0];
  assert.doesNotMatch(first, /listening on/);
  const ev = JSON.parse(first) as Record<string, unknown>;
  assert.deepEqual(Object.keys(ev), ["event", "host", "port", "pages", "digest", "strategy", "push", "order"]);
  assert.equal(ev.event, "listening");
  assert.equal(ev.host, "127.0.0.1");
  assert.ok(Number.isInteger(ev.port) && (ev.port as number) > 0, `port ${ev.port}`);
  assert.equal(ev.pages, 256);
  assert.match(ev.digest as string, /^[0-9a-f]{64}$/);
  assert.equal(ev.strategy, "demand");
  assert.equal(ev.push, "none");
  assert.equal(ev.order, "none");
  // the address and the digest are the served ones: a migration to that port verifies that image
  const mig = await run(["migrate", "--connect", `127.0.0.1:${ev.port}`, "--trace", f("ok.txt")]);
  assert.equal(mig.code, 0, mig.err);
  assert.match(mig.out, new RegExp(`image +verified sha256 ${ev.digest}`));
  const s = await srv.done;
  assert.equal(s.code, 0, s.err);
  const lines = s.out.trimEnd().split("\n");
  assert.equal(lines.length, 2, s.out);
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(Object.keys(records[1]), ["stats", "loop", "sessions"]);
  assert.equal((records[1].sessions as unknown[]).length, 1);

  // without --json: the human line, as before
  const human = cli(["serve", "--image", img, "--port", "0", "--strategy", "demand", "--push", "none", "--quiet"]);
  await until(() => human.out().includes("\n"), "serve's first line");
  human.kill("SIGTERM");
  const h = await human.done;
  assert.equal(h.code, 0, h.err);
  assert.match(h.out, /^listening on 127\.0\.0\.1:\d+ pages=256 digest=[0-9a-f]{64} strategy=demand push=none order=none\n$/);
  // ppm carries its own push: the line says what runs (Hines' bubbling; with a history, its replay too)
  const own = cli(["serve", "--image", img, "--port", "0", "--quiet"]);
  await until(() => own.out().includes("\n"), "serve's first line");
  own.kill("SIGTERM");
  const o = await own.done;
  assert.match(o.out, / strategy=ppm push=linear order=hines\n$/);
});

// --- --version ---------------------------------------------------------------------------------------

test("--version and -V print package.json's version and exit 0 (from src, through tsx); --help lists it", async () => {
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  for (const flag of ["--version", "-V"]) {
    const r = await run([flag]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${version}\n`);
    assert.equal(r.err, "");
  }
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /--version \| -V +print the version/);
});

test("--version from the compiled dist/cli/main.js", { skip: !existsSync(DIST_MAIN) && "dist/ is not built (npm run build)" }, async () => {
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  for (const flag of ["--version", "-V"]) {
    const r = await run([flag], { dist: true });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${version}\n`);
  }
});

// --- quality --feedback on|off ------------------------------------------------------------------------

test("optionalValue: a bare flag means its default, on|off after it is its value, anything else stays a positional", () => {
  const fb = (args: string[]) => optionalValue(args, "feedback", "on", ["on", "off"]);
  assert.deepEqual(fb(["--feedback"]), { args: ["--feedback=on"], after: undefined });
  assert.deepEqual(fb(["--feedback", "off", "t.txt"]), { args: ["--feedback=off", "t.txt"], after: undefined });
  assert.deepEqual(fb(["--feedback", "on"]), { args: ["--feedback=on"], after: undefined });
  assert.deepEqual(fb(["--feedback", "t.txt"]), { args: ["--feedback=on", "t.txt"], after: "t.txt" });
  assert.deepEqual(fb(["--feedback", "--json"]), { args: ["--feedback=on", "--json"], after: undefined });
  assert.deepEqual(fb(["--feedback=maybe"]), { args: ["--feedback=maybe"], after: undefined }); // for choiceOption to refuse
  assert.deepEqual(fb(["--", "--feedback", "off"]), { args: ["--", "--feedback", "off"], after: undefined });
});

test("quality --feedback takes on|off as compare does; a bare --feedback is still on and does not swallow the trace after it", { timeout: 120_000 }, async () => {
  const quality = async (args: string[]) => {
    const r = await run(["quality", ...args, "--layouts", "virtual", "--json"]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`);
    const j = JSON.parse(r.out) as { feedback: boolean; rows: { trace: string; results: Record<string, { faults: number }> }[] };
    assert.equal(j.rows.length, 1, "the one trace was read");
    assert.equal(j.rows[0].trace, "walk");
    return { feedback: j.feedback, faults: Object.fromEntries(Object.entries(j.rows[0].results).map(([k, v]) => [k, v.faults])) };
  };
  const def = await quality([f("walk.txt")]);
  const off = await quality([f("walk.txt"), "--feedback", "off"]);
  const offEq = await quality(["--feedback=off", f("walk.txt")]);
  const on = await quality(["--feedback", "on", f("walk.txt")]);
  const bare = await quality(["--feedback", f("walk.txt")]); // the trace after a bare --feedback stays a trace
  const bareLast = await quality([f("walk.txt"), "--feedback"]);
  assert.equal(def.feedback, false, "default off");
  for (const x of [off, offEq]) { assert.equal(x.feedback, false); assert.deepEqual(x.faults, def.faults); }
  for (const x of [bare, bareLast]) { assert.equal(x.feedback, true); assert.deepEqual(x.faults, on.faults); }
  assert.equal(on.feedback, true);
  assert.notDeepEqual(on.faults, off.faults, "feedback reached the replay");

  oneLine(await run(["quality", f("walk.txt"), "--feedback=maybe"]), "quality", 2, /--feedback must be one of on, off, got "maybe"$/);
  // a word after a bare --feedback that is neither on/off nor a file: the message says both
  oneLine(await run(["quality", "--feedback", "maybe"]), "quality", 2, /cannot read trace 'maybe': no such file \(--feedback takes on or off/);
});

// --- a missing input file: one wording, exit 2, nothing written ----------------------------------------

test("a missing input file is refused in one wording by every command: cannot read WHAT 'PATH': no such file (exit 2)", { timeout: 180_000 }, async () => {
  const nope = f("nope.txt");
  const q = `'${nope.replace(/[.]/g, "\\.")}'`;
  const cases: [string[], RegExp][] = [
    [["compare", "--trace", nope], new RegExp(`: cannot read --trace ${q}: no such file$`)],
    [["simulate", "--trace", nope], new RegExp(`: cannot read --trace ${q}: no such file$`)],
    [["quality", nope], new RegExp(`: cannot read trace ${q}: no such file$`)],
    [["trace-stats", nope], new RegExp(`: cannot read trace ${q}: no such file$`)],
    [["convert", nope, f("out/x.txt")], new RegExp(`: cannot read trace ${q}: no such file$`)],
    [["migrate", "--connect", "127.0.0.1:1", "--trace", nope], new RegExp(`: cannot read --trace ${q}: no such file$`)],
    [["serve", "--image", nope, "--port", "0"], new RegExp(`: cannot read --image ${q}: no such file \\(use --generate SIZE to create one\\)$`)],
    [["serve", "--image", f("img.bin"), "--generate", "4K", "--port", "0", "--history", nope], new RegExp(`: cannot read --history ${q}: no such file$`)],
    [["serve", "--image", f("ok.txt"), "--port", "0", "--history", nope, "--history-source", "none"], new RegExp(`: cannot read --history ${q}: no such file$`)],
    // a path through a file (ENOTDIR) is just as missing
    [["compare", "--trace", join(f("ok.txt"), "x")], /: cannot read --trace '.*ok\.txt\/x': no such file$/],
  ];
  for (const [args, re] of cases) oneLine(await run(args), args[0], 2, re);
  assert.equal(existsSync(f("img.bin")), false, "serve generated no image for a refused run");
  assert.deepEqual(readdirSync(f("out")), [], "convert wrote nothing");
  // a directory where a trace is expected: the same form
  oneLine(await run(["convert", dir, f("out/x.txt")]), "convert", 2, /: cannot read trace '.*': it is a directory$/);
  oneLine(await run(["trace-stats", dir]), "trace-stats", 2, /: cannot read trace '.*': it is a directory$/);
});

// --- simulate --json: compare's millisecond keys beside the seconds ---------------------------------

test("simulate --json has compare's millisecond keys (same values) beside its own seconds", { timeout: 120_000 }, async () => {
  const common = ["--workload", "seq", "--accesses", "3000", "--layout", "virtual", "--json"];
  const c = await run(["compare", ...common, "--strategies", "ppm"]);
  const s = await run(["simulate", ...common, "--strategy", "ppm"]);
  assert.equal(c.code, 0, c.err);
  assert.equal(s.code, 0, s.err);
  const cj = (JSON.parse(c.out) as { strategies: Record<string, number>[] }).strategies[0];
  const sj = JSON.parse(s.out) as Record<string, number>;
  for (const k of ["stallMs", "completionMs", "migrationMs"]) assert.equal(sj[k], cj[k], k);
  // the seconds stay, and the twins are the same times in milliseconds
  for (const [msKey, sKey] of [["stallMs", "stallS"], ["completionMs", "completionS"], ["migrationMs", "migrationS"], ["baselineMs", "baselineS"]]) {
    assert.equal(typeof sj[sKey], "number", sKey);
    assert.ok(Math.abs(sj[msKey] - sj[sKey] * 1e3) <= 5e-4, `${msKey} ${sj[msKey]} vs ${sKey} ${sj[sKey]}`);
  }
  assert.ok(sj.completionMs > 0);
});
