//! The `decision.v1` event in GovernsAI's `INGEST` shape, built from a [`DecisionRecord`].

use crate::record::DecisionRecord;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use warden_engine::encode::hex_lower;
pub use warden_engine::encode::iso8601_utc_ms;
use warden_engine::{Detector, PiiKind};

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
    /// Include the input text as `data.rawText` (`EVENTS_INCLUDE_RAW_TEXT=true`).
    /// When false the field is absent, not null.
    pub include_raw_text: bool,
    /// Organisation id when the record has none (e.g. the `org` of the gateway URL).
    pub org_id: Option<String>,
    /// Channel override (e.g. the `...:decisions` channel of the gateway URL); by default
    /// `org:<orgId>:decisions`.
    pub channel: Option<String>,
}

/// Builds `decision.v1` events. Holds the PII detector (built once, reused) that masks
/// provider API keys: keys found in `rawText`/`rawTextOut` become `<API_KEY>` even when the
/// policy let them pass, because API keys never appear in events (SPEC §7).
#[derive(Clone, Debug)]
pub struct EventBuilder {
    options: EventOptions,
    detector: Detector,
}

impl EventBuilder {
    /// A builder with `options` (builds the detector: do it once, not per event).
    pub fn new(options: EventOptions) -> EventBuilder {
        EventBuilder { options, detector: Detector::new() }
    }

    /// The options this builder uses.
    pub fn options(&self) -> &EventOptions {
        &self.options
    }

    /// The event as a JSON value.
    pub fn event(&self, record: &DecisionRecord) -> Value {
        let options = &self.options;
        let org = record.org_id.as_deref().or(options.org_id.as_deref()).unwrap_or(DEFAULT_ORG_ID);
        let channel = options.channel.clone().unwrap_or_else(|| format!("org:{org}:decisions"));
        let pii_detected: Vec<&str> = record.pii_counts.iter().map(|(t, _)| t.as_str()).collect();

        let mut data = json!({
            "orgId": org,
            "direction": record.direction.name(),
            "decision": record.decision.name(),
            "tool": record.tool,
            "scope": record.scope,
            "rawTextOut": record.raw_text_out.as_deref().map(|text| self.scrub_api_keys(text)),
            "reasons": record.reasons,
            "detectorSummary": {
                "reasons": record.reasons,
                "confidence": DETECTOR_CONFIDENCE,
                "piiDetected": pii_detected,
            },
            "payloadHash": payload_hash(&record.raw_text),
            "latencyMs": record.latency_ms,
            "correlationId": record.corr_id,
            "tags": record.tags,
            "ts": iso8601_utc_ms(record.ts_unix_ms),
            "authentication": { "userId": record.user_id },
            "policyId": record.policy_id.name(),
        });
        if options.include_raw_text {
            if let Value::Object(fields) = &mut data {
                fields.insert("rawText".to_owned(), Value::String(self.scrub_api_keys(&record.raw_text).into_owned()));
            }
        }
        json!({
            "type": "INGEST",
            "channel": channel,
            "schema": DECISION_SCHEMA,
            "idempotencyKey": idempotency_key(record),
            "data": data,
        })
    }

    /// The event as compact one-line JSON, ready to POST, send as a WebSocket text frame,
    /// or append to the DLQ.
    pub fn json(&self, record: &DecisionRecord) -> String {
        self.event(record).to_string()
    }

    /// Replaces every provider API key the built-in detector finds with `<API_KEY>`.
    fn scrub_api_keys<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let keys: Vec<_> =
            self.detector.detect(text).into_iter().filter(|found| found.kind == PiiKind::ApiKey).collect();
        if keys.is_empty() {
            return Cow::Borrowed(text);
        }
        let placeholder = PiiKind::ApiKey.placeholder();
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for found in keys {
            match text.get(last..found.start) {
                Some(before) => out.push_str(before),
                // The detector guarantees sorted char-boundary offsets; if that were ever
                // violated, fail closed rather than risk echoing part of a key.
                None => return Cow::Borrowed(placeholder),
            }
            out.push_str(placeholder);
            last = found.end;
        }
        match text.get(last..) {
            Some(rest) => out.push_str(rest),
            None => return Cow::Borrowed(placeholder),
        }
        Cow::Owned(out)
    }
}

/// `sha256:<hex>` of the UTF-8 bytes of `text`.
pub fn payload_hash(text: &str) -> String {
    format!("sha256:{}", hex_lower(&Sha256::digest(text.as_bytes())))
}

/// The event's `idempotencyKey`: hex SHA-256 over (schema, operation, direction, tool,
/// correlation id, payload hash, timestamp). A pure function of the record, so a retried or
/// replayed event keeps its key and receivers can deduplicate. The payload hash is included
/// even when a correlation id is present, so batch items that share a correlation id and a
/// millisecond still get distinct keys.
pub fn idempotency_key(record: &DecisionRecord) -> String {
    let hash = payload_hash(&record.raw_text);
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
    let mut digest = Sha256::new();
    for field in fields {
        // Length-prefixing keeps ("a|b", "c") and ("a", "b|c") from colliding.
        digest.update((field.len() as u64).to_be_bytes());
        digest.update(field.as_bytes());
    }
    hex_lower(&digest.finalize())
}
