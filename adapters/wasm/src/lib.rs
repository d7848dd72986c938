//! Warden as a WebAssembly package for JavaScript runtimes (Vercel Edge, Next.js middleware,
//! Node, Deno): `new Warden({policy, piiTokenSalt})`, then `precheck`, `postcheck`,
//! `evaluate` and `redact` return plain objects shaped exactly like the HTTP responses of
//! SPEC §2 (Warden's HTTP API), and `handle` serves every HTTP route with the native server's router.
//!
//! Values cross the JS boundary as JSON text (`JSON.stringify` / `JSON.parse`): exactly the
//! HTTP wire format, with no second serialisation scheme to keep in step. A precheck or
//! postcheck with only the simple fields takes a faster path (see [`Warden::check_fields`]):
//! the JS wrapper (`js/warden.js`) passes the fields as strings and gets one number back
//! (decision, policy id, timestamp), fetching the output text only when it changed. Nothing here may
//! panic (a panic traps and kills the isolate): every failure becomes a thrown JS `Error`
//! whose `code`, `status` and `field` properties mirror the HTTP error body.
#![forbid(unsafe_code)]

pub mod api;
pub mod hooks;
pub mod stream;

use crate::api::{Core, Hooks, HttpResult};
use crate::hooks::{is_ledger_store, JsDecisionHook, JsLedgerStore};
use js_sys::{Error as JsError, Reflect, Uint8Array, JSON};
use serde_json::Value;
use std::cell::RefCell;
use std::sync::Arc;
use warden_engine::{CheckRequest, CheckResponse, Decision, Direction, Reason};
use warden_service::budget::{BudgetStore, MemoryBudgetStore};
use warden_service::clock::JsClock;
use warden_service::error::ApiError;
use warden_service::events::EventBuilder;
use warden_service::service::{Observer, Operation};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `new Warden(options)`. Every field is optional. */
export interface WardenOptions {
  /** A policy document (object) or its YAML / JSON text; default: the bundled policy.tool_access.yaml. */
  policy?: object | string;
  /** Name used in policy error messages, e.g. the file the text was read from. */
  policyName?: string;
  /** PII_TOKEN_SALT: key of the HMAC behind `pii_…` tokens. Unset: a built-in default (readiness warns). */
  piiTokenSalt?: string;
  /** ON_ERROR: what an invalid request `policy_config` yields. Default "block" (fail closed). */
  onError?: "block" | "pass" | "best_effort";
  /** WARDEN_API_KEYS for `handle`: comma-separated text or an array of keys (plain or "sha256:<hex>"). */
  apiKeys?: string | string[];
  /** Largest request body `handle` accepts, in bytes (default 1 MiB; 413 above). */
  bodyLimit?: number;
  /** Most items in one batch (default 1000). */
  maxBatch?: number;
  /** Environment name reported by readiness (default "production"). */
  environment?: string;
  /** Organisation id (WARDEN_ORG_ID). */
  orgId?: string;
  /** What a request's `policy_config` may do (WARDEN_REQUEST_POLICY): "replace" (default, SPEC §3), "tighten" (only stricter), "off" (refused). */
  requestPolicy?: "replace" | "tighten" | "off";
  /** WARDEN_ENCRYPT_KEYS: keys of the `encrypt` action (reversible tokens), "kid:base64key" entries (32 or 64 bytes), the first active. Required by a policy that encrypts. */
  encryptKeys?: string | string[];
  /** WARDEN_DETOKENIZE_KEYS for `handle`: the API keys that may call /api/v1/detokenize (each must be one of apiKeys). */
  detokenizeKeys?: string | string[];
  /** Per-user budgets for `run` and `handle` (requests with a `user_id`): "memory" (this isolate only) or a shared store. Unset: budgets off. */
  budgetStore?: "memory" | BudgetLedgerStore;
  /** BUDGET_DEFAULT_LIMIT: monthly limit in USD of users without an explicit one (default 10). */
  budgetDefaultLimit?: number;
  /**
   * The person detector's name tables: the bytes of `warden-names.bin` (shipped next to the .wasm;
   * `await loadNameTables()` reads it). Required by a policy with `detect_extra: [person]`, unused otherwise.
   */
  nameTables?: Uint8Array | ArrayBuffer;
  /** Called with each `decision.v1` event (no raw text) after `run` or `handle` decided; not awaited, errors ignored. */
  onDecision?: (event: DecisionEvent) => unknown;
}

