/**
 * `qemu`: QEMU's postcopy as shipped. No prediction; its only spatial hint is the background scanner,
 * which jumps to the page after each faulted one. The strategy therefore carries its own push order
 * ("qemu") whatever `--push` says.
 */
import type { StrategyContext } from "./types.js";
import type { SimStrategy } from "./context.js";

const NONE = new Uint32Array(0);

export function createQemu(_ctx: StrategyContext): SimStrategy {
  return { name: "qemu", push: "qemu", onFault: () => NONE };
}
