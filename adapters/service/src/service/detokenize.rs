//! `POST /api/v1/detokenize` (and the envelope action `detokenize`): restores reversible tokens
//! (`encrypt` action, SPEC §5a) in a text or a JSON payload.
//!
//! Only callers presenting an API key listed in `WARDEN_DETOKENIZE_KEYS` may restore: with auth
//! off, over a message channel or with any other key the answer is 403. Every call refused (403)
//! or answered produces one record for the audit line (a malformed body, 4xx before anything is
//! restored, does not): counts per type, per key id and per kept
//! reason, the caller's key fingerprint — never a restored value (the record's output is empty).

use super::pipeline::{to_json, IdentityFields, Outcome, Subject};
use super::{RequestMeta, Service};
use crate::error::{from_value, ApiError};
use crate::record::pii_counts;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use warden_engine::{
    Decision, Direction, ErrorCode, KeptReason, Keyring, PolicyId, Reason, RestoreOptions, RestoreReport,
    DEFAULT_MAX_TOKENS,
};

/// Most entries in a request's `types`.
const MAX_TYPES: usize = 64;

/// A detokenize request: exactly one of `raw_text` and `payload`.
#[derive(Debug, Deserialize)]
struct DetokenizeRequest {
    #[serde(default)]
    raw_text: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    /// Restore only these PII types (others are kept, `type_not_allowed`).
    #[serde(default)]
    types: Option<Vec<String>>,
    #[serde(default)]
    corr_id: Option<String>,
}

impl Service {
    pub(super) async fn detokenize(&self, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        let (now_ms, t0) = self.now();
        let fingerprint = meta.api_key.as_deref().map(crate::auth::key_fingerprint);
        let allowed = meta.api_key.as_deref().is_some_and(|k| self.config.detokenize_keys.verify(k));
        let keyring = self.config.keyring.as_ref().filter(|_| allowed);
        let Some(keyring) = keyring else {
            let reason = match (&meta.api_key, self.config.detokenize_keys.is_enabled()) {
                (None, _) => {
                    "detokenize needs an API key listed in WARDEN_DETOKENIZE_KEYS (auth is off or none was sent)"
                }
                (Some(_), false) => "detokenize is not enabled on this server (WARDEN_DETOKENIZE_KEYS)",
                (Some(_), true) => "this API key may not detokenize (WARDEN_DETOKENIZE_KEYS)",
            };
            self.audit_detokenize(None, &RestoreReport::default(), fingerprint, t0, now_ms, true);
            return Err(ApiError::new(ErrorCode::Forbidden, reason));
        };
        self.rate_limit(None, meta).await?;
        self.restore(keyring, body, fingerprint, t0, now_ms)
    }

    /// Detokenize for an embedder that holds the keys itself (the wasm package's
    /// `detokenize` method runs in the process that configured them): no API key is asked
    /// for, the call is audited all the same. 403 when the service has no token keys.
    pub fn detokenize_in_process(&self, body: Value) -> Result<Value, ApiError> {
        let (now_ms, t0) = self.now();
        let Some(keyring) = self.config.keyring.as_ref() else {
            self.audit_detokenize(None, &RestoreReport::default(), None, t0, now_ms, true);
            return Err(ApiError::new(ErrorCode::Forbidden, "no reversible-token keys are configured (encryptKeys)"));
        };
        self.restore(keyring, body, None, t0, now_ms)
    }

    fn restore(
        &self,
        keyring: &Keyring,
        body: Value,
        fingerprint: Option<String>,
        t0: u64,
        now_ms: i64,
    ) -> Result<Value, ApiError> {
        let req: DetokenizeRequest = from_value(body)?;
        IdentityFields {
            tool: None,
            scope: None,
            user_id: None,
            corr_id: req.corr_id.as_deref(),
            agent_id: None,
            tags: &[],
        }
        .check()?;
        let types = match req.types {
            Some(t) if t.len() > MAX_TYPES => {
                return Err(ApiError::invalid_request(format!("at most {MAX_TYPES} types")).with_field("types"))
            }
            Some(t) => {
                if let Some(i) = t.iter().position(|ty| !valid_type(ty)) {
                    return Err(ApiError::invalid_request("a type is 1-64 characters of a-z, 0-9 and _")
                        .with_field(format!("types[{i}]")));
                }
                Some(t)
            }
            None => None,
        };
        let options = RestoreOptions { types, max_tokens: DEFAULT_MAX_TOKENS };
        let (mut answer, report) = match (req.raw_text, req.payload) {
            (Some(text), None) => {
                let restored = keyring.restore_text(&text, &options);
                (json!({"raw_text": restored.text}), restored.report)
            }
            (None, Some(payload)) => {
                let (restored, report) = keyring.restore_json(&payload, &options);
                (json!({"payload": restored}), report)
            }
            (Some(_), Some(_)) => {
                return Err(
                    ApiError::invalid_request("send either `raw_text` or `payload`, not both").with_field("payload")
                )
            }
            (None, None) => {
                return Err(ApiError::invalid_request("missing field `raw_text` (or `payload`)").with_field("raw_text"))
            }
        };
        let reasons = reasons(&report);
        if let Value::Object(map) = &mut answer {
            map.insert("restored".into(), json!(report.restored));
            map.insert("kept".into(), json!(report.kept));
            map.insert("types".into(), counts(report.types.iter().map(|(t, n)| (t.as_str(), *n))));
            map.insert("key_ids".into(), counts(report.key_ids.iter().map(|(k, n)| (k.as_str(), *n))));
            map.insert("reasons".into(), to_json(&reasons));
            map.insert("kept_tokens".into(), to_json(&report.kept_tokens));
            map.insert("ts".into(), json!(now_ms.div_euclid(1000)));
        }
        self.audit_detokenize(req.corr_id, &report, fingerprint, t0, now_ms, false);
        Ok(answer)
    }

