/**
 * Shared CLI plumbing: typed option readers that name the option and the value they refuse (with a
 * UsageError, which main turns into a message and exit code 2; see errors.ts).
 */
import { UsageError } from "./errors.js";

export { UsageError };

function rangedOption(kind: "an integer" | "a number", name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined) return def;
  const v = Number(raw);
  const ok = kind === "an integer" ? Number.isInteger(v) : Number.isFinite(v);
  if (raw.trim() === "" || !ok || v < min || v > max) {
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