/**
 * A budget store shared by isolates: keeps each user's ledger (opaque JSON text) with a version,
 * and replaces it only if the version is unchanged. Warden applies the budget rule itself and
 * retries when another isolate wrote in between, so a store that is atomic per key never overspends.
 */
export interface BudgetLedgerStore {
  /** The user's ledger text (null: none yet) and its version (any JSON value; null when none). */
  get(user: string): Promise<{ value: string | null; version: unknown }>;
  /** Stores `value` if the stored version is still `version`; resolves to whether it did. */
  compareAndSet(user: string, version: unknown, value: string): Promise<boolean>;
}

/** The `decision.v1` event (the webhook body, docs/SPEC.md) handed to `onDecision`. */
export interface DecisionEvent {
  type: "INGEST";
  schema: "decision.v1";
  idempotencyKey: string;
  data: { decision: Decision; direction: "ingress" | "egress"; policyId: PolicyId; reasons: string[]; correlationId: string | null; [field: string]: unknown };
  [field: string]: unknown;
}

export type Decision = "allow" | "deny" | "transform" | "confirm";
export type PolicyId = "deny-exec" | "tool-access" | "defaults" | "net-redact-regex" | "strict-fallback" | "on-error" | "detokenize";

/** Detokenize request: exactly one of raw_text and payload. */
export interface DetokenizeRequest {
  raw_text?: string;
  payload?: unknown;
  /** Restore only these PII types; tokens of other types are kept ("type_not_allowed"). */
  types?: string[];
  corr_id?: string;
}

/** Why a token was left as it is. */
export type KeptReason = "unknown_key_id" | "tampered" | "malformed" | "type_not_allowed" | "limit_reached";

/** Detokenize response, as in the Warden HTTP API. */
export interface DetokenizeResponse {
  raw_text?: string;
  payload?: unknown;
  restored: number;
  kept: number;
  /** Restored tokens per PII type. */
  types: Record<string, number>;
  /** Restored tokens per key id. */
  key_ids: Record<string, number>;
  /** "token.restored:PII:<type>", "token.kept:<reason>". */
  reasons: string[];
  /** The first 100 kept tokens and why. */
  kept_tokens: { token: string; reason: KeptReason }[];
  ts: number;
}

/** Precheck / postcheck request, as in the Warden HTTP API. */
export interface CheckRequest {
  tool: string;
  raw_text: string;
  scope?: string;
  corr_id?: string;
  user_id?: string;
  tags?: string[];
  policy_config?: object;
  tool_config?: object;
}

/** Precheck / postcheck response, as in the Warden HTTP API. */
export interface CheckResponse {
  decision: Decision;
  /** The text to forward; null on deny. */
  raw_text_out: string | null;
  reasons: string[];
  policy_id: PolicyId;
  /** Unix seconds. */
  ts: number;
  budget_status?: object;
  budget_info?: object;
  /** Set when on_error decided. */
  error?: { code: string; message: string };
}

/** One redacted value; `start`/`end` are Unicode scalar (char) offsets: `Array.from(text).slice(start, end)`. */
export interface RedactMatch { type: string; start: number; end: number }

/** Redact response, as in the Warden HTTP API. */
export interface RedactResponse { redacted: string; matches: RedactMatch[] }

/** Evaluate (JSON mode) request, as in the Warden HTTP API. */
export interface EvaluateRequest {
  payload: unknown;
  agent_id: string;
  tool?: string;
  direction?: "ingress" | "egress";
  scope?: string;
  policy_config?: object;
  corr_id?: string;
  user_id?: string;
}

/** The decision in the Tork guide's words: deny and confirm are "block", transform is "modify". */
export type TorkDecision = "allow" | "block" | "modify";

/** Evaluate (JSON mode) response, as in the Warden HTTP API. */
export interface EvaluateResponse {
  decision: Decision;
  tork_decision: TorkDecision;
  reasons: string[];
  violations: string[];
  /** The payload with every string leaf transformed; null on deny. */
  modified_payload: unknown;
  /** `redacted`: the value was replaced (redacted or tokenized) in `modified_payload`. */
  pii_found: { type: string; action: string; redacted: boolean }[];
  policy_id: PolicyId;
  ts: number;
  error?: { code: string; message: string };
  budget_status?: object;
  budget_info?: object;
}

/** What `handle` answers: an HTTP response to turn into a `Response`. */
export interface HttpResult { status: number; headers: [string, string][]; body: string }

