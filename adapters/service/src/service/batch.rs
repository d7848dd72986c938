//! `POST /api/v1/batch`: per-item errors never fail the batch.

use super::operation::{split_action, Operation};
use super::{RequestMeta, Service};
use crate::error::{kind, ApiError};
use serde_json::{json, Value};
use warden_engine::{Decision, Direction};

impl Service {
    pub(super) async fn batch(&self, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        let Value::Object(mut map) = body else {
            return Err(ApiError::invalid_request(format!("request body must be a JSON object, not {}", kind(&body))));
        };
        let Some(Value::Array(items)) = map.remove("requests") else {
            return Err(ApiError::invalid_request(
                "`requests` must be an array of precheck/postcheck/evaluate requests",
            )
            .with_field("requests"));
        };
        if items.is_empty() {
            // The Tork guide's batch processor answers `processed: 0` here; keep it beside the error.
            return Err(ApiError::invalid_request("no requests provided: `requests` is empty")
                .with_field("requests")
                .with_body_field("processed", json!(0)));
        }
        if items.len() > self.config.max_batch {
            return Err(ApiError::invalid_request(format!(
                "a batch holds at most {} requests, got {}",
                self.config.max_batch,
                items.len()
            ))
            .with_field("requests"));
        }
        let mut summary = [0usize; 5];
        let mut results = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            // Items without `action` are `evaluate` items, with agent `batch-<index>` by default.
            let item = match item {
                Value::Object(mut m) => {
                    m.entry("action").or_insert_with(|| json!("evaluate"));
                    Value::Object(m)
                }
                other => other,
            };
            let item_meta = RequestMeta { default_agent_id: Some(format!("batch-{index}")), ..meta.clone() };
            let outcome = match split_action(item) {
                Ok((op @ (Operation::Precheck | Operation::Postcheck | Operation::Evaluate), rest)) => {
                    self.run_item(op, Value::Object(rest), &item_meta).await.map(|v| (op, v))
                }
                Ok((op, _)) => Err(ApiError::invalid_request(format!(
                    "batch items must be precheck, postcheck or evaluate, not {}",
                    op.name()
                ))
                .with_field("action")),
                Err(e) => Err(e),
            };
            match outcome {
                Ok((op, resp)) => {
                    let decision =
                        resp.get("decision").and_then(|d| serde_json::from_value::<Decision>(d.clone()).ok());
                    let slot = match decision {
                        Some(Decision::Allow) => 0,
                        Some(Decision::Deny) => 1,
                        Some(Decision::Transform) => 2,
                        Some(Decision::Confirm) => 3,
                        None => 4,
                    };
                    if let Some(n) = summary.get_mut(slot) {
                        *n += 1;
                    }
                    let violations = resp.get("violations").cloned().unwrap_or_else(|| json!([]));
                    results.push(json!({
                        "index": index,
                        "action": op.name(),
                        "ok": true,
                        "success": true,
                        "status": 200,
                        "decision": decision,
                        "tork_decision": decision.map(Decision::tork),
                        "violations": violations,
                        "result": resp,
                    }));
                }
                Err(e) => {
                    if let Some(n) = summary.get_mut(4) {
                        *n += 1;
                    }
                    let mut err = e.body();
                    if let Some(obj) = err.as_object_mut() {
                        obj.insert("index".into(), json!(index));
                        obj.insert("ok".into(), json!(false));
                        obj.insert("success".into(), json!(false));
                        obj.insert("status".into(), json!(e.status()));
                    }
                    results.push(err);
                }
            }
        }
        let [allow, deny, transform, confirm, error] = summary;
        Ok(json!({
            "processed": results.len(),
            "summary": {"allow": allow, "deny": deny, "transform": transform, "confirm": confirm, "error": error},
            "results": results,
        }))
    }

    /// A batch item: the single-request operations only (no nested batches).
    async fn run_item(&self, op: Operation, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        match op {
            Operation::Postcheck => self.check(body, Direction::Egress, meta).await,
            Operation::Evaluate => self.evaluate(body, meta).await,
            _ => self.check(body, Direction::Ingress, meta).await,
        }
    }
}
