//! S3 ObjectCreated → the document seam → a destination bucket (the Tork quarantine flow).
//!
//! Per object: read at most `WARDEN_DOCUMENT_LIMIT + 1` bytes (a larger object is quarantined
//! unread by the core), govern it, then write the redacted content to the processed bucket
//! (transform) or copy the original server-side to the approved (allow) or quarantine (deny,
//! confirm) bucket, under the same key with metadata `warden-decision`, `warden-reasons` and
//! `warden-policy-id`; delete the source only after that write succeeded. A redelivery writes
//! the same key with the same content; an object already moved (404) is done.

use crate::client::AwsError;
use crate::{log, App};
use serde_json::{json, Value};
use warden_service::service::{Disposition, DocumentMeta, DocumentOutcome};

/// Most records handled from one notification.
pub const MAX_RECORDS: usize = 1_000;

/// Longest object key S3 allows, in bytes (decoded).
const MAX_KEY: usize = 1_024;

/// Decodes an event's object key: URL-encoded with `+` for a space.
pub fn decode_key(raw: &str) -> Result<String, String> {
    if raw.len() > 3 * MAX_KEY {
        return Err("object key too long".into());
    }
    let spaced = raw.replace('+', " ");
    let key = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| "object key is not UTF-8 after URL-decoding".to_owned())?
        .into_owned();
    if key.is_empty() || key.len() > MAX_KEY {
        return Err("object key empty or too long".into());
    }
    Ok(key)
}

/// Handles an S3 notification. `Err` when an object hit a transient failure (Lambda retries
/// the invocation; objects already moved are then found gone and skipped).
pub async fn handle(app: &App, event: &Value) -> Result<Value, String> {
    let records = event.get("Records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut results = Vec::new();
    let mut transient = 0usize;
    for (i, record) in records.iter().enumerate().take(MAX_RECORDS) {
        let result = match object(app, record).await {
            Ok(v) => v,
            Err(Failure::Malformed(msg)) => {
                app.emf.count_error();
                json!({"record": i, "status": "error", "error": {"code": "invalid_request", "message": msg}})
            }
            Err(Failure::Aws(e)) => {
                app.emf.count_error();
                if e.transient() {
                    transient += 1;
                }
                json!({"record": i, "status": "error", "error": {"code": "aws", "message": e.to_string()}})
            }
        };
        log(json!({"level": "info", "source": "s3", "record": i, "result": result}));
        results.push(result);
    }
    if records.len() > MAX_RECORDS {
        results.push(json!({"status": "error", "error": {"code": "invalid_request", "message": format!("more than {MAX_RECORDS} records: the rest were not read")}}));
    }
    if transient > 0 {
        return Err(format!("{transient} object(s) hit a transient AWS failure; the invocation is retried"));
    }
    Ok(json!({"results": results}))
}

enum Failure {
    Malformed(String),
    Aws(AwsError),
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Failure {
        Failure::Aws(e)
    }
}

/// Governs and moves one object; the result names the bucket, never the key (keys can hold PII).
async fn object(app: &App, record: &Value) -> Result<Value, Failure> {
    let event_name = record.get("eventName").and_then(Value::as_str).unwrap_or_default();
    if !event_name.starts_with("ObjectCreated") {
        let name: String = event_name.chars().take(64).collect();
        return Err(Failure::Malformed(format!("event `{name}` is not ObjectCreated: skipped")));
    }
    let bucket = record.pointer("/s3/bucket/name").and_then(Value::as_str).filter(|b| !b.is_empty());
    let raw_key = record.pointer("/s3/object/key").and_then(Value::as_str);
    let (Some(bucket), Some(raw_key)) = (bucket, raw_key) else {
        return Err(Failure::Malformed("record lacks s3.bucket.name or s3.object.key".into()));
    };
    let key = decode_key(raw_key).map_err(Failure::Malformed)?;
    let client = app.aws().map_err(Failure::Malformed)?;
    let limit = app.built.service.config().document_limit;
    let Some(object) = client.get_object(bucket, &key, limit.saturating_add(1)).await? else {
        return Ok(json!({"bucket": bucket, "status": "gone"}));
    };
    let meta =
        DocumentMeta { source: format!("s3://{bucket}"), name: key.clone(), content_type: object.content_type.clone() };
    let outcome = app.built.service.govern_document(&object.bytes, &meta);
    let metadata = metadata(&outcome);
    let content_type = object.content_type.as_deref();
    let destination = destination(app, bucket, outcome.disposition);
    match (&outcome.disposition, outcome.output) {
        (Disposition::Modify, Some(output)) => {
            client.put_object(&destination, &key, output, content_type, &metadata).await?;
        }
        _ => client.copy_object(bucket, &key, &destination, &key, content_type, &metadata).await?,
    }
    if !app.config.keep_source {
        client.delete_object(bucket, &key).await?;
    }
    Ok(json!({
        "bucket": bucket,
        "status": "moved",
        "destination": destination,
        "decision": outcome.decision,
        "reasons": outcome.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "policy_id": outcome.policy_id,
        "disposition": outcome.disposition,
        "source_deleted": !app.config.keep_source,
    }))
}

/// The destination bucket of a disposition.
pub fn destination(app: &App, bucket: &str, disposition: Disposition) -> String {
    let (configured, suffix) = match disposition {
        Disposition::Approve => (&app.config.approved_bucket, "approved"),
        Disposition::Modify => (&app.config.processed_bucket, "processed"),
        Disposition::Quarantine => (&app.config.quarantine_bucket, "quarantine"),
    };
    configured.clone().unwrap_or_else(|| format!("{bucket}-{suffix}"))
}

/// The object metadata of a verdict (ASCII: reasons and ids are).
pub fn metadata(outcome: &DocumentOutcome) -> Vec<(&'static str, String)> {
    let reasons: Vec<String> = outcome.reasons.iter().map(ToString::to_string).collect();
    let id =
        serde_json::to_value(outcome.policy_id).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let decision =
        serde_json::to_value(outcome.decision).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    vec![("warden-decision", decision), ("warden-reasons", reasons.join(",")), ("warden-policy-id", id)]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_plus_as_space() {
        assert_eq!(decode_key("reports/my+file%2B1.txt").unwrap(), "reports/my file+1.txt");
        assert_eq!(decode_key("caf%C3%A9.json").unwrap(), "café.json");
        assert!(decode_key("%FF").is_err());
        assert!(decode_key("").is_err());
        assert!(decode_key(&"a".repeat(5000)).is_err());
    }
}