/** Thrown for invalid options and requests; mirrors the HTTP error body. */
export interface WardenError extends Error {
  /** e.g. "invalid_options", "invalid_request", "invalid_json". */
  code: string;
  /** The HTTP status the same request gets from the server (400, 422...). */
  status: number;
  /** The offending field, when one is to blame. */
  field?: string;
}
"#;

/// A JS `Error` named `WardenError` with `code`, `status` and (optionally) `field`.
fn js_error(message: &str, code: &str, status: u16, field: Option<&str>) -> JsValue {
    let e = JsError::new(message);
    e.set_name("WardenError");
    // Setting a property on a fresh Error object cannot fail; ignore the Result regardless.
    let _ = Reflect::set(&e, &JsValue::from_str("code"), &JsValue::from_str(code));
    let _ = Reflect::set(&e, &JsValue::from_str("status"), &JsValue::from(status));
    if let Some(f) = field {
        let _ = Reflect::set(&e, &JsValue::from_str("field"), &JsValue::from_str(f));
    }
    e.into()
}

fn api_error(op: &str, e: &ApiError) -> JsValue {
    let message = match &e.field {
        Some(f) => format!("Warden.{op}: {} (field `{f}`)", e.message),
        None => format!("Warden.{op}: {}", e.message),
    };
    js_error(&message, e.code.as_str(), e.status(), e.field.as_deref())
}

/// A JS value as JSON; `undefined`, functions, symbols, BigInts and cycles are client errors.
fn to_json(op: &str, what: &str, v: &JsValue) -> Result<Value, JsValue> {
    let bad = |detail: String| js_error(&format!("Warden.{op}: {what} {detail}"), "invalid_request", 422, None);
    if v.is_undefined() {
        return Err(bad(String::from("is required")));
    }
    let text = JSON::stringify(v).map_err(|e| {
        let why = e.dyn_ref::<JsError>().map(|e| String::from(e.message())).unwrap_or_default();
        bad(format!("cannot be converted to JSON: {why}"))
    })?;
    let text = text.as_string().ok_or_else(|| bad(String::from("cannot be converted to JSON")))?;
    serde_json::from_str(&text).map_err(|e| bad(format!("is not valid JSON: {e}")))
}

/// A Rust value as a plain JS object (via JSON, the HTTP wire format).
fn to_js<T: serde::Serialize>(op: &str, v: &T) -> Result<JsValue, JsValue> {
    let text = serde_json::to_string(v)
        .map_err(|e| js_error(&format!("Warden.{op}: cannot encode the response: {e}"), "internal", 500, None))?;
    JSON::parse(&text)
}

/// The fields of a check request read straight from a plain JS object, without a JSON round
/// trip: only when every key is one of these and has the expected type. Anything else
/// (`policy_config`, `tool_config`, a wrong type) takes the JSON path, whose errors name the
/// field exactly as the HTTP API does.
fn fast_request(v: &JsValue) -> Option<CheckRequest> {
    let obj = v.dyn_ref::<js_sys::Object>().filter(|_| !js_sys::Array::is_array(v))?;
    let mut req = CheckRequest::default();
    let mut has_text = false;
    for key in js_sys::Object::keys(obj).iter() {
        let key = key.as_string()?;
        let value = Reflect::get(obj, &JsValue::from_str(&key)).ok()?;
        match key.as_str() {
            "tool" => req.tool = value.as_string()?,
            "raw_text" => {
                req.raw_text = value.as_string()?;
                has_text = true;
            }
            "scope" => req.scope = value.as_string()?,
            "corr_id" | "user_id" if value.is_null() || value.is_undefined() => {}
            "corr_id" => req.corr_id = Some(value.as_string()?),
            "user_id" => req.user_id = Some(value.as_string()?),
            "tags" => {
                let tags = value.dyn_ref::<js_sys::Array>()?;
                req.tags = tags.iter().map(|t| t.as_string()).collect::<Option<Vec<_>>>()?;
            }
            _ => return None,
        }
    }
    (has_text && !req.tool.is_empty()).then_some(req)
}

