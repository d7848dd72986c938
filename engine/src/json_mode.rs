//! JSON mode (`POST /api/v1/evaluate`): every string and number leaf of an arbitrary payload is
//! governed and the per-leaf verdicts are combined into one response.

use crate::api::{ErrorDetail, EvaluateResponse, PiiFound};
use crate::eval::{Decision, PolicyId, Verdict};
use crate::pii::PiiType;
use crate::policy::PiiAction;
use crate::reason::Reason;
use alloc::string::ToString;
use alloc::vec::Vec;
use serde_json::Value;

struct Combined {
    decision: Decision,
    policy_id: Option<PolicyId>,
    reasons: Vec<Reason>,
    violations: Vec<Reason>,
    pii_found: Vec<PiiFound>,
    error: Option<ErrorDetail>,
    leaves: usize,
    counts: Vec<(PiiType, usize)>,
}

impl Combined {
    fn add(&mut self, v: &Verdict) {
        self.leaves += 1;
        if self.policy_id.is_none() || v.decision > self.decision {
            self.decision = v.decision;
            self.policy_id = Some(v.policy_id);
        }
        let blocking = matches!(v.decision, Decision::Deny | Decision::Confirm);
        for r in &v.reasons {
            if !self.reasons.contains(r) {
                self.reasons.push(r.clone());
            }
            if blocking && r.is_violation() && !self.violations.contains(r) {
                self.violations.push(r.clone());
            }
        }
        collect_pii(v, &mut self.pii_found);
        for (ty, n) in v.pii_counts() {
            match self.counts.iter_mut().find(|(t, _)| *t == ty) {
                Some((_, total)) => *total += n,
                None => self.counts.push((ty, n)),
            }
        }
        if self.error.is_none() {
            self.error = v.error.clone().map(ErrorDetail::from);
        }
    }
}

/// Walks `payload`, evaluating every string and number leaf with `check` (given the leaf's
/// member name), and combines the verdicts;
/// also returns how many values of each PII type were found over all leaves. A payload
/// without string leaves is evaluated as one empty text, so tool-level rules (`deny_tools`,
/// a denying tool rule) still apply.
pub(crate) fn evaluate(
    payload: &Value,
    ts: i64,
    check: impl Fn(Option<&str>, &str) -> Verdict,
) -> (EvaluateResponse, Vec<(PiiType, usize)>) {
    let mut acc = Combined {
        decision: Decision::Allow,
        policy_id: None,
        reasons: Vec::new(),
        violations: Vec::new(),
        pii_found: Vec::new(),
        error: None,
        leaves: 0,
        counts: Vec::new(),
    };
    let modified = walk(payload, None, &check, &mut acc);
    if acc.leaves == 0 {
        acc.add(&check(None, ""));
    }
    let modified_payload = if acc.decision == Decision::Deny { Value::Null } else { modified };
    let response = EvaluateResponse {
        decision: acc.decision,
        tork_decision: acc.decision.tork(),
        reasons: acc.reasons,
        violations: acc.violations,
        modified_payload,
        pii_found: acc.pii_found,
        policy_id: acc.policy_id.unwrap_or(PolicyId::StrictFallback),
        ts,
        error: acc.error,
        budget_status: None,
        budget_info: None,
    };
    (response, acc.counts)
}

// Recursion depth is bounded by the JSON parser's nesting limit (128 in serde_json). `field` is
// the name of the member the value belongs to (array items inherit it: `{"phones": [...]}`),
// which tells detection what the value is (`{"phone": "0412 345 678"}`).
fn walk(v: &Value, field: Option<&str>, check: &impl Fn(Option<&str>, &str) -> Verdict, acc: &mut Combined) -> Value {
    match v {
        Value::String(s) => {
            let verdict = check(field, s);
            acc.add(&verdict);
            verdict.text_out.map_or(Value::Null, Value::String)
        }
        // A number is governed as its JSON text (`4111111111111111`, `2125551234` under
        // `phone`); a transformed number becomes a string, an unchanged one stays a number.
        Value::Number(n) => {
            let text = n.to_string();
            let verdict = check(field, &text);
            acc.add(&verdict);
            match verdict.text_out {
                Some(out) if out == text => v.clone(),
                Some(out) => Value::String(out),
                None => Value::Null,
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, field, check, acc)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, i)| (k.clone(), walk(i, Some(k), check, acc))).collect())
        }
        other => other.clone(),
    }
}

/// The `pii_found` action name of a finding.
fn action_name(a: Option<PiiAction>) -> &'static str {
    a.map_or("detected", PiiAction::name)
}

/// A verdict's distinct (type, action) pairs, appended to `out` when new.
fn collect_pii(v: &Verdict, out: &mut Vec<PiiFound>) {
    for f in &v.findings {
        let ty = f.found.ty.name();
        let action = action_name(f.action);
        if !out.iter().any(|p| p.ty == ty && p.action == action) {
            let redacted = matches!(f.action, Some(PiiAction::Redact | PiiAction::Tokenize | PiiAction::Encrypt));
            out.push(PiiFound { ty: ty.to_string(), action: action.to_string(), redacted });
        }
    }
}