    /// The one record of a detokenize call: no input, no output, only what was done.
    fn audit_detokenize(
        &self,
        corr_id: Option<String>,
        report: &RestoreReport,
        api_key: Option<String>,
        t0: u64,
        now_ms: i64,
        refused: bool,
    ) {
        let decision = match (refused, report.restored) {
            (true, _) => Decision::Deny,
            (false, 0) => Decision::Allow,
            (false, _) => Decision::Transform,
        };
        let reasons = if refused { vec![Reason::Error(ErrorCode::Forbidden)] } else { reasons(report) };
        let context = json!({
            "api_key": api_key,
            "restored": report.restored,
            "kept": report.kept,
            "key_ids": counts(report.key_ids.iter().map(|(k, n)| (k.as_str(), *n))),
        });
        let outcome = Outcome {
            decision,
            policy_id: PolicyId::Detokenize,
            reasons,
            // Restored values never reach a record (events may carry a record's output).
            raw_text_out: None,
            pii_counts: pii_counts(report.types.iter().flat_map(|(t, n)| core::iter::repeat_n(t.as_str(), *n))),
        };
        let subject = Subject {
            operation: "detokenize",
            direction: Direction::Egress,
            tool: String::new(),
            scope: String::new(),
            // The input is not kept either: a caller may mix tokens with other text.
            raw_text: String::new(),
            corr_id,
            tags: Vec::new(),
            user_id: None,
            context: Some(context.to_string()),
        };
        self.record(subject, outcome, t0, now_ms);
    }
}

/// `token.restored:PII:<type>` per restored type, then `token.kept:<reason>` per kept reason.
fn reasons(report: &RestoreReport) -> Vec<Reason> {
    let restored = report
        .types
        .iter()
        .filter_map(|(t, _)| {
            warden_engine::PiiKind::from_name(t).map(warden_engine::PiiType::Builtin).or_else(|| custom(t))
        })
        .map(Reason::TokenRestored);
    let kept = report.reasons.iter().map(|(r, _): &(KeptReason, usize)| Reason::TokenKept(*r));
    restored.chain(kept).collect()
}

fn custom(name: &str) -> Option<warden_engine::PiiType> {
    valid_type(name).then(|| warden_engine::PiiType::Custom(name.to_owned()))
}

fn valid_type(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn counts<'a>(items: impl Iterator<Item = (&'a str, usize)>) -> Value {
    Value::Object(items.map(|(k, n)| (k.to_owned(), json!(n))).collect::<Map<String, Value>>())
}

/// Adds the route, its schemas and the `detokenize` action to the OpenAPI document.
pub(crate) fn openapi(doc: &mut Value) {
    let request = json!({"type": "object", "properties": {
        "raw_text": {"type": "string", "description": "A text with reversible tokens (encpii.<kid>.<type>.<body>)"},
        "payload": {"description": "Or a JSON value: tokens in every string are restored (member names are left as they are)"},
        "types": {"type": "array", "maxItems": MAX_TYPES, "items": {"type": "string"}, "description": "Restore only these PII types"},
        "corr_id": {"type": "string"}},
        "description": "Exactly one of raw_text and payload"});
    let count_map = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    let response = json!({"type": "object", "required": ["restored", "kept", "types", "key_ids", "reasons", "kept_tokens", "ts"], "properties": {
        "raw_text": {"type": "string"}, "payload": {},
        "restored": {"type": "integer"}, "kept": {"type": "integer"},
        "types": count_map, "key_ids": count_map,
        "reasons": {"type": "array", "items": {"type": "string"}, "description": "token.restored:PII:<type>, token.kept:<reason>"},
        "kept_tokens": {"type": "array", "maxItems": warden_engine::MAX_LISTED, "items": {"type": "object", "properties": {
            "token": {"type": "string"},
            "reason": {"type": "string", "enum": KeptReason::ALL.map(KeptReason::name)}}}},
        "ts": {"type": "integer"}}});
    let error = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let path = json!({"post": {
        "summary": "Restore reversible tokens; only for API keys in WARDEN_DETOKENIZE_KEYS (403 otherwise, and with auth off)",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DetokenizeRequest"}}}},
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DetokenizeResponse"}}}},
            "400": error, "401": error, "403": error, "413": error, "422": error, "429": error}}});
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        schemas.insert("DetokenizeRequest".into(), request);
        schemas.insert("DetokenizeResponse".into(), response);
    }
    if let Some(actions) =
        doc.pointer_mut("/components/schemas/Invoke/properties/action/enum").and_then(Value::as_array_mut)
    {
        actions.push(json!("detokenize"));
    }
    if let Some(paths) = doc.pointer_mut("/paths").and_then(Value::as_object_mut) {
        paths.insert("/api/v1/detokenize".into(), path);
    }
}