/// A check response as a plain JS object built field by field (no `JSON.parse`): the common
/// case without budget fields or an `on_error` detail; `None` sends the rest through JSON.
fn fast_response(resp: &CheckResponse) -> Option<JsValue> {
    if resp.error.is_some() || resp.budget_status.is_some() || resp.budget_info.is_some() {
        return None;
    }
    let obj = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| Reflect::set(&obj, &JsValue::from_str(k), v).ok();
    set("decision", &JsValue::from_str(resp.decision.name()))?;
    let out = resp.raw_text_out.as_deref().map_or(JsValue::NULL, JsValue::from_str);
    set("raw_text_out", &out)?;
    let reasons: js_sys::Array = resp.reasons.iter().map(|r| JsValue::from_str(&r.to_string())).collect();
    set("reasons", &reasons)?;
    set("policy_id", &JsValue::from_str(resp.policy_id.name()))?;
    // Unix seconds fit an f64 exactly.
    #[allow(clippy::cast_precision_loss)]
    set("ts", &JsValue::from_f64(resp.ts as f64))?;
    Some(obj.into())
}

/// The decisions in the order of the JS wrapper's `DECISIONS` table (js/warden.js).
const DECISION_CODES: [Decision; 4] = [Decision::Allow, Decision::Deny, Decision::Transform, Decision::Confirm];
/// The policy ids in the order of the JS wrapper's `POLICY_IDS` table.
const POLICY_NAMES: [&str; 6] =
    ["deny-exec", "tool-access", "defaults", "net-redact-regex", "strict-fallback", "on-error"];
/// `raw_text_out` states in [`Warden::check_fields`]'s code.
const TEXT_NULL: u32 = 0;
const TEXT_UNCHANGED: u32 = 1;
const TEXT_CHANGED: u32 = 2;

/// `__check`'s `mode` bits (js/warden.js): postcheck, and number the reason set.
const MODE_EGRESS: u32 = 1;
const MODE_REASONS: u32 = 2;

/// Unix time the timestamp in [`Warden::check_fields`]'s code counts from (2020-09-13), so that
/// it leaves room for the reason set.
const TS_BASE: i64 = 1_600_000_000;
/// Reason sets a code can name ([`ReasonSets`]): 13 bits, 0 meaning "read `__lastReasons`".
const REASON_SETS: u64 = 1 << 13;

/// A check response in one number for [`Warden::check_fields`]: `((ts − TS_BASE) × 2^13 +
/// reason set) × 128 + policy × 16 + text state × 4 + decision`, exact in an f64 (below 2^53)
/// until the year 2292; `None` when the response has more than these (budget fields, an
/// `on_error` detail) or is out of range.
fn response_code(resp: &CheckResponse, raw_text: &str, reason_set: u32) -> Option<f64> {
    let decision = DECISION_CODES.iter().position(|d| *d == resp.decision)?;
    let policy = POLICY_NAMES.iter().position(|p| *p == resp.policy_id.name())?;
    if resp.error.is_some() || resp.budget_status.is_some() || resp.budget_info.is_some() {
        return None;
    }
    let text = match resp.raw_text_out.as_deref() {
        None => TEXT_NULL,
        Some(out) if out == raw_text => TEXT_UNCHANGED,
        Some(_) => TEXT_CHANGED,
    };
    let ts = u64::try_from(resp.ts.checked_sub(TS_BASE)?).ok().filter(|ts| *ts < 1 << 33)?;
    let low = u64::try_from(policy * 16 + decision).ok()? + u64::from(text * 4);
    let set = u64::from(reason_set).min(REASON_SETS - 1);
    // Exact: below 2^53.
    #[allow(clippy::cast_precision_loss)]
    Some(((ts * REASON_SETS + set) * 128 + low) as f64)
}

/// Reasons as one string: each is its length in UTF-16 code units, `:`, and the reason, so the
/// JS side splits them with `slice` whatever characters a reason holds (tool names may hold any).
fn packed_reasons(reasons: &[Reason]) -> String {
    let mut out = String::new();
    for reason in reasons {
        let text = reason.to_string();
        out.push_str(&text.encode_utf16().count().to_string());
        out.push(':');
        out.push_str(&text);
    }
    out
}

/// The reason lists the object API has answered, numbered from 1, so that a response's
/// reasons cross the boundary as a number inside [`response_code`] and the JS wrapper reuses the
/// array it already has (a policy's reason lists come from a small set: formatting, copying and
/// parsing them per call was most of what the full object cost over `precheckText`). Bounded:
/// when full, new lists cross as text (`__lastReasons`).
#[derive(Default)]
struct ReasonSets {
    ids: std::collections::HashMap<Vec<Reason>, u32, core::hash::BuildHasherDefault<Fnv>>,
    sets: Vec<Vec<Reason>>,
    /// The number last answered: checked first, as consecutive requests often end alike.
    last: u32,
}

