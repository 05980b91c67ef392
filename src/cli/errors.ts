/**
 * How a command fails: one line on stderr and an exit code, decided here and nowhere else.
 *
 *   exit 2  bad input: options (UsageError, node:util parseArgs, the engine's `options.X` checks), a
 *           malformed or truncated trace, a path or address that does not exist (ENOENT, ENOTDIR,
 *           EISDIR, EADDRNOTAVAIL, ENOTFOUND)
 *   exit 1  runtime failure: the network (ECONNREFUSED, EADDRINUSE, ...), permissions, a full disk,
 *           out of memory (RuntimeFailure), and anything unexpected
 *
 * A command only has to throw (a UsageError, a RuntimeFailure, or any error it lets propagate, Node
 * system errors included); main.ts calls `describeError` and prints `ppm-prefetch CMD: MESSAGE`.
 * Errors that carry no file name (a gunzip stream's "unexpected end of file") get one from the call
 * site that knows it: `inFile(path, promise)` / `nameFile(error, path)`. With PPM_DEBUG=1 the stack
 * trace follows the line.
 */

/** An error whose message is meant for the user as it is, with the exit code it calls for. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2) {
    super(message);
    this.name = "CliError";
  }
}

/** Bad input (options, files, addresses): exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

/** The command could not do its work (network, resources): exit code 1. */
export class RuntimeFailure extends CliError {
  constructor(message: string) {
    super(message, 1);
    this.name = "RuntimeFailure";
  }
}

type SysError = Error & { code?: unknown; syscall?: string; path?: string; dest?: string; address?: string; port?: number; hostname?: string };

/** The property `nameFile` sets: the user's file an error was about (input, or output). */
const FILE = Symbol("ppm-prefetch file");
const WRITING = Symbol("ppm-prefetch writing");

/**
 * Attach the file a pathless error was about (a gzip stream error; a system error on a temp file,
 * which is then reported under the user's name). `writing`: it was the output.
 */
export function nameFile<E>(e: E, path: string, writing = false): E {
  if (e !== null && typeof e === "object" && !(FILE in e)) {
    Object.defineProperty(e, FILE, { value: path, enumerable: false });
    Object.defineProperty(e, WRITING, { value: writing, enumerable: false });
  }
  return e;
}

/** Run `work` (which reads `path`); an error it throws names the file. */
export async function inFile<T>(path: string, work: Promise<T> | (() => Promise<T>)): Promise<T> {
  try {
    return await (typeof work === "function" ? work() : work);
  } catch (e) {
    throw nameFile(e, path);
  }
}

const REASONS: Record<string, string> = {
  ENOENT: "no such file or directory", ENOTDIR: "not a directory", EISDIR: "is a directory",
  EACCES: "permission denied", EPERM: "operation not permitted", EEXIST: "already exists",
  ENOSPC: "no space left on device", EROFS: "read-only file system", EMFILE: "too many open files",
  ENAMETOOLONG: "name too long", EXDEV: "cross-device rename",
  ECONNREFUSED: "connection refused", ECONNRESET: "connection reset by peer", ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable", ENETUNREACH: "network unreachable", EPIPE: "broken pipe",
  EADDRINUSE: "address already in use", EADDRNOTAVAIL: "address not available on this host",
  ENOTFOUND: "host not found", EAI_AGAIN: "temporary name resolution failure", EINVAL: "invalid argument",
};

/** System error codes that mean the user named something that is not there: bad input. */
const BAD_INPUT_CODES = new Set(["ENOENT", "ENOTDIR", "EISDIR", "ENAMETOOLONG", "EADDRNOTAVAIL", "ENOTFOUND"]);

const PARSE_ARGS_CODES = new Set(["ERR_PARSE_ARGS_UNKNOWN_OPTION", "ERR_PARSE_ARGS_INVALID_OPTION_VALUE", "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL"]);

function hostPort(e: SysError): string {
  const host = e.address ?? e.hostname ?? "";
  const h = host.includes(":") ? `[${host}]` : host;
  return e.port !== undefined && e.port !== null ? `${h}:${e.port}` : h;
}

