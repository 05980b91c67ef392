/**
 * Restore-time checks of a snapshot's memory image (untrusted input): the core header's
 * configuration must be the one the snapshot's options give (compared field by field with the
 * header a fresh core lays out for those options), then the core's own validate() checks the whole
 * model (assembly/validate.ts) and its error code becomes a RangeError naming what is wrong.
 */
import { layoutBytes, checkHeaderBytes, magicInUse, ABI, type CoreExports } from "./wasm.js";
import type { ResolvedOptions } from "./options.js";

/** The core header (assembly/layout.ts): its byte offset in linear memory and field offsets. */
export const CORE_HEADER = ABI.header;

/** Configuration fields: header offset -> option name (threshold is an f64). */
const CONFIG_NAMES = ["order", "alphabet", "escape", "depth", "streams", "maxContexts", "pageCount", "deltaRange",
  "filter", "lookahead", "ageLimit"] as const;
const CONFIG_FIELDS: readonly [number, string][] = CONFIG_NAMES.map((n) => [ABI.field[n], n]);
const THRESHOLD = ABI.field.threshold;

const FIELD_NAMES: Record<number, string> = {
  0: "magic", ...Object.fromEntries(CONFIG_FIELDS), 48: "threshold",
  56: "output section offset", 60: "input section offset", 64: "streams section offset", 68: "filter section offset",
  72: "frontier section offset", 76: "candidate section offset", 80: "scratch section offset",
  84: "bitmap section offset", 88: "node slots", 92: "node section offset", 96: "end of the layout",
  100: "bucket section offset", [ABI.field.pruneDue]: "prune-due flag", 104: "live node count", 108: "next node id", 112: "free list head",
  [ABI.counter.faults]: "faults counter", [ABI.counter.predictions]: "predictions counter",
  [ABI.counter.observed]: "observed counter", [ABI.counter.trained]: "trained counter", [ABI.counter.prunes]: "prunes counter",
  [ABI.counter.present]: "present pages counter", [ABI.counter.rehearsed]: "rehearsed counter",
  180: "rehearsal list length", 184: "previous rehearsal list length", 188: "rehearsal list selector",
  192: "window section offset", 196: "windows handed out", 200: "free window list head", 204: "windows in use",
};

function fieldName(offset: number): string {
  return FIELD_NAMES[offset] ?? `header field at +${offset}`;
}

const ALPHABET_NAMES: Record<number, string> = Object.fromEntries(Object.entries(ABI.alpha).map(([k, v]) => [v, k]));
const ESCAPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(ABI.escape).map(([k, v]) => [v, k]));

function shown(name: string, v: number): string {
  if (name === "alphabet") return ALPHABET_NAMES[v] ? JSON.stringify(ALPHABET_NAMES[v]) : `code ${v}`;
  if (name === "escape") return ESCAPE_NAMES[v] ? JSON.stringify(ESCAPE_NAMES[v]) : `code ${v}`;
  return String(v);
}

export const ALPHA_BITS = ABI.alpha;
export const ESCAPE_CODE = ABI.escape;
/** Bytes of linear memory up to the end of the core header. */
export const HEADER_END = ABI.headerEnd;

/** The configuration fields' values init() writes for these options, in CONFIG_FIELDS order. */
function configFor(o: ResolvedOptions): number[] {
  return [o.order, ALPHA_BITS[o.alphabet], ESCAPE_CODE[o.escape], o.depth, o.streams, o.maxContexts, o.pageCount,
    o.deltaRange, o.filter, o.lookahead, Math.min(o.ageLimit, ABI.ageLimitMax)];
}

/**
 * Checks of a memory image that need no instance (so untrusted bytes cost no allocation until they
 * pass): its length is the layout of the options, its header's configuration is the options' (a
 * RangeError names the first field that differs), and the core's header checks (validateHeader:
 * reserved bytes, section offsets against the layout walk, counters) pass on a copy of the header.
 */