impl ReasonSets {
    /// The number of `reasons` (1 and up), or 0 when the table is full.
    fn id(&mut self, reasons: &[Reason]) -> u32 {
        let last = self.last.checked_sub(1).and_then(|i| self.sets.get(i as usize));
        if last.is_some_and(|set| set.as_slice() == reasons) {
            return self.last;
        }
        if let Some(id) = self.ids.get(reasons) {
            self.last = *id;
            return *id;
        }
        let Some(id) = u32::try_from(self.sets.len() + 1).ok().filter(|id| u64::from(*id) < REASON_SETS) else {
            return 0;
        };
        self.ids.insert(reasons.to_vec(), id);
        self.sets.push(reasons.to_vec());
        self.last = id;
        id
    }
}

/// FNV-1a for the reason-set table: its keys are short, and the table is bounded
/// ([`REASON_SETS`]), so even keys chosen to collide (tool names) cost bounded time per call;
/// SipHash's cost would buy nothing here.
#[derive(Default)]
struct Fnv(u64);

impl core::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let start = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        self.0 = bytes.iter().fold(start, |h, &c| (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3));
    }
}

/// Warden, configured once (policy parsed, detector built) and reused for every call.
#[wasm_bindgen]
pub struct Warden {
    core: Core,
    /// The last response of [`Warden::check_fields`], read by the `__last*` methods.
    last: RefCell<Option<CheckResponse>>,
    reason_sets: RefCell<ReasonSets>,
}

