/** A value as an error message names it: strings quoted (cut after `maxString` characters), arrays and objects by kind. */
export function describeValue(v: unknown, maxString = Infinity): string {
  if (typeof v === "string") return JSON.stringify(v.length > maxString ? v.slice(0, maxString) + "..." : v);
  if (typeof v === "bigint") return `${v}n`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (v !== null && typeof v === "object") return `an object (${Object.prototype.toString.call(v)})`;
  return String(v);
}