function describeSystemError(e: SysError, code: string): string {
  const reason = `${REASONS[code] ?? stripPrefix(e.message, code)} (${code})`;
  const file = (e as unknown as Record<symbol, unknown>)[FILE] as string | undefined;
  const writing = (e as unknown as Record<symbol, unknown>)[WRITING] === true;
  if (file !== undefined) return `cannot ${writing ? "write" : "read"} ${file}: ${reason}`;
  const path = e.path;
  switch (e.syscall) {
    case "open": case "read": case "fstat":
      return `cannot open ${path}: ${reason}`;
    case "write":
      return `cannot write ${path ?? "output"}: ${reason}`;
    case "rename": case "copyfile": case "link":
      return `cannot move ${path} to ${e.dest}: ${reason}`;
    case "stat": case "lstat": case "access":
      return `cannot access ${path}: ${reason}`;
    case "scandir": case "opendir":
      return `cannot list ${path}: ${reason}`;
    case "connect":
      return `cannot connect to ${hostPort(e)}: ${reason}`;
    case "listen": case "bind":
      return `cannot listen on ${hostPort(e)}: ${reason}`;
    case "getaddrinfo":
      return `cannot resolve ${e.hostname ?? hostPort(e)}: ${reason}`;
    default:
      if (e.syscall) return `${e.syscall}${path ? ` ${path}` : hostPort(e) ? ` ${hostPort(e)}` : ""}: ${reason}`;
      return `${stripPrefix(e.message, code)} (${code})`;
  }
}

/** "ENOENT: no such file or directory, open 'x'" -> "no such file or directory". */
function stripPrefix(message: string, code: string): string {
  const m = new RegExp(`^(?:\\w+ )?${code}:? ?([^,]*)`).exec(message);
  return (m?.[1] || message).trim();
}

export interface ErrorReport {
  /** One line, no trailing newline. */
  message: string;
  exitCode: 1 | 2;
  /** Not an error a command meant to report (a bug, most likely): the stack helps. */
  unexpected: boolean;
}

/** The single place that turns anything a command threw into one line and an exit code. */
export function describeError(err: unknown): ErrorReport {
  const line = (s: string) => s.replace(/\s*\n\s*/g, " ").trim();
  if (!(err instanceof Error)) return { message: line(`unexpected error: ${String(err)}`), exitCode: 1, unexpected: true };
  const e = err as SysError;
  const code = typeof e.code === "string" ? e.code : undefined;
  if (err instanceof CliError) return { message: line(err.message), exitCode: err.exitCode, unexpected: false };
  if (code !== undefined && PARSE_ARGS_CODES.has(code)) return { message: line(err.message), exitCode: 2, unexpected: false };
  if (err.name === "TraceFormatError" || err.name === "BinaryTraceError") return { message: line(err.message), exitCode: 2, unexpected: false };
  if (code !== undefined && code.startsWith("Z_")) {
    // zlib: Z_BUF_ERROR "unexpected end of file" (truncated), Z_DATA_ERROR "incorrect header check", ...
    const file = (e as unknown as Record<symbol, unknown>)[FILE] as string | undefined;
    const what = code === "Z_BUF_ERROR" ? "truncated gzip data" : "corrupt gzip data";
    return { message: line(`${file ?? "input"}: ${what} (${err.message}, ${code})`), exitCode: 2, unexpected: false };
  }
  if (code !== undefined && /^E[A-Z0-9_]+$/.test(code) && (e.syscall !== undefined || code in REASONS)) {
    return { message: line(describeSystemError(e, code)), exitCode: BAD_INPUT_CODES.has(code) ? 2 : 1, unexpected: false };
  }
  if ((err instanceof RangeError || err instanceof TypeError) && /^options\.\w+ /.test(err.message)) {
    // the engine's option check (README: "TypeError/RangeError naming the option and value"): in the
    // CLI the options come from the command line, so this is bad input
    return { message: line(`engine ${err.message}`), exitCode: 2, unexpected: false };
  }
  if (err instanceof RangeError && /allocation failed|Invalid typed array length|Invalid array length|Array buffer/i.test(err.message)) {
    return { message: line(`out of memory: ${err.message}`), exitCode: 1, unexpected: false };
  }
  return { message: line(`${err.name}: ${err.message} (PPM_DEBUG=1 prints the stack trace)`), exitCode: 1, unexpected: true };
}

/** True when PPM_DEBUG asks for stack traces. */
export function debugEnabled(): boolean {
  const v = process.env.PPM_DEBUG;
  return v !== undefined && v !== "" && v !== "0";
}

/** Print the error's line (and with PPM_DEBUG=1 its stack) to stderr; returns the exit code. */
export function reportError(prefix: string, err: unknown): 1 | 2 {
  const r = describeError(err);
  process.stderr.write(`${prefix}: ${r.message}\n`);
  if (debugEnabled() && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return r.exitCode;
}