#[wasm_bindgen]
impl Warden {
    /// `new Warden({ policy, piiTokenSalt, onError, ... })`; throws a `WardenError` (code
    /// `invalid_options`) naming the bad option or policy field.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "WardenOptions")] options: Option<JsValue>,
    ) -> Result<Warden, JsValue> {
        let options = options.filter(|o| !o.is_undefined() && !o.is_null());
        let (options, hooks) = match options {
            None => (Value::Null, Hooks::default()),
            Some(options) => {
                let (plain, hooks) = take_hooks(&options)?;
                let json = to_json("constructor", "options", &plain).map_err(|_| {
                    js_error("new Warden: options must be a JSON-compatible object", "invalid_options", 400, None)
                })?;
                (json, hooks)
            }
        };
        let core = Core::with_hooks(options, Arc::new(JsClock), hooks).map_err(|m| {
            // The one error a caller answers by loading an asset (`loadNameTables`): say so in `field`.
            let field = m.contains("warden-names.bin").then_some("nameTables");
            js_error(&format!("new Warden: {m}"), "invalid_options", 400, field)
        })?;
        Ok(Warden { core, last: RefCell::new(None), reason_sets: RefCell::new(ReasonSets::default()) })
    }

    /// Precheck (ingress): the response of `POST /api/v1/precheck`.
    #[wasm_bindgen(unchecked_return_type = "CheckResponse")]
    pub fn precheck(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CheckRequest")] request: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.check("precheck", &request, Direction::Ingress)
    }

    /// Postcheck (egress): the response of `POST /api/v1/postcheck`.
    #[wasm_bindgen(unchecked_return_type = "CheckResponse")]
    pub fn postcheck(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CheckRequest")] request: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.check("postcheck", &request, Direction::Egress)
    }

    fn check(&self, op: &str, request: &JsValue, direction: Direction) -> Result<JsValue, JsValue> {
        if let Some(req) = fast_request(request) {
            let resp = self.core.check_request(&req, direction);
            if let Some(js) = fast_response(&resp) {
                return Ok(js);
            }
            return to_js(op, &resp);
        }
        let body = to_json(op, "request", request)?;
        let resp = self.core.check(body, direction).map_err(|e| api_error(op, &e))?;
        to_js(op, &resp)
    }

    /// The fast path of the JS wrapper's `precheck` / `postcheck` / `precheckText` for a
    /// request with only `tool`, `raw_text`, `scope`, `corr_id` and `user_id` (the wrapper
    /// checks the types): the fields arrive as strings (`raw_text` as UTF-8 bytes), the answer is one number (see
    /// [`response_code`]; with [`MODE_REASONS`] its reason set is numbered, else 0), or -1 when
    /// the response must be read whole with `__lastJson`. `mode`: [`MODE_EGRESS`] (postcheck)
    /// and [`MODE_REASONS`] (the caller builds the full object).
    /// Internal: use `precheck`, `postcheck`, `precheckText` or `postcheckText`.
    #[wasm_bindgen(js_name = "__check")]
    pub fn check_fields(
        &self,
        mode: u32,
        tool: String,
        raw_text: Vec<u8>,
        scope: Option<String>,
        corr_id: Option<String>,
        user_id: Option<String>,
    ) -> f64 {
        // UTF-8 from `TextEncoder` (a memory copy, where a JS string argument is re-encoded
        // character by character); valid by construction, so the lossy branch never copies.
        let raw_text =
            String::from_utf8(raw_text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let req = CheckRequest {
            tool,
            raw_text,
            scope: scope.unwrap_or_default(),
            corr_id,
            user_id,
            ..CheckRequest::default()
        };
        let direction = if mode & MODE_EGRESS != 0 { Direction::Egress } else { Direction::Ingress };
        let resp = self.core.check_request(&req, direction);
        let set = if mode & MODE_REASONS != 0 { self.reason_sets.borrow_mut().id(&resp.reasons) } else { 0 };
        let code = response_code(&resp, &req.raw_text, set).unwrap_or(-1.0);
        *self.last.borrow_mut() = Some(resp);
        code
    }

    /// The `raw_text_out` of the last `__check` (taken: the text is not kept). Internal.
    #[wasm_bindgen(js_name = "__lastText")]
    pub fn last_text(&self) -> Option<String> {
        self.last.borrow_mut().as_mut().and_then(|r| r.raw_text_out.take())
    }

    /// The reasons of the last `__check`, packed (see [`packed_reasons`]). Internal.
    #[wasm_bindgen(js_name = "__lastReasons")]
    pub fn last_reasons(&self) -> String {
        self.last.borrow().as_ref().map(|r| packed_reasons(&r.reasons)).unwrap_or_default()
    }

    /// The reasons of reason set `id` of a `__check` code, packed as `__lastReasons` packs
    /// them (empty for an unknown id). Internal.
    #[wasm_bindgen(js_name = "__reasonSet")]
    pub fn reason_set(&self, id: u32) -> String {
        let table = self.reason_sets.borrow();
        let set = id.checked_sub(1).and_then(|i| table.sets.get(i as usize));
        set.map(|reasons| packed_reasons(reasons)).unwrap_or_default()
    }

    /// The whole last `__check` response as JSON text (taken). Internal.
    #[wasm_bindgen(js_name = "__lastJson")]
    pub fn last_json(&self) -> Result<String, JsValue> {
        let resp = self.last.borrow_mut().take();
        serde_json::to_string(&resp)
            .map_err(|e| js_error(&format!("Warden.precheck: cannot encode the response: {e}"), "internal", 500, None))
    }

    /// Runs `operation` (`precheck`, `postcheck`, `evaluate`, `redact` or `batch`) through the
    /// whole service, as the HTTP route does: budgets (`budgetStore`) and `onDecision` apply.
    /// Resolves to the HTTP response body; rejects with a `WardenError` as the route answers 4xx.
    #[wasm_bindgen(unchecked_return_type = "Promise<any>")]
    pub fn run(
        &self,
        #[wasm_bindgen(unchecked_param_type = "\"precheck\" | \"postcheck\" | \"evaluate\" | \"redact\" | \"batch\"")]
        operation: String,
        request: JsValue,
    ) -> js_sys::Promise {
        let op = Operation::from_action(&operation)
            .filter(|op| !matches!(op, Operation::Health | Operation::Ready))
            .ok_or_else(|| {
                js_error(
                    &format!(
                        "Warden.run: unknown operation `{operation}` (precheck, postcheck, evaluate, redact, batch)"
                    ),
                    "invalid_request",
                    400,
                    Some("operation"),
                )
            });
        let prepared = op.and_then(|op| to_json("run", "request", &request).map(|body| (op, body)));
        let service = Arc::clone(self.core.service());
        wasm_bindgen_futures::future_to_promise(async move {
            let (op, body) = prepared?;
            let name = op.name();
            let out = Core::run(service, op, body).await.map_err(|e| api_error(name, &e))?;
            to_js(name, &out)
        })
    }

    /// JSON mode (every string leaf of `payload` governed): the response of `POST /api/v1/evaluate`.
    #[wasm_bindgen(unchecked_return_type = "EvaluateResponse")]
    pub fn evaluate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "EvaluateRequest")] request: JsValue,
    ) -> Result<JsValue, JsValue> {
        let body = to_json("evaluate", "request", &request)?;
        let resp = self.core.evaluate(body).map_err(|e| api_error("evaluate", &e))?;
        to_js("evaluate", &resp)
    }

    /// Restores reversible tokens (`encrypt` action) in `{raw_text}` or `{payload}`: the
    /// response of `POST /api/v1/detokenize`. The instance holds the keys, so no API key is
    /// asked for; throws a `WardenError` (status 403) when it has no `encryptKeys`.
    #[wasm_bindgen(unchecked_return_type = "DetokenizeResponse")]
    pub fn detokenize(
        &self,
        #[wasm_bindgen(unchecked_param_type = "DetokenizeRequest")] request: JsValue,
    ) -> Result<JsValue, JsValue> {
        let body = to_json("detokenize", "request", &request)?;
        let resp = self.core.detokenize(body).map_err(|e| api_error("detokenize", &e))?;
        to_js("detokenize", &resp)
    }

    /// Redaction only: the response of `POST /api/v1/redact` for `{text}`.
    #[wasm_bindgen(unchecked_return_type = "RedactResponse")]
    pub fn redact(&self, #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue) -> Result<JsValue, JsValue> {
        let Some(text) = text.as_string() else {
            let kind = text.js_typeof().as_string().unwrap_or_default();
            return Err(js_error(
                &format!("Warden.redact: text must be a string, not {kind}"),
                "invalid_request",
                422,
                Some("text"),
            ));
        };
        to_js("redact", &self.core.redact(&text))
    }

    /// Serves one HTTP request with the router of the native server (every route of the HTTP
    /// API, API keys, body limit, 4xx JSON errors). `headers` is an array of `[name, value]` pairs
    /// or a plain object; `body` a string or bytes. Resolves to `{status, headers, body}`.
    #[wasm_bindgen(unchecked_return_type = "Promise<HttpResult>")]
    pub fn handle(
        &self,
        method: String,
        path: String,
        #[wasm_bindgen(unchecked_param_type = "[string, string][] | Record<string, string> | undefined")]
        headers: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array | undefined")] body: JsValue,
    ) -> js_sys::Promise {
        let router = self.core.router();
        let prepared = header_pairs(&headers).and_then(|h| body_bytes(&body).map(|b| (h, b)));
        wasm_bindgen_futures::future_to_promise(async move {
            let (headers, body) = prepared?;
            let out: HttpResult = crate::api::handle(router, &method, &path, &headers, body).await;
            to_js("handle", &out)
        })
    }
}

