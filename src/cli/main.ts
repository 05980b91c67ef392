#!/usr/bin/env node
/**
 * `ppm-prefetch COMMAND [options]`: dispatch to one module per command. Each command module exports
 * `run(args: string[]): Promise<number>` and returns the exit code. Whatever a command throws becomes
 * one line on stderr and an exit code here (errors.ts decides which: 2 bad input, 1 runtime failure);
 * PPM_DEBUG=1 adds the stack trace.
 */
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { reportError } from "./errors.js";

const COMMANDS: Record<string, { describe: string; load: () => Promise<{ run(args: string[]): Promise<number> }> }> = {
  quality: { describe: "engine quality table on real traces (train 30%, replay the rest)", load: () => import("./quality.js") },
  compare: { describe: "simulate post-copy with every strategy side by side", load: () => import("./compare.js") },
  simulate: { describe: "simulate one strategy in full detail", load: () => import("./simulate.js") },
  convert: { describe: "convert traces between the text and binary formats", load: () => import("./convert.js") },
  serve: { describe: "source page server for a real post-copy transfer over TCP", load: () => import("./serve.js") },
  migrate: { describe: "destination: replay a trace against a page server", load: () => import("./migrate.js") },
  record: { describe: "record a page-access trace of a program under valgrind lackey", load: () => import("./record.js") },
  "trace-stats": { describe: "how predictable a trace is, at a glance", load: () => import("./trace-stats.js") },
  "qemu-proxy": { describe: "return-path proxy that injects predicted page requests into QEMU post-copy", load: () => import("./qemu-proxy.js") },
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return (
    "usage: ppm-prefetch COMMAND [options]   (COMMAND --help for its options)\n" +
    "       ppm-prefetch --version | -V       print the version\n\ncommands:\n" +
    Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(w)}  ${v.describe}`).join("\n") + "\n"
  );
}

/**
 * The package's version, read at run time from package.json two directories up: this file runs as
 * dist/cli/main.js (installed, or `node dist/cli/main.js`) or as src/cli/main.ts (through tsx), and
 * package.json is the root of both.
 */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
  if (typeof pkg.version !== "string") throw new Error("package.json has no version");
  return pkg.version;
}

/**
 * `--depth -1` as `--depth=-1` (and record's `-n -5` as `-n-5`): node:util parseArgs refuses an option value that starts with a dash
 * ("ambiguous"), so a negative number would get that message instead of the option's own range
 * check, which names the option, the value and the range.
 */
export function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i], next = args[i + 1];
    // After "--" the words are another program's (record's command): passed on as they are.
    if (a === "--") { out.push(...args.slice(i)); break; }
    if (/^--[a-z][\w-]*$/.test(a) && next !== undefined && /^-\.?\d/.test(next)) { out.push(`${a}=${next}`); i++; continue; }
    // a short option the same way (`-n -5` as `-n-5`, parseArgs' attached value): only those that take a value
    if (/^-[now]$/.test(a) && next !== undefined && /^-\.?\d/.test(next)) { out.push(`${a}${next}`); i++; continue; }
    out.push(a);
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...given] = argv;
  const rest = joinNegativeValues(given);
  // `help COMMAND` is that command's --help
  if (cmd === "help" && given.length > 0 && COMMANDS[given[0]]) return main([given[0], "--help"]);
  if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
    // asked for: stdout, exit 0; no command at all is a usage error: stderr, exit 2
    (cmd === undefined ? process.stderr : process.stdout).write(usage());
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "--version" || cmd === "-V") {
    try {
      process.stdout.write(`${packageVersion()}\n`);
    } catch (e) {
      return reportError("ppm-prefetch --version", e);
    }
    return 0;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    process.stderr.write(`ppm-prefetch: unknown command ${JSON.stringify(cmd)}\n\n${usage()}`);
    return 2;
  }
  try {
    const mod = await entry.load();
    return await mod.run(rest);
  } catch (e) {
    return reportError(`ppm-prefetch ${cmd}`, e);
  }
}

// Run when executed directly, also through the npm bin symlink (compare real paths).
function invokedDirectly(): boolean {
  if (process.argv[1] === undefined) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
const isMain = invokedDirectly();
if (isMain) {
  const command = process.argv[2] ?? "";
  // Errors no command awaited (an 'error' event without a listener, a throw in a socket callback)
  // get the same one line; the process state is unknown after them, so exit now.
  const fatal = (e: unknown) => process.exit(reportError(`ppm-prefetch ${command}`.trimEnd(), e));
  // A reader that stopped early (`| head`) closes the pipe: what is left to print is not wanted, and
  // that is not a failure of the command (the usual tools end quietly there too).
  // Any other write failure (a full disk: ENOSPC) loses the output: that is a failure, said in one line.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    process.stderr.write(`${`ppm-prefetch ${command}`.trimEnd()}: cannot write the output: ${e.message}\n`);
    process.exit(1);
  });
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e) => { process.exitCode = reportError("ppm-prefetch", e); },
  );
}
