// The `Warden` every entry point exports: the wasm-bindgen class plus a faster path for the
// common precheck / postcheck. A request with only `tool`, `raw_text`, `scope`, `corr_id` and
// `user_id` (the usual shape) crosses into wasm as plain strings and UTF-8 bytes and comes back as one number
// (decision, policy id, timestamp); the output text is copied out only when it changed, and
// the response object is built here, in JS. Anything else (tags, policy_config, tool_config,
// budget fields in the answer, a wrong type) takes the JSON path, whose errors name the field.
import { Warden as WasmWarden } from './warden_wasm.js';

// Index order of DECISION_CODES and POLICY_NAMES in adapters/wasm/src/lib.rs.
const DECISIONS = ['allow', 'deny', 'transform', 'confirm'];
const POLICY_IDS = ['deny-exec', 'tool-access', 'defaults', 'net-redact-regex', 'strict-fallback', 'on-error'];
const SIMPLE_KEYS = new Set(['tool', 'raw_text', 'scope', 'corr_id', 'user_id']);
const TEXT_NULL = 0;
const TEXT_UNCHANGED = 1;

// `raw_text` goes into wasm as UTF-8 bytes: `TextEncoder.encodeInto` a reused scratch buffer
// (native code), then one memory copy; texts too large for the scratch are encoded afresh.
const encoder = new TextEncoder();
const SCRATCH_MAX = 64 * 1024;
let scratch = new Uint8Array(4096);

function utf8(text) {
  const worst = text.length * 3;
  if (worst > SCRATCH_MAX) return encoder.encode(text);
  if (worst > scratch.length) scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(worst, scratch.length * 2)));
  const { written } = encoder.encodeInto(text, scratch);
  return scratch.subarray(0, written);
}

const optionalId = (v) => v === undefined || v === null || typeof v === 'string';

/** Whether `req` is a plain request of simple fields only, with the types the API requires. */
function isSimple(req) {
  if (req === null || typeof req !== 'object' || Array.isArray(req)) return false;
  for (const key in req) {
    if (!SIMPLE_KEYS.has(key)) return false;
  }
  return (
    typeof req.tool === 'string' &&
    req.tool !== '' &&
    typeof req.raw_text === 'string' &&
    (req.scope === undefined || typeof req.scope === 'string') &&
    optionalId(req.corr_id) &&
    optionalId(req.user_id)
  );
}

/** Splits `__lastReasons`' packing: `<UTF-16 length>:<reason>` repeated. */
function unpackReasons(packed) {
  const reasons = [];
  let i = 0;
  while (i < packed.length) {
    const colon = packed.indexOf(':', i);
    const len = Number(packed.slice(i, colon));
    reasons.push(packed.slice(colon + 1, colon + 1 + len));
    i = colon + 1 + len;
  }
  return reasons;
}

// `__check`'s number (adapters/wasm/src/lib.rs, `response_code`): ((ts − TS_BASE) × 2^13 +
// reason set) × 128 + policy × 16 + text state × 4 + decision.
const TS_BASE = 1_600_000_000;
// `__check`'s mode bits: postcheck; number the reason set (the full object needs the reasons).
const MODE_EGRESS = 1;
const MODE_REASONS = 2;
const REASON_SETS = 8192;

/**
 * The reasons of reason set `set` (numbered by wasm, named once per Warden: `sets` keeps the
 * arrays; callers get a copy), or of the last check when wasm did not number them (0).
 */
function reasonsOf(warden, sets, set) {
  if (set === 0) return unpackReasons(warden.__lastReasons());
  let reasons = sets[set];
  if (reasons === undefined) reasons = sets[set] = unpackReasons(warden.__reasonSet(set));
  return reasons.slice();
}

// A lone surrogate becomes U+FFFD on the way into wasm, so such an input is not the output
// even when wasm reports the text unchanged.
const wellFormed = typeof ''.isWellFormed === 'function' ? (s) => s.isWellFormed() : () => false;

function outputText(warden, code, input) {
  const state = (code >> 2) & 3;
  if (state === TEXT_NULL) return null;
  return state === TEXT_UNCHANGED && wellFormed(input) ? input : warden.__lastText();
}

/** `onDecision` made harmless: whatever it throws or rejects with is dropped. */
function guardHook(options) {
  const hook = options?.onDecision;
  if (typeof hook !== 'function') return options;
  const onDecision = (event) => {
    try {
      const result = hook(event);
      if (result && typeof result.catch === 'function') result.catch(() => {});
    } catch {
      // A hook can never fail the decision it reports.
    }
  };
  return { ...options, onDecision };
}

export class Warden extends WasmWarden {
  /** Reason arrays by the set numbers wasm gives them (`reasonsOf`). */
  #reasonSets = [];

  constructor(options) {
    super(guardHook(options));
  }

  precheck(request) {
    return this.#check(request, false) ?? super.precheck(request);
  }

  postcheck(request) {
    return this.#check(request, true) ?? super.postcheck(request);
  }

  /** Precheck of `text` for `tool` when only the decision and the text to forward matter. */
  precheckText(tool, text, userId) {
    return this.#checkText(tool, text, userId, false);
  }

  /** Postcheck of `text` for `tool` when only the decision and the text to forward matter. */
  postcheckText(tool, text, userId) {
    return this.#checkText(tool, text, userId, true);
  }

  #checkText(tool, text, userId, egress) {
    const request = userId === undefined ? { tool, raw_text: text } : { tool, raw_text: text, user_id: userId };
    if (!isSimple(request)) {
      const r = egress ? super.postcheck(request) : super.precheck(request);
      return { decision: r.decision, text: r.raw_text_out };
    }
    const value = this.__check(egress ? MODE_EGRESS : 0, tool, utf8(text), undefined, undefined, userId ?? undefined);
    if (value < 0) {
      const r = JSON.parse(this.__lastJson());
      return { decision: r.decision, text: r.raw_text_out };
    }
    const code = value % 128;
    return { decision: DECISIONS[code & 3], text: outputText(this, code, text) };
  }

  /** The fast path; `undefined` sends the request down the JSON path. */
  #check(req, egress) {
    if (!isSimple(req)) return undefined;
    const mode = (egress ? MODE_EGRESS : 0) | MODE_REASONS;
    const value = this.__check(mode, req.tool, utf8(req.raw_text), req.scope, req.corr_id ?? undefined, req.user_id ?? undefined);
    if (value < 0) return JSON.parse(this.__lastJson());
    const code = value % 128;
    const rest = (value - code) / 128;
    const set = rest % REASON_SETS;
    return {
      decision: DECISIONS[code & 3],
      raw_text_out: outputText(this, code, req.raw_text),
      reasons: reasonsOf(this, this.#reasonSets, set),
      policy_id: POLICY_IDS[code >> 4],
      ts: (rest - set) / REASON_SETS + TS_BASE,
    };
  }
}