/// Takes `budgetStore` and `onDecision` out of the options (they are not JSON): returns a
/// copy of the options without them, and the hooks they make.
fn take_hooks(options: &JsValue) -> Result<(JsValue, Hooks), JsValue> {
    let bad = |field: &str, what: &str| {
        js_error(&format!("new Warden: invalid option `{field}`: {what}"), "invalid_options", 400, Some(field))
    };
    let Some(obj) = options.dyn_ref::<js_sys::Object>().filter(|_| !js_sys::Array::is_array(options)) else {
        return Ok((options.clone(), Hooks::default()));
    };
    let plain = js_sys::Object::assign(&js_sys::Object::new(), obj);
    let mut hooks = Hooks::default();
    let store = Reflect::get(obj, &JsValue::from_str("budgetStore")).unwrap_or(JsValue::UNDEFINED);
    if !store.is_undefined() && !store.is_null() {
        if store.as_string().as_deref() == Some("memory") {
            hooks.budgets = Some(Box::new(|limit| Arc::new(MemoryBudgetStore::new(limit)) as Arc<dyn BudgetStore>));
        } else if is_ledger_store(&store) {
            hooks.budgets =
                Some(Box::new(move |limit| Arc::new(JsLedgerStore::new(store, limit)) as Arc<dyn BudgetStore>));
        } else {
            return Err(bad("budgetStore", "expected \"memory\" or an object with get and compareAndSet methods"));
        }
    }
    let hook = Reflect::get(obj, &JsValue::from_str("onDecision")).unwrap_or(JsValue::UNDEFINED);
    if !hook.is_undefined() && !hook.is_null() {
        let f = hook.dyn_into::<js_sys::Function>().map_err(|_| bad("onDecision", "expected a function"))?;
        hooks.observers.push(Box::new(move |events| {
            Arc::new(JsDecisionHook::new(f, EventBuilder::new(events.event_options()))) as Arc<dyn Observer>
        }));
    }
    let tables = Reflect::get(obj, &JsValue::from_str("nameTables")).unwrap_or(JsValue::UNDEFINED);
    if !tables.is_undefined() && !tables.is_null() {
        let bytes = if let Some(b) = tables.dyn_ref::<Uint8Array>() {
            b.clone()
        } else if tables.is_instance_of::<js_sys::ArrayBuffer>() {
            Uint8Array::new(&tables)
        } else {
            return Err(bad("nameTables", "expected the bytes of warden-names.bin (a Uint8Array or ArrayBuffer)"));
        };
        if bytes.length() as usize > warden_engine::MAX_NAMES_ASSET {
            return Err(bad("nameTables", "larger than 4 MiB: not warden-names.bin"));
        }
        hooks.names = Some(bytes.to_vec());
    }
    for key in ["budgetStore", "onDecision", "nameTables"] {
        let _ = Reflect::delete_property(&plain, &JsValue::from_str(key));
    }
    Ok((plain.into(), hooks))
}

