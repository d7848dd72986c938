//! The operations of SPEC §2 and the invoke envelope `{action, ...}` that names one.

use crate::error::{kind, ApiError};
use serde_json::{Map, Value};

/// An operation of SPEC §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `POST /api/v1/precheck`.
    Precheck,
    /// `POST /api/v1/postcheck`.
    Postcheck,
    /// `POST /api/v1/redact`.
    Redact,
    /// `POST /api/v1/evaluate`.
    Evaluate,
    /// `POST /api/v1/batch`.
    Batch,
    /// `GET /api/v1/health`.
    Health,
    /// `GET /api/v1/ready`.
    Ready,
    /// `POST /api/v1/detokenize`.
    Detokenize,
}

impl Operation {
    /// Every operation, in SPEC order.
    pub const ALL: [Operation; 8] = [
        Operation::Precheck,
        Operation::Postcheck,
        Operation::Redact,
        Operation::Evaluate,
        Operation::Batch,
        Operation::Health,
        Operation::Ready,
        Operation::Detokenize,
    ];

    /// Parses an invoke-envelope `action`.
    pub fn from_action(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == s)
    }

    /// The action / metrics name.
    pub const fn name(self) -> &'static str {
        match self {
            Operation::Precheck => "precheck",
            Operation::Postcheck => "postcheck",
            Operation::Redact => "redact",
            Operation::Evaluate => "evaluate",
            Operation::Batch => "batch",
            Operation::Health => "health",
            Operation::Ready => "ready",
            Operation::Detokenize => "detokenize",
        }
    }
}

/// Splits an invoke envelope into its operation and the rest of the fields, as the Tork guide's
/// handlers read it: `action` may be left out — it is `batch` when `requests` is present, else
/// `evaluate`. On a message channel (`bare_payload`), data that has none of `action`,
/// `payload` or `requests` is itself the payload of an `evaluate`.
pub(crate) fn parse_envelope(body: Value, bare_payload: bool) -> Result<(Operation, Map<String, Value>), ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::invalid_request(format!("request body must be a JSON object, not {}", kind(&body))));
    };
    if !map.contains_key("action") {
        if map.contains_key("requests") {
            return Ok((Operation::Batch, map));
        }
        if bare_payload && !map.contains_key("payload") {
            let mut wrapped = Map::new();
            if let Some(agent) = map.get("agent_id").filter(|a| a.is_string()).cloned() {
                wrapped.insert("agent_id".into(), agent);
            }
            wrapped.insert("payload".into(), Value::Object(map));
            return Ok((Operation::Evaluate, wrapped));
        }
        return Ok((Operation::Evaluate, map));
    }
    split_action(Value::Object(map))
}

/// Splits `{action, ...rest}` into the operation and the rest of the fields.
pub(crate) fn split_action(body: Value) -> Result<(Operation, Map<String, Value>), ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid_request(format!("request body must be a JSON object, not {}", kind(&body))));
    };
    let op = match map.remove("action") {
        Some(Value::String(a)) => Operation::from_action(&a).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "unknown action `{a}`; expected one of precheck, postcheck, redact, evaluate, batch, health, ready, detokenize"
            ))
            .with_field("action")
        })?,
        Some(other) => {
            return Err(ApiError::invalid_request(format!("`action` must be a string, not {}", kind(&other)))
                .with_field("action"))
        }
        None => return Err(ApiError::invalid_request("missing field `action`").with_field("action")),
    };
    Ok((op, map))
}
