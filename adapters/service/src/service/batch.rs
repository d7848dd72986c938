//! `POST /api/v1/batch`: per-item errors never fail the batch.

use super::operation::{split_action, Operation};
use super::{RequestMeta, Service};
use crate::error::{kind, ApiError};
use serde_json::{json, Value};
use warden_engine::Direction;

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
            let outcome = match split_action(item) {
                Ok((op @ (Operation::Precheck | Operation::Postcheck | Operation::Evaluate), rest)) => {
                    self.run_item(op, Value::Object(rest), meta).await.map(|v| (op, v))
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
                    let slot = match resp.get("decision").and_then(Value::as_str) {
                        Some("allow") => 0,
                        Some("deny") => 1,
                        Some("transform") => 2,
                        Some("confirm") => 3,
                        _ => 4,
                    };
                    if let Some(n) = summary.get_mut(slot) {
                        *n += 1;
                    }
                    results
                        .push(json!({"index": index, "action": op.name(), "ok": true, "status": 200, "result": resp}));
                }
                Err(e) => {
                    if let Some(n) = summary.get_mut(4) {
                        *n += 1;
                    }
                    let mut err = e.body();
                    if let Some(obj) = err.as_object_mut() {
                        obj.insert("index".into(), json!(index));
                        obj.insert("ok".into(), json!(false));
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
