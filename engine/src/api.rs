//! Wire types of SPEC §2 shared by every adapter (HTTP, wasm, queues), and the request-level
//! entry points that resolve `policy_config` and `on_error` before evaluating.

use crate::detect::Detector;
use crate::eval::{Decision, EvalError, Gate, PolicyId, Verdict};
use crate::pii::PiiType;
use crate::policy::{on_error_of, OnError, PiiAction, Policy};
use crate::text;
use crate::token::TokenKey;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Which side of a tool call is checked: precheck = ingress, postcheck = egress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Before the tool runs (precheck).
    #[default]
    Ingress,
    /// After the tool answered (postcheck).
    Egress,
}

impl Direction {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

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
    pub reasons: Vec<String>,
    /// Which level decided.
    pub policy_id: PolicyId,
    /// Unix seconds of the decision.
    pub ts: i64,
    /// Budget state, when budgets apply to the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_status: Option<serde_json::Value>,
    /// Budget details (estimate, purchase, projection), when budgets apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_info: Option<serde_json::Value>,
    /// Set when `on_error` decided: code and message of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// An error code with a message (response detail for `on-error` verdicts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: String,
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// `POST /api/v1/evaluate` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluateResponse {
    /// The combined decision over all string leaves.
    pub decision: Decision,
    /// Reasons, deduplicated, in order of first occurrence.
    pub reasons: Vec<String>,
    /// The reasons that deny (or need confirmation), i.e. why the call cannot go as is.
    pub violations: Vec<String>,
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
    pub budget_status: Option<serde_json::Value>,
    /// Budget details, when budgets apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_info: Option<serde_json::Value>,
}

/// Server-side context every request is evaluated in.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The server's policy (used when a request has no `policy_config`).
    pub policy: &'a Policy,
    /// Token salt.
    pub key: &'a TokenKey,
    /// The built-in detector.
    pub detector: &'a Detector,
    /// `on_error` when a request's `policy_config` is invalid and names none (env `ON_ERROR`).
    pub on_error: OnError,
}

/// The policy a request is evaluated under: the server's, or its own `policy_config`.
enum Resolved {
    Server,
    Own(alloc::boxed::Box<Policy>),
    Invalid { on_error: OnError, message: String },
}

impl<'a> Context<'a> {
    fn resolve(&self, policy_config: Option<&serde_json::Value>) -> Resolved {
        match policy_config {
            None => Resolved::Server,
            Some(v) => match Policy::from_json_value(v) {
                Ok(p) => Resolved::Own(alloc::boxed::Box::new(p)),
                Err(e) => {
                    Resolved::Invalid { on_error: on_error_of(v).unwrap_or(self.on_error), message: e.to_string() }
                }
            },
        }
    }

    /// Evaluates a precheck (ingress) or postcheck (egress) request.
    pub fn check(&self, req: &CheckRequest, direction: Direction) -> Verdict {
        match self.resolve(req.policy_config.as_ref()) {
            Resolved::Server => {
                Gate::new(self.policy, self.key, self.detector).check(direction, &req.tool, &req.scope, &req.raw_text)
            }
            Resolved::Own(p) => {
                Gate::new(&p, self.key, self.detector).check(direction, &req.tool, &req.scope, &req.raw_text)
            }
            Resolved::Invalid { on_error, message } => Gate::new(self.policy, self.key, self.detector).on_error(
                on_error,
                "policy_invalid",
                &message,
                &req.raw_text,
            ),
        }
    }

    /// Redacts every PII value of the server policy's types in `text`.
    pub fn redact(&self, text: &str) -> RedactResponse {
        let (redacted, matches) = Gate::new(self.policy, self.key, self.detector).redact(text);
        let mut offsets: Vec<usize> = Vec::with_capacity(matches.len() * 2);
        for m in &matches {
            offsets.push(m.start);
            offsets.push(m.end);
        }
        text::bytes_to_chars(text, &mut offsets);
        let mut chars = offsets.chunks_exact(2);
        let matches = matches
            .iter()
            .map(|m| {
                let (start, end) = match chars.next() {
                    Some([s, e]) => (*s, *e),
                    _ => (0, 0),
                };
                Entity { ty: m.ty.name().to_string(), start, end }
            })
            .collect();
        RedactResponse { redacted, matches }
    }

    /// Evaluates a JSON-mode request: every string leaf of the payload.
    pub fn evaluate(&self, req: &EvaluateRequest, ts: i64) -> EvaluateResponse {
        let direction = req.direction.unwrap_or_default();
        let tool = req.tool.as_deref().unwrap_or("");
        let scope = req.scope.as_deref().unwrap_or("");
        let resolved = self.resolve(req.policy_config.as_ref());
        let own;
        let (policy, invalid): (&Policy, Option<(OnError, String)>) = match resolved {
            Resolved::Server => (self.policy, None),
            Resolved::Own(p) => {
                own = p;
                (&*own, None)
            }
            Resolved::Invalid { on_error, message } => (self.policy, Some((on_error, message))),
        };
        let gate = Gate::new(policy, self.key, self.detector);
        crate::json_mode::evaluate(&req.payload, ts, |leaf| match &invalid {
            Some((on_error, message)) => gate.on_error(*on_error, "policy_invalid", message, leaf),
            None => gate.check(direction, tool, scope, leaf),
        })
    }
}

/// The `pii_found` action name of a finding.
pub(crate) fn action_name(a: Option<PiiAction>) -> &'static str {
    a.map_or("detected", PiiAction::name)
}

/// A verdict's distinct (type, action) pairs, appended to `out` when new.
pub(crate) fn collect_pii(v: &Verdict, out: &mut Vec<PiiFound>) {
    for f in &v.findings {
        let ty: &PiiType = &f.found.ty;
        let action = action_name(f.action);
        if !out.iter().any(|p| p.ty == ty.name() && p.action == action) {
            out.push(PiiFound { ty: ty.name().to_string(), action: action.to_string() });
        }
    }
}
