/** ppm-prefetch: the public API (re-exports only). */
export { createPredictor, restorePredictor, WasmPredictor } from "./engine/predictor.js";
export { warmUp } from "./engine/warm-up.js";
export { DEFAULTS as PREDICTOR_DEFAULTS, type FullPredictorOptions } from "./engine/options.js";
export type { Predictor, PredictorOptions, PredictorStats, Alphabet, EscapeMethod } from "./engine/types.js";
export { createReferencePredictor, ReferencePredictor } from "./reference/ppm.js";
export { readTextTrace, parseTraceText, type Trace } from "./trace/format.js";
export { readTrace } from "./trace/read.js";
export { placePages, type LayoutName } from "./trace/layout.js";
