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
}

impl Operation {
    /// Every operation, in SPEC order.
    pub const ALL: [Operation; 7] = [
        Operation::Precheck,
        Operation::Postcheck,
        Operation::Redact,
        Operation::Evaluate,
        Operation::Batch,
        Operation::Health,
        Operation::Ready,
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
        }
    }
}

/// Splits `{action, ...rest}` into the operation and the rest of the fields.
pub(crate) fn split_action(body: Value) -> Result<(Operation, Map<String, Value>), ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid_request(format!("request body must be a JSON object, not {}", kind(&body))));
    };
    let op = match map.remove("action") {
        Some(Value::String(a)) => Operation::from_action(&a).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "unknown action `{a}`; expected one of precheck, postcheck, redact, evaluate, batch, health, ready"
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
