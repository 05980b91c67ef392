import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, existsSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main, joinNegativeValues } from "../../src/cli/main.js";
import { qualityTable } from "../../src/quality/table.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const cli = (args: string[]) => run(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, maxBuffer: 1 << 24 });
const dir = mkdtempSync(join(tmpdir(), "ppm-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function quietly(f: () => Promise<number>): Promise<number> {
  const w = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try { return await f(); } finally { process.stderr.write = w; }
}

test("bad options exit with code 2 and a clear message", async () => {
  const bad = [
    ["compare", "--depth", "-1"],
    ["compare", "--depth", "x"],
    ["compare", "--push", "sideways"],
    ["compare", "--layout", "8m"],
    ["compare", "--strategies", "demand,nope"],
    ["compare", "--workload", "nope"],
    ["compare", "--workload", "seq", "--trace", "x"],
    ["compare", "--trace", join(dir, "missing.txt")],
    ["compare", "--switch-at", "1.5"],
    ["compare", "--bandwidth-gbps", "0"],
    ["compare", "--feedback", "maybe"],
    ["compare", "--frobnicate"],
    ["compare", "stray"],
    ["simulate", "--strategy", "nope"],
    ["simulate", "--workload", "seq", "--bandwidth-gbps", "1,2"],
    ["convert", "only-one"],
    ["convert", join(dir, "missing.txt"), join(dir, "out.ppmt")],
    ["convert", dir, join(dir, "out.txt")], // a directory as IN
    ["quality", "--engine", "{"],
    ["quality", "--engine", "[1]"],
    ["quality", "--engine", '{"filter":-1}'],
    ["quality", "--engine", '{"depth":3}'],
    ["quality", "--seed", "x"],
    ["compare", "--depth", "0x10"], // decimal only: Number() would read these as 16, 5, 8 and 5
    ["compare", "--depth", "0b101"],
    ["quality", "--seed", "0o10"],
    ["compare", "--depth", " 5"],
    ["migrate", "--connect", "127.0.0.1:1", "--trace", "traces/sqlite.txt.gz", "--limit", "0"], // at most 0 accesses is no trace, as in compare
    ["quality", "--train-chunk", "-1"],
    ["compare", "--adaptive", "--depth", "200"], // adaptive doubles it past the engine's 256
  ];
  for (const args of bad) assert.equal(await quietly(() => main(args)), 2, args.join(" "));
  const { stderr } = await cli(["compare", "--push", "sideways"]).catch((e) => e);
  assert.match(stderr, /--push must be one of none, linear, qemu, hines, got "sideways"/);
  // A negative number reaches the option's own range check (parseArgs alone calls it "ambiguous").
  const neg = await cli(["compare", "--depth", "-1"]).catch((e) => e);
  assert.equal(neg.code, 2);
  assert.match(neg.stderr, /--depth must be an integer in 0\.\.256, got "-1"/);
  // A range that depends on another option says which and why; a refused --engine key names what sets it.
  const ad = await cli(["compare", "--depth", "256", "--adaptive"]).catch((e) => e);
  assert.equal(ad.code, 2);
  assert.match(ad.stderr, /--depth must be an integer in 0\.\.128, got "256" \(with --adaptive, which goes up to twice --depth; 0\.\.256 without it\)/);
  const st = await cli(["quality", "--engine", '{"streams":1}']).catch((e) => e);
  assert.match(st.stderr, /--engine: streams is set by the replay \(from the trace's vCPUs\), not by --engine/);
  // a history the trace cannot give is named as typed (not as its normalised interval, writes:1e7)
  const plain = join(dir, "no-kind.txt");
  writeFileSync(plain, "1 10\n2 10\n3 10\n4 10\n");
  const wr = await cli(["quality", plain, "--history", "writes:10ms"]).catch((e) => e);
  assert.equal(wr.code, 2);
  assert.match(wr.stderr, /--history writes:10ms needs a trace that records writes/);
});

test("quality --engine replaces engine defaults and --seed the placement, as the library call does", async () => {
  const trace = join(ROOT, "test/fixtures/sqlite-300k.txt.gz");
  const quality = async (extra: string[]) => JSON.parse((await cli(["quality", trace, "--layouts", "4k", "--json", ...extra])).stdout);
  const hybrid = await quality(["--seed", "2"]);
  const delta = await quality(["--seed", "2", "--engine", '{"alphabet":"delta","filter":128}']);
  assert.deepEqual(delta.engine, { alphabet: "delta", filter: 128 });
  assert.equal(delta.seed, 2);
  const [expected] = await qualityTable([trace], { layouts: ["4k"], seed: 2, engine: { alphabet: "delta", filter: 128 } });
  assert.equal(delta.rows[0].results.ppm.faults, expected.results.ppm.faults);
  // Deltas cannot predict pages scattered at 4 KiB: the option really reached the engine.
  assert.ok(delta.rows[0].results.ppm.faults > hybrid.rows[0].results.ppm.faults, `${delta.rows[0].results.ppm.faults} vs ${hybrid.rows[0].results.ppm.faults}`);
  const { stderr } = await cli(["quality", "--engine", '{"rehearse":1}']).catch((e) => e);
  assert.match(stderr, /--engine: options\.rehearse must be a boolean, got 1/);
});

test("quality reads a trace from a pipe (read once) as from its file; --engine takes a memoryBytes budget", async () => {
  const trace = join(ROOT, "test/fixtures/sqlite-300k.txt.gz");
  // a shell pipe (a real pipe: Node's own stdio pipes are sockets, which /dev/stdin cannot open)
  const piped = spawnSync("sh", ["-c", `cat "$1" | "$2" --import tsx src/cli/main.ts quality /dev/stdin --layouts virtual --json`, "sh", trace, process.execPath],
    { cwd: ROOT, maxBuffer: 1 << 24 });
  assert.equal(piped.status, 0, piped.stderr.toString());
  const fromPipe = JSON.parse(piped.stdout.toString());
  const fromFile = JSON.parse((await cli(["quality", trace, "--layouts", "virtual", "--json"])).stdout);
  assert.ok(fromFile.rows[0].demandFaults > 0);
  assert.deepEqual(fromPipe.rows[0].results, fromFile.rows[0].results);
  assert.equal(fromPipe.rows[0].demandFaults, fromFile.rows[0].demandFaults);
  const budget = JSON.parse((await cli(["quality", trace, "--layouts", "virtual", "--json", "--engine", '{"memoryBytes":8388608}'])).stdout);
  assert.ok(budget.rows[0].results.ppm.faults > 0);
  const { stderr, code } = await cli(["quality", trace, "--engine", '{"memoryBytes":65536}']).catch((e) => e);
  assert.equal(code, 2);
  assert.match(stderr, /--engine: options\.memoryBytes 65536 is too small/);
});

test("quality --ips gives a --history interval given as a time its instructions, as compare does", async () => {
  const trace = join(ROOT, "test/fixtures/sqlite-300k.txt.gz");
  const q = async (extra: string[]) => JSON.parse((await cli(["quality", trace, "--layouts", "4k", "--json", ...extra])).stdout);
  const timed = await q(["--history", "first-touch:10ms", "--ips", "1e6"]);
  const counted = await q(["--history", "first-touch:1e4"]);
  assert.equal(timed.history, "first-touch:1e4");
  assert.deepEqual(timed.rows, counted.rows);
});

test("no command: the usage on stderr, exit 2; `help COMMAND` is that command's --help", async () => {
  const none = await cli([]).catch((e) => e);
  assert.equal(none.code, 2);
  assert.equal(none.stdout, "");
  assert.match(none.stderr, /^usage: ppm-prefetch COMMAND/);
  const help = await cli(["help", "quality"]);
  assert.match(help.stdout, /^usage: ppm-prefetch quality \[TRACE\.\.\.\]/);
});

test("quality --train-chunk feeds the history in pieces and gets the one-call figures (train calls add up)", async () => {
  const trace = join(ROOT, "test/fixtures/sqlite-300k.txt.gz");
  const quality = async (extra: string[]) => JSON.parse((await cli(["quality", trace, "--layouts", "4k", "--json", ...extra])).stdout);
  const [once, pieces] = [await quality([]), await quality(["--train-chunk", "5000"])];
  assert.equal(pieces.trainChunk, 5000);
  assert.deepEqual(pieces.rows[0].results.ppm, once.rows[0].results.ppm);
  // The pieces really reach train(): count the calls the library's table makes.
  const { WasmPredictor } = await import("../../src/engine/predictor.js");
  const { readTextTrace } = await import("../../src/trace/format.js");
  const original = WasmPredictor.prototype.train;
  const sizes: number[] = [];
  WasmPredictor.prototype.train = function (this: InstanceType<typeof WasmPredictor>, pages, stream) {
    sizes.push(pages.length);
    return original.call(this, pages, stream);
  };
  try {
    await qualityTable([trace], { layouts: ["4k"], trainChunk: 5000 });
  } finally {
    WasmPredictor.prototype.train = original;
  }
  const history = Math.floor((await readTextTrace(trace)).length * 0.3);
  assert.equal(sizes.length, Math.ceil(history / 5000));
  assert.ok(sizes.slice(0, -1).every((n) => n === 5000));
  assert.equal(sizes.reduce((a, b) => a + b, 0), history);
});

test("compare --json prints only the documented record", async () => {
  const { stdout } = await cli(["compare", "--workload", "seq", "--accesses", "5000", "--pages", "512", "--layout", "2m", "--strategies", "demand,readahead,oracle", "--json"]);
  const j = JSON.parse(stdout);
  assert.deepEqual(Object.keys(j), ["trace", "history", "strategies"]);
  assert.equal(j.trace, "seq");
  assert.equal(j.history, "sets:1e7", "the default: what access-bit sampling records, every 10 ms at 1e9 instructions/s");
  assert.deepEqual(j.strategies.map((s: { name: string }) => s.name), ["demand", "readahead", "oracle"]);
  for (const s of j.strategies) {
    for (const k of ["name", "faults", "inflightFaults", "requests", "stallMs", "completionMs", "migrationMs", "pagesSent", "accuracy", "coverage"]) assert.ok(k in s, k);
    assert.equal(typeof s.faults, "number");
    assert.equal(s.requests, s.faults + s.inflightFaults);
  }
  assert.equal(j.strategies[0].accuracy, null);
  assert.ok(j.strategies[1].faults < j.strategies[0].faults);
});

test("compare and simulate train on a recordable history unless told (sets:10ms), and name it; full only when asked", async () => {
  const common = ["--trace", "traces/perl.txt.gz", "--layout", "4k", "--strategies", "ppm"];
  const run = async (extra: string[]) => JSON.parse((await cli(["compare", ...common, ...extra, "--json"])).stdout) as { history: string; strategies: { faults: number; stallMs: number }[] };
  const byDefault = await run([]), sets = await run(["--history", "sets:10ms"]), full = await run(["--history", "full"]);
  assert.equal(byDefault.history, "sets:1e7");
  assert.equal(full.history, "full");
  assert.deepEqual(byDefault.strategies, sets.strategies);
  assert.notDeepEqual(byDefault.strategies, full.strategies, "the default is not the full access trace");
  const text = (await cli(["compare", ...common])).stdout;
  assert.match(text, /history: sets:1e7 \(every 10 ms at 1000000000 guest instructions\/s\): \d+ entries \(page x interval\): the pages touched in each interval/);
  const one = JSON.parse((await cli(["simulate", "--trace", "traces/perl.txt.gz", "--layout", "4k", "--json"])).stdout) as { history: string; faults: number };
  assert.equal(one.history, "sets:1e7");
  assert.equal(one.faults, byDefault.strategies[0].faults);
});

test("compare --json counts requests for pages in flight as simulate does (the verdict's measure)", async () => {
  const common = ["--workload", "multi", "--accesses", "8000", "--pages", "1024", "--layout", "4k", "--push", "qemu", "--bandwidth-gbps", "1"];
  const { stdout } = await cli(["compare", ...common, "--strategies", "demand,ppm", "--json"]);
  const j = JSON.parse(stdout) as { strategies: { name: string; faults: number; inflightFaults: number; requests: number }[] };
  for (const s of j.strategies) {
    const one = JSON.parse((await cli(["simulate", ...common, "--strategy", s.name, "--json"])).stdout) as { faults: number; inflightFaults: number };
    assert.equal(s.faults, one.faults, s.name);
    assert.equal(s.inflightFaults, one.inflightFaults, s.name);
    assert.equal(s.requests, one.faults + one.inflightFaults, s.name);
  }
  assert.ok(j.strategies.some((s) => s.inflightFaults > 0), "a push over a slow link leaves requests for pages in flight");
});

test("compare prints a table per layout and writes an SVG chart atomically; simulate shows the detail", async () => {
  const svg = join(dir, "chart.svg");
  const { stdout } = await cli(["compare", "--workload", "multi", "--accesses", "8000", "--pages", "1024", "--strategies", "demand,qemu,leap", "--svg", svg]);
  for (const l of ["virtual", "2m", "4k"]) assert.match(stdout, new RegExp(`layout ${l}:`));
  assert.match(stdout, /strategy\s+faults\s+% demand\s+in-flight\s+requests\s+stall ms/);
  // the legend, once, above the first table: what the columns count and which rows run which push
  assert.equal(stdout.split("columns: faults = network faults").length, 2, "one legend");
  assert.ok(stdout.indexOf("columns:") < stdout.indexOf("strategy  "), "legend before the first table");
  assert.match(stdout, /requests = both \(what the destination sends/);
  const text = readFileSync(svg, "utf8");
  assert.match(text, /^<\?xml/);
  assert.match(text, /<svg [^>]*width="\d+"/);
  assert.match(text, /Network faults/);
  assert.match(text, /<\/svg>\n$/);
  assert.equal(existsSync(`${svg}.tmp-${process.pid}`), false);
  const sim = await cli(["simulate", "--workload", "zipf", "--accesses", "5000", "--strategy", "readahead", "--layout", "4k"]);
  assert.match(sim.stdout, /network faults/);
  assert.match(sim.stdout, /stall distribution/);
});

test("compare runs on a trace file, and convert round-trips it through the binary format", async () => {
  const txt = join(dir, "t.txt");
  writeFileSync(txt, Array.from({ length: 3000 }, (_, i) => `${(i * 7) % 400} 25`).join("\n") + "\n");
  const bin = join(dir, "t.ppmt");
  assert.equal(await quietly(() => main(["convert", txt, bin])), 0);
  const a = JSON.parse((await cli(["compare", "--trace", txt, "--layout", "virtual", "--strategies", "demand,leap", "--json"])).stdout);
  const b = JSON.parse((await cli(["compare", "--trace", bin, "--layout", "virtual", "--strategies", "demand,leap", "--json"])).stdout);
  assert.deepEqual(a.strategies, b.strategies);
  assert.equal(a.trace, "t");
});

test("a negative option value is joined to its option, but nothing after -- (record's command is passed as given)", () => {
  assert.deepEqual(joinNegativeValues(["--depth", "-1", "--out", "f"]), ["--depth=-1", "--out", "f"]);
  assert.deepEqual(joinNegativeValues(["--out", "f", "--", "seq", "--equal-width", "-3", "3"]), ["--out", "f", "--", "seq", "--equal-width", "-3", "3"]);
  // record's short options with values: `-n -5` reaches the range check as `-n-5`; a flag (-h) is left alone
  assert.deepEqual(joinNegativeValues(["-n", "-5", "-w", "-.5", "-h", "-1"]), ["-n-5", "-w-.5", "-h", "-1"]);
});
