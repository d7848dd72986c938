// Types of js/warden.js: the wasm-bindgen class plus the decision-and-text shortcuts.
import { Warden as WasmWarden } from './warden_wasm.js';
import type { Decision } from './warden_wasm.js';

/** What `precheckText` / `postcheckText` answer: the decision and the text to forward (null on deny). */
export interface TextVerdict {
  decision: Decision;
  text: string | null;
}

export declare class Warden extends WasmWarden {
  /** Precheck of `text` for `tool` when only the decision and the text to forward matter (no response object, no reasons). */
  precheckText(tool: string, text: string, userId?: string): TextVerdict;
  /** Postcheck of `text` for `tool` when only the decision and the text to forward matter. */
  postcheckText(tool: string, text: string, userId?: string): TextVerdict;
}
