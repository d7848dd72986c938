//! What one governed request produced: the input of decision events, audit lines and metrics.

use warden_engine::{Decision, Direction, PolicyId, Reason};

/// One decision, as the service layer saw it. Carries raw text so event sinks can include
/// it when `EVENTS_INCLUDE_RAW_TEXT=true`; audit and metrics never read `raw_text`.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRecord {
    /// Operation: `precheck`, `postcheck`, `evaluate`, `redact`.
    pub operation: &'static str,
    /// Organisation id from configuration (`WARDEN_ORG_ID`), if any.
    pub org_id: Option<String>,
    /// Ingress or egress.
    pub direction: Direction,
    /// The final decision (policy joined with budget).
    pub decision: Decision,
    /// Which policy level decided.
    pub policy_id: PolicyId,
    /// Tool name.
    pub tool: String,
    /// Scope.
    pub scope: String,
    /// The input text (JSON text of the payload in JSON mode).
    pub raw_text: String,
    /// The output text; `None` on deny.
    pub raw_text_out: Option<String>,
    /// Reasons as returned to the caller.
    pub reasons: Vec<Reason>,
    /// PII type name → count, in order of first occurrence.
    pub pii_counts: Vec<(String, usize)>,
    /// Time spent deciding, in milliseconds.
    pub latency_ms: f64,
    /// Correlation id from the request.
    pub corr_id: Option<String>,
    /// Tags from the request.
    pub tags: Vec<String>,
    /// When the decision was made, unix milliseconds.
    pub ts_unix_ms: i64,
    /// End user, if the request named one.
    pub user_id: Option<String>,
    /// Context the caller sent (e.g. `{path, method}` from the Tork guide's middleware), as
    /// compact JSON with PII redacted.
    pub context: Option<String>,
}

/// PII type name → count, in order of first occurrence: the one way findings are counted for
/// records, whatever the operation.
pub fn pii_counts<'a>(types: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for ty in types {
        match out.iter_mut().find(|(t, _)| t == ty) {
            Some((_, n)) => *n += 1,
            None => out.push((ty.to_owned(), 1)),
        }
    }
    out
}

#[cfg(test)]
impl DecisionRecord {
    /// A small record for unit tests.
    pub(crate) fn for_test() -> DecisionRecord {
        DecisionRecord {
            operation: "precheck",
            org_id: None,
            direction: Direction::Ingress,
            decision: Decision::Transform,
            policy_id: PolicyId::ToolAccess,
            tool: String::from("t"),
            scope: String::new(),
            raw_text: String::from("mail a@b.io"),
            raw_text_out: Some(String::from("mail <USER_EMAIL>")),
            reasons: Vec::new(),
            pii_counts: vec![(String::from("email_address"), 1)],
            latency_ms: 0.1,
            corr_id: None,
            tags: Vec::new(),
            ts_unix_ms: 0,
            user_id: None,
            context: None,
        }
    }
}
