//! SQS batches: each record's body is an invoke envelope, run through the core's message seam
//! (dedupe on `messageId`). The answer is a partial batch response: only transient failures
//! are listed in `batchItemFailures`, so only they are redelivered; a malformed record is
//! answered with an error result and acknowledged, never retried.

use crate::{log, App};
use serde_json::{json, Value};
use warden_engine::ErrorCode;
use warden_service::error::ApiError;
use warden_service::service::{MessageMeta, MessageOutcome};

/// Most records handled from one event (SQS delivers at most 10,000).
pub const MAX_RECORDS: usize = 10_000;

/// Largest message SQS accepts (256 KiB).
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Handles an SQS event; returns `{"batchItemFailures": [...]}`.
pub async fn handle(app: &App, event: &Value) -> Value {
    let records = event.get("Records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut failures = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let Some(id) = record.get("messageId").and_then(Value::as_str) else {
            // Without an id the record cannot be named in the answer: it is dropped, loudly.
            app.emf.count_error();
            log(json!({"level": "error", "source": "sqs", "record": i, "msg": "record without messageId skipped"}));
            continue;
        };
        if i >= MAX_RECORDS {
            failures.push(json!({"itemIdentifier": id}));
            continue;
        }
        if !record_ok(app, id, record).await {
            failures.push(json!({"itemIdentifier": id}));
        }
    }
    json!({"batchItemFailures": failures})
}

/// Handles one record; `false` when it must be redelivered.
async fn record_ok(app: &App, id: &str, record: &Value) -> bool {
    let attempt = record
        .pointer("/attributes/ApproximateReceiveCount")
        .and_then(Value::as_str)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let meta = MessageMeta {
        id: Some(id.to_owned()),
        attempt,
        default_agent_id: crate::DEFAULT_AGENT.into(),
        request_id: None,
    };
    let outcome = match record.get("body").and_then(Value::as_str) {
        Some(body) => app.built.service.handle_message(body.as_bytes(), &meta).await,
        None => MessageOutcome::Reject(ApiError::invalid_request("SQS record has no string `body`")),
    };
    let (status, answer) = match &outcome {
        MessageOutcome::Done(v) => ("done", Some(v.clone())),
        // A redelivery after a failed result send is answered from the dedupe store; sending
        // the stored answer again keeps results at least once instead of losing them.
        MessageOutcome::Duplicate(v) => ("duplicate", (attempt > 1).then(|| v.clone())),
        MessageOutcome::Reject(e) => ("rejected", Some(with_id(e.body(), id))),
        MessageOutcome::Retry(_) => ("retry", None),
    };
    let summary = match &outcome {
        MessageOutcome::Done(v) | MessageOutcome::Duplicate(v) => v.clone(),
        MessageOutcome::Reject(e) | MessageOutcome::Retry(e) => e.body(),
    };
    log(json!({
        "level": if status == "retry" { "warn" } else { "info" },
        "source": "sqs",
        "messageId": id,
        "outcome": status,
        "decision": summary.get("decision"),
        "reasons": summary.get("reasons"),
        "policy_id": summary.get("policy_id"),
        "error": summary.pointer("/error/code"),
    }));
    if matches!(outcome, MessageOutcome::Retry(_)) {
        app.emf.count_error();
        return false;
    }
    match (answer, &app.config.result_queue_url) {
        (Some(answer), Some(url)) => publish(app, url, id, answer).await,
        _ => true,
    }
}

fn with_id(mut body: Value, id: &str) -> Value {
    if let Some(m) = body.as_object_mut() {
        m.insert("request_id".into(), json!(id));
    }
    body
}

/// Sends one result; a result over SQS's size limit is replaced by an error result (sending it
/// again would fail again). `false` when the send failed transiently.
async fn publish(app: &App, url: &str, id: &str, answer: Value) -> bool {
    let mut text = answer.to_string();
    if text.len() > MAX_MESSAGE {
        let e = ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the result is {} bytes, over the result queue's limit of {MAX_MESSAGE}", text.len()),
        );
        text = with_id(e.body(), id).to_string();
    }
    let client = match app.aws() {
        Ok(c) => c,
        Err(e) => {
            app.emf.count_error();
            log(json!({"level": "error", "source": "sqs", "messageId": id, "msg": e}));
            return true;
        }
    };
    let body = json!({"QueueUrl": url, "MessageBody": text});
    match client.json("sqs", "AmazonSQS.SendMessage", &body).await {
        Ok(_) => true,
        Err(e) => {
            app.emf.count_error();
            log(json!({"level": "error", "source": "sqs", "messageId": id, "msg": format!("result not sent: {e}")}));
            !e.transient()
        }
    }
}