fn header_pairs(headers: &JsValue) -> Result<Vec<(String, String)>, JsValue> {
    if headers.is_undefined() || headers.is_null() {
        return Ok(Vec::new());
    }
    let bad = || {
        js_error(
            "Warden.handle: headers must be an array of [name, value] string pairs or an object of strings",
            "invalid_request",
            400,
            Some("headers"),
        )
    };
    match to_json("handle", "headers", headers).map_err(|_| bad())? {
        Value::Array(items) => items
            .into_iter()
            .map(|pair| match pair {
                Value::Array(kv) => match <[Value; 2]>::try_from(kv) {
                    Ok([Value::String(k), Value::String(v)]) => Ok((k, v)),
                    _ => Err(bad()),
                },
                _ => Err(bad()),
            })
            .collect(),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(v) => Ok((k, v)),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

fn body_bytes(body: &JsValue) -> Result<Vec<u8>, JsValue> {
    if body.is_undefined() || body.is_null() {
        return Ok(Vec::new());
    }
    if let Some(s) = body.as_string() {
        return Ok(s.into_bytes());
    }
    if let Some(bytes) = body.dyn_ref::<Uint8Array>() {
        return Ok(bytes.to_vec());
    }
    Err(js_error("Warden.handle: body must be a string or a Uint8Array", "invalid_request", 400, Some("body")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use warden_engine::{PiiKind, PiiType};

    #[test]
    fn reason_sets_are_numbered_once_and_bounded() {
        let mut sets = ReasonSets::default();
        let a = [Reason::ToolAccessDeny];
        let b = [Reason::ToolAccessConfirm, Reason::StrictPiiBlocked(PiiType::Builtin(PiiKind::UsSsn))];
        assert_eq!((sets.id(&a), sets.id(&b), sets.id(&a), sets.id(&[])), (1, 2, 1, 3));
        assert_eq!(sets.id(&b), 2);
        // Full: new lists get 0 (they cross as text), known ones keep their number.
        for i in 0..REASON_SETS {
            sets.id(&[Reason::BlockedTool(i.to_string())]);
        }
        assert_eq!(sets.id(&[Reason::BlockedTool(String::from("new"))]), 0);
        assert_eq!(sets.id(&a), 1);
        assert_eq!(sets.sets.len() as u64, REASON_SETS - 1);
    }

    #[test]
    fn the_code_holds_every_field_exactly() {
        let resp = CheckResponse {
            decision: Decision::Transform,
            raw_text_out: Some(String::from("out")),
            reasons: Vec::new(),
            policy_id: warden_engine::PolicyId::Defaults,
            ts: 1_764_547_200,
            budget_status: None,
            budget_info: None,
            error: None,
        };
        let code = response_code(&resp, "in", 8191).unwrap() as u64;
        assert_eq!(code % 4, 2);
        assert_eq!((code / 4) % 4, u64::from(TEXT_CHANGED));
        assert_eq!(POLICY_NAMES[((code % 128) / 16) as usize], "defaults");
        assert_eq!((code / 128) % REASON_SETS, 8191);
        assert_eq!(code / 128 / REASON_SETS, 1_764_547_200 - 1_600_000_000);
        // Before the base or beyond 2^33 s after it: the JSON path.
        assert!(response_code(&CheckResponse { ts: 1_500_000_000, ..resp.clone() }, "in", 1).is_none());
        assert!(response_code(&CheckResponse { ts: TS_BASE + (1 << 33), ..resp }, "in", 1).is_none());
    }
}
