//! `WARDEN_REQUEST_POLICY=tighten`: a request's own policy may only make a decision
//! stricter than the server policy's. Both policies evaluate the text; the stricter decision
//! wins, and every PII value gets the stricter of the two actions (`deny` > `redact` >
//! `tokenize` > `encrypt` > `pass_through`: a reversible token is weaker than a one-way one;
//! the strict fallback's "detected" counts as `pass_through`).

use crate::eval::{Decision, Evaluator, Finding, Match, Verdict};
use crate::pii::PiiType;
use crate::policy::{OnError, PiiAction};
use crate::reason::Reason;
use alloc::string::String;
use alloc::vec::Vec;

/// How strict a PII action is.
pub(crate) fn rank(action: Option<PiiAction>) -> u8 {
    match action {
        None | Some(PiiAction::PassThrough) => 0,
        Some(PiiAction::Encrypt) => 1,
        Some(PiiAction::Tokenize) => 2,
        Some(PiiAction::Redact) => 3,
        Some(PiiAction::Deny) => 4,
    }
}

/// The stricter of two `on_error`s: `block` > `best_effort` > `pass`.
pub(crate) fn stricter_on_error(a: OnError, b: OnError) -> OnError {
    let rank = |o: OnError| match o {
        OnError::Pass => 0,
        OnError::BestEffort => 1,
        OnError::Block => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// One PII value, with the evaluator whose policy named its action.
struct Candidate<'v> {
    found: &'v Match,
    action: Option<PiiAction>,
    own: bool,
}

/// Combines the server's verdict `sv` and the request policy's `ov` on `text`.
pub(crate) fn tighten(server: &Evaluator<'_>, own: &Evaluator<'_>, text: &str, sv: Verdict, ov: Verdict) -> Verdict {
    if sv.decision == Decision::Deny {
        return sv;
    }
    if ov.decision == Decision::Deny {
        return ov;
    }
    let mut candidates: Vec<Candidate<'_>> = Vec::with_capacity(sv.findings.len() + ov.findings.len());
    candidates.extend(sv.findings.iter().map(|f| Candidate { found: &f.found, action: f.action, own: false }));
    candidates.extend(ov.findings.iter().map(|f| Candidate { found: &f.found, action: f.action, own: true }));
    // Stable: at equal spans the server's candidate stays first and wins ties.
    candidates.sort_by(|a, b| a.found.start.cmp(&b.found.start).then(b.found.end.cmp(&a.found.end)));
    let mut out = String::with_capacity(text.len());
    let mut findings: Vec<Finding> = Vec::new();
    let mut pii_reasons: Vec<Reason> = Vec::new();
    let mut pos = 0usize;
    let mut i = 0usize;
    while let Some(first) = candidates.get(i) {
        // A cluster: candidates overlapping each other, replaced as one span.
        let (start, mut end) = (first.found.start, first.found.end);
        let mut best = first;
        i += 1;
        while let Some(c) = candidates.get(i).filter(|c| c.found.start < end) {
            end = end.max(c.found.end);
            if rank(c.action) > rank(best.action) {
                best = c;
            }
            i += 1;
        }
        let value = text.get(start..end).unwrap_or_default();
        out.push_str(text.get(pos..start).unwrap_or_default());
        let eval = if best.own { own } else { server };
        let ty: &PiiType = &best.found.ty;
        match best.action {
            None | Some(PiiAction::PassThrough | PiiAction::Deny) => out.push_str(value),
            Some(PiiAction::Tokenize) => out.push_str(&eval.token(ty, value)),
            Some(PiiAction::Encrypt) => out.push_str(&eval.encrypted(ty, value)),
            Some(PiiAction::Redact) => out.push_str(eval.placeholder(ty)),
        }
        pos = end;
        if let Some(action) = best.action {
            let reason = Reason::Pii { outcome: action.into(), ty: ty.clone() };
            if !pii_reasons.contains(&reason) {
                pii_reasons.push(reason);
            }
        }
        findings.push(Finding { found: Match { ty: ty.clone(), start, end }, action: best.action });
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    let confirm = sv.decision == Decision::Confirm || ov.decision == Decision::Confirm;
    let decision = if confirm {
        Decision::Confirm
    } else if out != text {
        Decision::Transform
    } else {
        Decision::Allow
    };
    let policy_id = if ov.decision > sv.decision { ov.policy_id } else { sv.policy_id };
    let mut reasons: Vec<Reason> = Vec::new();
    for r in sv.reasons.into_iter().chain(ov.reasons) {
        if !matches!(r, Reason::Pii { .. }) && !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    reasons.extend(pii_reasons);
    Verdict { decision, text_out: Some(out), reasons, policy_id, findings, error: None }
}
