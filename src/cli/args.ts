/**
 * Shared CLI plumbing: typed option readers that name the option and the value they refuse (with a
 * UsageError, which main turns into a message and exit code 2; see errors.ts).
 */
import { UsageError } from "./errors.js";

export { UsageError };

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function rangedOption(kind: "an integer" | "a number", name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined) return def;
  const v = Number(raw);
  const ok = kind === "an integer" ? Number.isInteger(v) : Number.isFinite(v);
  // decimal only (Number() would also take 0x10, 0b101, 0o10 and surrounding spaces)
  if (!DECIMAL.test(raw) || !ok || v < min || v > max) {
    throw new UsageError(`--${name} must be ${kind} in ${min}..${max}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

export function intOption(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  return rangedOption("an integer", name, raw, def, min, max);
}

export function numberOption(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  return rangedOption("a number", name, raw, def, min, max);
}

export function choiceOption<T extends string>(name: string, raw: string | undefined, def: T, choices: readonly T[]): T {
  if (raw === undefined) return def;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UsageError(`--${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

/**
 * An option that is both a bare flag and an option with a value (`--feedback` means `--feedback on`;
 * `--feedback off`, `--feedback=off`). node:util parseArgs has no optional values: a `type: "string"`
 * option takes the next word whatever it is (`quality --feedback trace.txt` would read no trace), a
 * `type: "boolean"` one refuses any value. So before parseArgs the option is written `--NAME=VALUE`:
 * the word after a bare `--NAME` becomes its value only when it is one of `choices` (anything else
 * stays where it is, a positional argument or the next option, and the bare flag means `bare`);
 * `--NAME=VALUE` is left for choiceOption to check. After `--` nothing is touched. `after`: the word
 * that followed a bare `--NAME` and was left as a positional (for a message that mentions it).
 */
export function optionalValue(args: string[], name: string, bare: string, choices: readonly string[]): { args: string[]; after?: string } {
  const out: string[] = [];
  let after: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") { out.push(...args.slice(i)); break; }
    if (a !== `--${name}`) { out.push(a); continue; }
    const next = args[i + 1];
    if (next !== undefined && choices.includes(next)) { out.push(`--${name}=${next}`); i++; continue; }
    out.push(`--${name}=${bare}`);
    if (next !== undefined && !next.startsWith("-")) after = next;
  }
  return { args: out, after };
}