export function checkImageHeader(image: Uint8Array, o: ResolvedOptions): void {
  const got = new DataView(image.buffer, image.byteOffset, image.byteLength);
  // The magic first: an image of another layout has another length too, and that says less.
  const magic = image.length >= CORE_HEADER + 4 ? got.getUint32(CORE_HEADER, true) : 0;
  const want = magicInUse();
  if (magic !== want) throw new RangeError(`bytes holds a memory image without the engine's header: magic 0x${magic.toString(16)} != 0x${want.toString(16)}`);
  // The configuration before the length: a field that differs from the options (which also changes
  // the length) is named, rather than only the lengths.
  const need = layoutBytes(o.order, o.streams, o.maxContexts, o.pageCount, o.filter);
  if (image.length >= HEADER_END) {
    const config = configFor(o);
    CONFIG_FIELDS.forEach(([off, name], i) => {
      const g = got.getUint32(CORE_HEADER + off, true);
      if (g !== config[i]) throw new RangeError(`bytes holds a core whose ${name} is ${shown(name, g)}, but its options say ${shown(name, config[i])}`);
    });
    const gt = got.getFloat64(CORE_HEADER + THRESHOLD, true);
    if (!Object.is(gt, o.threshold)) throw new RangeError(`bytes holds a core whose threshold is ${gt}, but its options say ${o.threshold}`);
  }
  if (image.length !== need) throw new RangeError(`bytes holds a memory image of ${image.length} bytes; its options need ${need}`);
  const { code, detail } = checkHeaderBytes(image.subarray(0, HEADER_END));
  if (code !== 0) throw corrupt(code, detail);
}

/** The core's validate() codes (assembly/validate.ts) as messages; `d` is validateDetail(). */
const MESSAGES: Record<number, (d: number) => string> = {
  1: (d) => `magic 0x${d.toString(16)} is not the engine's`,
  2: (d) => `its ${fieldName(d)} is out of range`,
  3: (d) => `its ${fieldName(d)} differs from the layout of its configuration`,
  4: (d) => `its layout needs ${d} bytes, more than its memory`,
  5: (d) => `its ${fieldName(d)} is not a count (a finite non-negative integer within range)`,
  6: (d) => `its ${fieldName(d)} is out of range`,
  7: (d) => `its ${fieldName(d)} is inconsistent with the node arena`,
  8: (d) => `root node ${d} has links (a root has no parent, siblings or hash chain)`,
  9: (d) => d === 0 ? "its free list misses free nodes" : `its free list is broken at node ${d} (out of range, live, or a cycle)`,
  10: (d) => `node ${d} has a link out of range or inconsistent with its parent's child list (or a cycle)`,
  11: (d) => `node ${d} is deeper than order + 1`,
  12: (d) => `node ${d} has a symbol outside its trie's alphabet`,
  13: (d) => `node ${d} has a count of 0 or a total that is not the sum of its children's counts`,
  14: (d) => `the tries reach ${d} nodes, not the live node count (a cycle or unreachable nodes)`,
  15: (d) => `hash bucket ${d}'s chain is broken (a node out of range, in the wrong bucket, or a cycle), or live nodes are not indexed`,
  16: (d) => `stream ${d}'s record has a last page past pageCount or a context that is not a live node of its order`,
  17: (d) => `the training filter is inconsistent at slot ${d}`,
  18: (d) => `scratch slot ${d} carries a generation not yet drawn`,
  19: (d) => `its bitmap's ${d} present bits disagree with the present pages counter or lie past pageCount`,
  20: (d) => `reserved byte ${d} of its header is not zero`,
  21: (d) => d === 0 ? "its successor windows' free list or counts are inconsistent" : `node ${d}'s successor window does not match its children`,
};

function corrupt(code: number, d: number): RangeError {
  const what = MESSAGES[code]?.(d) ?? `validation code ${code} (detail ${d})`;
  return new RangeError(`bytes holds a corrupt model: ${what}`);
}

/** Run the core's validate() on the image now in its memory; throws a RangeError naming the fault. */
export function validateCore(core: CoreExports): void {
  const code = core.validate();
  if (code !== 0) throw corrupt(code, core.validateDetail() >>> 0);
}
