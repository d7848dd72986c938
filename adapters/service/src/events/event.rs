//! The `decision.v1` event in GovernsAI's `INGEST` shape, built from a [`DecisionRecord`].

use super::privacy::{HashKey, Scrubber};
use crate::record::DecisionRecord;
use hmac::Mac;
use serde_json::{json, Value};
use warden_engine::encode::hex_lower;
pub use warden_engine::encode::iso8601_utc_ms;

/// The event schema name.
pub const DECISION_SCHEMA: &str = "decision.v1";

/// Organisation id used when neither the record nor [`EventOptions`] names one.
pub const DEFAULT_ORG_ID: &str = "default";

/// `detectorSummary.confidence`. Warden's detectors are deterministic and every reported
/// value passed its validator (checksum, range, context word), so there is no probabilistic
/// score to report; the field exists for schema compatibility and is always 1.0.
pub const DETECTOR_CONFIDENCE: f64 = 1.0;

/// How events are built; everything else comes from the record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventOptions {
    /// The operator's opt-in to raw data in events (`EVENTS_INCLUDE_RAW_TEXT=true`): the input
    /// as `data.rawText`, the output as `data.rawTextOut`, and the caller's identifiers
    /// (`userId`, `correlationId`, `tool`, `scope`, `tags`) unscrubbed. When false `rawText`
    /// and `rawTextOut` are absent, not null, and every identifier has each PII value the
    /// built-in detector finds replaced by its placeholder. API keys are masked either way.
    pub include_raw_text: bool,
    /// Organisation id when the record has none (e.g. the `org` of the gateway URL).
    pub org_id: Option<String>,
    /// Channel override (e.g. the `...:decisions` channel of the gateway URL); by default
    /// `org:<orgId>:decisions`.
    pub channel: Option<String>,
    /// Key of `payloadHash` and `idempotencyKey` (from `PII_TOKEN_SALT`).
    pub hash_key: HashKey,
}

/// Builds `decision.v1` events. Holds the [`Scrubber`] (its PII detector is built once and
/// reused): provider API keys always become `<API_KEY>`, because API keys never appear in
/// events (SPEC §7), and without the raw-text opt-in no detected PII value appears at all.
#[derive(Clone, Debug)]
pub struct EventBuilder {
    options: EventOptions,
    scrubber: Scrubber,
}

impl EventBuilder {
    /// A builder with `options` (builds the detector: do it once, not per event).
    pub fn new(options: EventOptions) -> EventBuilder {
        let scrubber = Scrubber::new(options.hash_key.clone());
        EventBuilder { options, scrubber }
    }

    /// The options this builder uses.
    pub fn options(&self) -> &EventOptions {
        &self.options
    }

    /// The scrubber (hash key and detector) this builder uses, e.g. to build audit lines
    /// with the same key.
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// The event as a JSON value.
    pub fn event(&self, record: &DecisionRecord) -> Value {
        let options = &self.options;
        let raw = options.include_raw_text;
        // A caller-chosen string: verbatim (but for API keys) only when the operator opted in.
        let id = |text: &str| -> String {
            if raw {
                self.scrubber.scrub_api_keys(text).into_owned()
            } else {
                self.scrubber.scrub(text).into_owned()
            }
        };
        let org = record.org_id.as_deref().or(options.org_id.as_deref()).unwrap_or(DEFAULT_ORG_ID);
        let channel = options.channel.clone().unwrap_or_else(|| format!("org:{org}:decisions"));
        // Type names and reasons can come from a request's own policy: scrubbed like identifiers.
        let pii_detected: Vec<String> = record.pii_counts.iter().map(|(t, _)| id(t)).collect();
        let reasons: Vec<String> = record.reasons.iter().map(|r| id(&r.to_string())).collect();

        let mut data = json!({
            "orgId": org,
            "direction": record.direction.name(),
            "decision": record.decision.name(),
            "tool": id(&record.tool),
            "scope": id(&record.scope),
            "reasons": reasons,
            "detectorSummary": {
                "reasons": reasons,
                "confidence": DETECTOR_CONFIDENCE,
                "piiDetected": pii_detected,
            },
            "payloadHash": self.scrubber.payload_hash(&record.raw_text),
            "latencyMs": record.latency_ms,
            "correlationId": record.corr_id.as_deref().map(id),
            "tags": record.tags.iter().map(|t| id(t)).collect::<Vec<_>>(),
            "ts": iso8601_utc_ms(record.ts_unix_ms),
            "authentication": { "userId": record.user_id.as_deref().map(id) },
            "policyId": record.policy_id.name(),
        });
        if raw {
            if let Value::Object(fields) = &mut data {
                fields.insert("rawText".to_owned(), Value::String(id(&record.raw_text)));
                fields.insert("rawTextOut".to_owned(), record.raw_text_out.as_deref().map(id).into());
            }
        }
        json!({
            "type": "INGEST",
            "channel": channel,
            "schema": DECISION_SCHEMA,
            "idempotencyKey": idempotency_key(record, &options.hash_key),
            "data": data,
        })
    }

    /// The event as compact one-line JSON, ready to POST, send as a WebSocket text frame,
    /// or append to the DLQ.
    pub fn json(&self, record: &DecisionRecord) -> String {
        self.event(record).to_string()
    }
}

/// `hmac-sha256:<hex>` of the UTF-8 bytes of `text`, keyed with `key` (see
/// [`HashKey::payload_hash`]).
pub fn payload_hash(key: &HashKey, text: &str) -> String {
    key.payload_hash(text)
}

/// The event's `idempotencyKey`: hex HMAC-SHA256, keyed with `key`, over (schema, operation,
/// direction, tool, correlation id, payload hash, timestamp). A pure function of the record
/// and key, so a retried or replayed event keeps its key and receivers can deduplicate; keyed,
/// because its inputs include the caller's raw identifiers, which a plain hash would let a
/// reader confirm by guessing. The payload hash is included even when a correlation id is
/// present, so batch items that share a correlation id and a millisecond get distinct keys.
pub fn idempotency_key(record: &DecisionRecord, key: &HashKey) -> String {
    let hash = key.payload_hash(&record.raw_text);
    let ts = record.ts_unix_ms.to_string();
    let fields = [
        DECISION_SCHEMA,
        record.operation,
        record.direction.name(),
        record.tool.as_str(),
        record.corr_id.as_deref().unwrap_or(""),
        hash.as_str(),
        ts.as_str(),
    ];
    let mut mac = key.mac();
    for field in fields {
        // Length-prefixing keeps ("a|b", "c") and ("a", "b|c") from colliding.
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    hex_lower(&mac.finalize().into_bytes())
}
