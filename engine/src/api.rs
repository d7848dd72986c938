//! Wire types of SPEC §2 shared by every adapter (HTTP, wasm, queues).

use crate::budget::{BudgetInfo, BudgetStatus};
use crate::error::ErrorCode;
use crate::eval::{Decision, EvalError, PolicyId, TorkDecision, Verdict};
use crate::policy::Direction;
use crate::reason::Reason;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A precheck / postcheck request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// The tool being called.
    pub tool: String,
    /// Its scope, e.g. `net.external`.
    #[serde(default)]
    pub scope: String,
    /// The text to check.
    pub raw_text: String,
    /// Correlation id, echoed into events and audit lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corr_id: Option<String>,
    /// The end user, for budgets and rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Free-form tags, echoed into events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A per-request policy replacing the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_config: Option<serde_json::Value>,
    /// Tool configuration; `metadata` carries purchase amounts for budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<serde_json::Value>,
}

/// A precheck / postcheck response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResponse {
    /// The decision.
    pub decision: Decision,
    /// The text to forward; `null` on deny.
    pub raw_text_out: Option<String>,
    /// Why.
    pub reasons: Vec<Reason>,
    /// Which level decided.
    pub policy_id: PolicyId,
    /// Unix seconds of the decision.
    pub ts: i64,
    /// Budget state, when budgets apply to the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_status: Option<BudgetStatus>,
    /// Budget details (estimate, purchase, projection), when budgets apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_info: Option<BudgetInfo>,
    /// Set when `on_error` decided: code and message of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// An error code with a message (response detail for `on-error` verdicts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
}

impl From<EvalError> for ErrorDetail {
    fn from(e: EvalError) -> ErrorDetail {
        ErrorDetail { code: e.code, message: e.message }
    }
}

impl CheckResponse {
    /// The response for a verdict made at `ts` (unix seconds).
    pub fn from_verdict(v: Verdict, ts: i64) -> CheckResponse {
        CheckResponse {
            decision: v.decision,
            raw_text_out: v.text_out,
            reasons: v.reasons,
            policy_id: v.policy_id,
            ts,
            budget_status: None,
            budget_info: None,
            error: v.error.map(ErrorDetail::from),
        }
    }
}

/// `POST /api/v1/redact` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactRequest {
    /// Text to redact.
    pub text: String,
}

/// One match of a redact response; offsets are Unicode scalar (char) indices into the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// The PII type name.
    #[serde(rename = "type")]
    pub ty: String,
    /// Char index of the first char.
    pub start: usize,
    /// Char index one past the last char.
    pub end: usize,
}

/// `POST /api/v1/redact` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactResponse {
    /// The text with every PII value replaced by its placeholder.
    pub redacted: String,
    /// What was replaced, with char offsets into the input.
    pub matches: Vec<Entity>,
}

/// `POST /api/v1/evaluate` request (JSON mode).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvaluateRequest {
    /// Any JSON; every string leaf is governed.
    pub payload: serde_json::Value,
    /// The calling agent.
    pub agent_id: String,
    /// The tool (default empty: no tool rule applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Direction (default ingress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Scope (default empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A per-request policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_config: Option<serde_json::Value>,
    /// Correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corr_id: Option<String>,
    /// End user for budgets and rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// A (type, action) pair of an evaluate response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiFound {
    /// PII type name.
    #[serde(rename = "type")]
    pub ty: String,
    /// What was done: `pass_through`, `tokenize`, `redact`, `deny`, or `detected` (strict
    /// fallback, which does not transform).
    pub action: String,
    /// Whether the value was replaced in `modified_payload` (redacted or tokenized), as the
    /// Tork guide's consumers read it.
    pub redacted: bool,
}

/// `POST /api/v1/evaluate` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluateResponse {
    /// The combined decision over all string leaves.
    pub decision: Decision,
    /// The same decision in the Tork guide's words (`allow`, `block`, `modify`), for code
    /// written against it; follows `decision` (see [`Decision::tork`]).
    pub tork_decision: TorkDecision,
    /// Reasons, deduplicated, in order of first occurrence.
    pub reasons: Vec<Reason>,
    /// The reasons that deny (or need confirmation), i.e. why the call cannot go as is.
    pub violations: Vec<Reason>,
    /// The payload with every string leaf transformed; `null` on deny.
    pub modified_payload: serde_json::Value,
    /// Distinct (type, action) pairs, in order of first occurrence.
    pub pii_found: Vec<PiiFound>,
    /// Which level decided (the most severe leaf's).
    pub policy_id: PolicyId,
    /// Unix seconds of the decision.
    pub ts: i64,
    /// Set when `on_error` decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// Budget state, when budgets apply to the request (it names a `user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_status: Option<BudgetStatus>,
    /// Budget details, when budgets apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_info: Option<BudgetInfo>,
}
