//! DynamoDB streams (INSERT/MODIFY): the new image, converted losslessly to JSON
//! ([`crate::attr`]), is governed as a document; one audit record per stream record goes to
//! `WARDEN_AUDIT_TABLE` with a put conditioned on its event id, so a retried batch writes
//! nothing twice. A transformed image is kept in the audit record (`redacted_image`), never
//! written back to the source table, which would trigger the stream again.
//!
//! A malformed record is skipped with an error audit record; a transient failure reports that
//! record's sequence number as the batch item failure, and processing stops there (Lambda
//! retries from the lowest failed sequence number, so later records come again anyway).

use crate::{attr, log, App};
use serde_json::{json, Map, Value};
use warden_service::service::{Disposition, DocumentMeta};

/// Most records handled from one event (streams deliver at most 10,000).
pub const MAX_RECORDS: usize = 10_000;

/// Largest audit attribute kept for a redacted image (an item is at most 400 KB).
const MAX_IMAGE: usize = 300 * 1024;

/// Handles a stream batch; returns `{"batchItemFailures": [...]}`.
pub async fn handle(app: &App, event: &Value) -> Value {
    let records = event.get("Records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (i, record) in records.iter().enumerate() {
        let seq = record.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str);
        if i >= MAX_RECORDS {
            return failure(seq);
        }
        let audit = match govern(app, record) {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(msg) => {
                app.emf.count_error();
                error_record(record, &msg)
            }
        };
        log(json!({
            "level": "info", "source": "dynamodb", "eventID": audit.get("event_id"), "decision": audit.get("decision"),
            "reasons": audit.get("reasons"), "policy_id": audit.get("policy_id"), "error": audit.get("error"),
        }));
        if let Err(e) = write_audit(app, &audit).await {
            app.emf.count_error();
            log(
                json!({"level": "error", "source": "dynamodb", "eventID": audit.get("event_id"), "msg": format!("audit not written: {e}")}),
            );
            // A permanent failure (no such table, a rejected item) would fail every retry:
            // it is logged and the record skipped.
            if e.transient() {
                return failure(seq);
            }
        }
    }
    json!({"batchItemFailures": []})
}

fn failure(seq: Option<&str>) -> Value {
    json!({"batchItemFailures": seq.map(|s| vec![json!({"itemIdentifier": s})]).unwrap_or_default()})
}

/// The audit record of one stream record; `None` for records that carry no new image to
/// govern (REMOVE).
pub fn govern(app: &App, record: &Value) -> Result<Option<Value>, String> {
    let event_id = record.get("eventID").and_then(Value::as_str).ok_or("record has no eventID")?;
    let event_name = record.get("eventName").and_then(Value::as_str).ok_or("record has no eventName")?;
    match event_name {
        "INSERT" | "MODIFY" => {}
        "REMOVE" => return Ok(None),
        other => return Err(format!("unknown eventName `{}`", other.chars().take(32).collect::<String>())),
    }
    let image = record
        .pointer("/dynamodb/NewImage")
        .and_then(Value::as_object)
        .ok_or("record has no dynamodb.NewImage (set the stream view type to NEW_IMAGE or NEW_AND_OLD_IMAGES)")?;
    let json = attr::item_to_json(image).map_err(|e| format!("NewImage: {e}"))?;
    let table = table_of(record);
    let bytes = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
    let meta = DocumentMeta {
        source: format!("dynamodb:{table}"),
        name: event_id.to_owned(),
        content_type: Some("application/json".into()),
    };
    let outcome = app.built.service.govern_document(&bytes, &meta);
    let mut audit = json!({
        "event_id": event_id,
        "event_name": event_name,
        "table": table,
        "decision": outcome.decision,
        "reasons": outcome.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "policy_id": outcome.policy_id,
        "disposition": outcome.disposition,
        "sequence_number": record.pointer("/dynamodb/SequenceNumber"),
        "ts_unix_ms": app.built.service.clock().now_ms(),
    });
    if let (Disposition::Modify, Some(out), Some(m)) = (outcome.disposition, &outcome.output, audit.as_object_mut()) {
        if out.len() <= MAX_IMAGE {
            m.insert("redacted_image".into(), Value::String(String::from_utf8_lossy(out).into_owned()));
        } else {
            m.insert("redacted_image_omitted".into(), json!(format!("{} bytes, over {MAX_IMAGE}", out.len())));
        }
    }
    Ok(Some(audit))
}

/// The table name from `eventSourceARN` (`arn:aws:dynamodb:region:acct:table/NAME/stream/...`).
fn table_of(record: &Value) -> String {
    let arn = record.get("eventSourceARN").and_then(Value::as_str).unwrap_or_default();
    arn.split_once(":table/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or("unknown")
        .chars()
        .take(255)
        .collect()
}

fn error_record(record: &Value, msg: &str) -> Value {
    let id = record.get("eventID").and_then(Value::as_str).map(|s| s.chars().take(128).collect::<String>());
    json!({
        "event_id": id,
        "table": table_of(record),
        "error": {"code": "invalid_request", "message": msg},
        "sequence_number": record.pointer("/dynamodb/SequenceNumber"),
    })
}

async fn write_audit(app: &App, audit: &Value) -> Result<(), crate::client::AwsError> {
    let (Some(table), Some(_)) = (&app.config.audit_table, audit.get("event_id").and_then(Value::as_str)) else {
        // No table, or a record without an id to key it by: the log line is the record.
        return Ok(());
    };
    let Ok(client) = app.aws() else { return Ok(()) };
    let mut item = Map::new();
    if let Some(fields) = audit.as_object() {
        for (k, v) in fields.iter().filter(|(_, v)| !v.is_null()) {
            item.insert(k.clone(), attr::from_json(v));
        }
    }
    let body = json!({
        "TableName": table,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(event_id)",
    });
    match client.json("dynamodb", "DynamoDB_20120810.PutItem", &body).await {
        Ok(_) => Ok(()),
        // Written by an earlier delivery of this batch: nothing to do.
        Err(e) if e.condition_failed() => Ok(()),
        Err(e) => Err(e),
    }
}
