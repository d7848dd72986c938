//! Policy evaluation (SPEC §3): precedence, PII transforms, reasons and decisions of one text
//! under one policy. Request-level concerns (`policy_config`, wire types) live in `gate`.

use crate::detect::Detector;
use crate::error::ErrorCode;
use crate::pii::{PiiKind, PiiType};
use crate::policy::{Direction, OnError, PiiAction, Policy, RuleAction, RuleDirection};
use crate::reason::Reason;
use crate::reversible::Keyring;
use crate::token::TokenKey;
use alloc::borrow::ToOwned;
use alloc::collections::{BTreeMap, BinaryHeap};
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;
use serde::{Deserialize, Serialize};

/// The outcome of a check. Ordered by severity: `deny` > `confirm` > `transform` > `allow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Text passes unchanged.
    Allow,
    /// Text passes with PII transformed.
    Transform,
    /// A human must confirm the call.
    Confirm,
    /// The call is blocked.
    Deny,
}

impl Decision {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Transform => "transform",
            Decision::Confirm => "confirm",
            Decision::Deny => "deny",
        }
    }
}

/// A decision in the Tork guide's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TorkDecision {
    /// `allow`.
    Allow,
    /// `block`: Warden's `deny`, and `confirm` (a guide-style caller cannot ask a human).
    Block,
    /// `modify`: Warden's `transform`.
    Modify,
}

impl Decision {
    /// The decision as the Tork guide names it.
    pub const fn tork(self) -> TorkDecision {
        match self {
            Decision::Allow => TorkDecision::Allow,
            Decision::Transform => TorkDecision::Modify,
            Decision::Confirm | Decision::Deny => TorkDecision::Block,
        }
    }
}

/// Which precedence level decided (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyId {
    /// `deny_tools` matched.
    DenyExec,
    /// A `tool_access` rule matched.
    ToolAccess,
    /// `defaults.<direction>` applied.
    Defaults,
    /// Network scope or tool: all PII redacted.
    NetRedactRegex,
    /// Nothing else applied.
    StrictFallback,
    /// An invalid policy or internal failure, handled by `on_error`.
    OnError,
    /// A detokenize call (restoring reversible tokens), not a policy level.
    Detokenize,
}

impl PolicyId {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            PolicyId::DenyExec => "deny-exec",
            PolicyId::ToolAccess => "tool-access",
            PolicyId::Defaults => "defaults",
            PolicyId::NetRedactRegex => "net-redact-regex",
            PolicyId::StrictFallback => "strict-fallback",
            PolicyId::OnError => "on-error",
            PolicyId::Detokenize => "detokenize",
        }
    }
}

/// One detected PII value: byte offsets into the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// Its type.
    pub ty: PiiType,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

/// What a check found and did with one PII value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The value's type and span (bytes, in the input).
    pub found: Match,
    /// What was done with it; `None` when the level does not transform (strict fallback).
    pub action: Option<PiiAction>,
}

/// The result of evaluating one text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The decision.
    pub decision: Decision,
    /// The text to use; `None` on deny (denied text is never echoed).
    pub text_out: Option<String>,
    /// Reasons, in SPEC §3 order.
    pub reasons: Vec<Reason>,
    /// The level that decided.
    pub policy_id: PolicyId,
    /// Every PII value found, in text order.
    pub findings: Vec<Finding>,
    /// Set when `on_error` decided: the error code and a human-readable message.
    pub error: Option<EvalError>,
}

/// An error handled by `on_error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalError {
    /// Stable code, e.g. [`ErrorCode::PolicyInvalid`].
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

impl Verdict {
    /// Count of findings per type, in order of first occurrence.
    pub fn pii_counts(&self) -> Vec<(PiiType, usize)> {
        let mut out: Vec<(PiiType, usize)> = Vec::new();
        for f in &self.findings {
            match out.iter_mut().find(|(t, _)| *t == f.found.ty) {
                Some((_, n)) => *n += 1,
                None => out.push((f.found.ty.clone(), 1)),
            }
        }
        out
    }
}

/// The next non-empty match of a recognizer, as byte offsets.
fn next_nonempty(it: &mut regex_automata::meta::FindMatches<'_, '_>) -> Option<(usize, usize)> {
    it.find(|m| m.start() < m.end()).map(|m| (m.start(), m.end()))
}

/// Evaluates texts against one policy with one token key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Evaluator<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) key: &'a TokenKey,
    pub(crate) detector: &'a Detector,
    /// The shortest token the deployment accepts; a policy's `token_hex_len` only lengthens.
    pub(crate) min_token_len: usize,
    /// The JSON member name of the text being evaluated, if any: context for detection.
    pub(crate) field: Option<&'a str>,
    /// The keys of the `encrypt` action; without them encrypted values are redacted.
    pub(crate) keyring: Option<&'a Keyring>,
}

/// How a level treats PII: per-type overrides, then a fallback action.
pub(crate) struct Plan<'a> {
    pub(crate) policy_id: PolicyId,
    pub(crate) first_reason: Option<Reason>,
    pub(crate) base: Decision,
    pub(crate) allow_pii: Option<&'a BTreeMap<PiiType, PiiAction>>,
    pub(crate) fallback: PiiAction,
}

impl Plan<'_> {
    /// What this level does with a value of type `ty`.
    pub(crate) fn action(&self, ty: &PiiType) -> PiiAction {
        self.allow_pii.and_then(|a| a.get(ty)).copied().unwrap_or(self.fallback)
    }
}

/// The level that decides a check, before looking at the text.
pub(crate) enum Level<'a> {
    /// `deny_tools` or a denying tool rule: the verdict, whatever the text.
    Denied(Verdict),
    /// The strict fallback: SSNs and passwords deny, everything else passes unchanged.
    Strict,
    /// A level that transforms PII by a plan.
    Apply(Plan<'a>),
}

impl<'a> Evaluator<'a> {
    /// Every PII value in `text` (built-in and the policy's custom types), sorted by start,
    /// non-overlapping. Earliest first, then longest, then built-in before custom (then the
    /// earlier recognizer): a greedy non-overlapping selection.
    ///
    /// The candidates of every source (the detector, each recognizer) come in start order, so
    /// they are merged lazily through a heap holding one head per source: memory stays
    /// proportional to the selection, however many overlapping candidates the recognizers
    /// produce, and only selected custom matches allocate their type name.
    pub(crate) fn find(&self, text: &str) -> Vec<Match> {
        let builtin = self.detector.detect_with_extra(self.field, text, self.policy.detect_extra());
        let custom_pii = self.policy.custom_pii();
        if custom_pii.is_empty() {
            return builtin
                .into_iter()
                .map(|f| Match { ty: PiiType::Builtin(f.kind), start: f.start, end: f.end })
                .collect();
        }
        let mut builtin = builtin.into_iter();
        let mut customs: Vec<_> = custom_pii.iter().map(|c| c.regex().find_iter(text)).collect();
        // Heap entries: (start, Reverse(end), source) with source 0 = built-in, i + 1 = recognizer i.
        let mut heads: BinaryHeap<Reverse<(usize, Reverse<usize>, usize)>> = BinaryHeap::new();
        // The kind of the built-in head in the heap (there is at most one).
        let mut builtin_kind: Option<PiiKind> = None;
        if let Some(f) = builtin.next() {
            heads.push(Reverse((f.start, Reverse(f.end), 0)));
            builtin_kind = Some(f.kind);
        }
        for (i, it) in customs.iter_mut().enumerate() {
            if let Some((start, end)) = next_nonempty(it) {
                heads.push(Reverse((start, Reverse(end), i + 1)));
            }
        }
        let mut out: Vec<Match> = Vec::new();
        let mut last_end = 0usize;
        while let Some(Reverse((start, Reverse(end), source))) = heads.pop() {
            let recognizer = source.checked_sub(1);
            let kind = match recognizer {
                None => {
                    let kind = builtin_kind.take();
                    if let Some(f) = builtin.next() {
                        heads.push(Reverse((f.start, Reverse(f.end), 0)));
                        builtin_kind = Some(f.kind);
                    }
                    kind
                }
                Some(i) => {
                    if let Some((s, e)) = customs.get_mut(i).and_then(next_nonempty) {
                        heads.push(Reverse((s, Reverse(e), source)));
                    }
                    None
                }
            };
            if out.is_empty() || start >= last_end {
                let ty = match (kind, recognizer.and_then(|i| custom_pii.get(i))) {
                    (Some(kind), _) => PiiType::Builtin(kind),
                    (None, Some(c)) => PiiType::Custom(c.name().to_owned()),
                    (None, None) => continue,
                };
                last_end = end;
                out.push(Match { ty, start, end });
            }
        }
        out
    }

    /// Evaluates `text` for `tool` in `scope` and `direction` (SPEC §3 precedence).
    pub(crate) fn check(&self, direction: Direction, tool: &str, scope: &str, text: &str) -> Verdict {
        match self.level(direction, tool, scope) {
            Level::Denied(v) => v,
            Level::Strict => self.strict(text),
            Level::Apply(plan) => self.apply(text, &plan),
        }
    }

    /// The level that decides for `tool` in `scope` and `direction` (SPEC §3 precedence), which
    /// does not depend on the text: streaming evaluation fixes it before the first byte.
    pub(crate) fn level(&self, direction: Direction, tool: &str, scope: &str) -> Level<'a> {
        let p = self.policy;
        if p.deny_tools().iter().any(|t| t == tool) {
            let reason =
                if tool.ends_with(".exec") { Reason::BlockedCodeExec } else { Reason::BlockedTool(tool.to_owned()) };
            return Level::Denied(denied(PolicyId::DenyExec, reason));
        }
        if let Some(rule) = p.tool_access().get(tool).filter(|r| applies(r.direction(), direction)) {
            let (base, first_reason, fallback) = match rule.action() {
                RuleAction::Deny => return Level::Denied(denied(PolicyId::ToolAccess, Reason::ToolAccessDeny)),
                RuleAction::Confirm => (Decision::Confirm, Some(Reason::ToolAccessConfirm), PiiAction::Redact),
                other => (Decision::Allow, None, pii_action(other)),
            };
            return Level::Apply(Plan {
                policy_id: PolicyId::ToolAccess,
                first_reason,
                base,
                allow_pii: Some(rule.allow_pii()),
                fallback,
            });
        }
        if let Some(d) = p.defaults_for(direction) {
            let (base, fallback) = match d.action() {
                RuleAction::Deny => (Decision::Deny, PiiAction::Deny),
                RuleAction::Confirm => (Decision::Confirm, PiiAction::Redact),
                other => (Decision::Allow, pii_action(other)),
            };
            return Level::Apply(Plan {
                policy_id: PolicyId::Defaults,
                first_reason: Some(Reason::Defaults { direction, action: d.action() }),
                base,
                allow_pii: Some(d.allow_pii()),
                fallback,
            });
        }
        let network = p.network_scopes().iter().any(|s| scope.starts_with(s.as_str()))
            || p.network_tools().iter().any(|t| tool.starts_with(t.as_str()));
        if network {
            return Level::Apply(Plan {
                policy_id: PolicyId::NetRedactRegex,
                first_reason: None,
                base: Decision::Allow,
                allow_pii: None,
                fallback: PiiAction::Redact,
            });
        }
        Level::Strict
    }

    /// The verdict `on_error` gives for an error with `code` (SPEC §3).
    pub(crate) fn on_error(&self, on_error: OnError, code: ErrorCode, message: &str, text: &str) -> Verdict {
        let reason = Reason::Error(code);
        let error = Some(EvalError { code, message: message.to_owned() });
        let mut v = match on_error {
            OnError::Block => denied(PolicyId::OnError, reason),
            OnError::Pass => Verdict {
                decision: Decision::Allow,
                text_out: Some(text.to_owned()),
                reasons: alloc::vec![reason],
                policy_id: PolicyId::OnError,
                findings: Vec::new(),
                error: None,
            },
            OnError::BestEffort => {
                let plan = Plan {
                    policy_id: PolicyId::OnError,
                    first_reason: Some(reason),
                    base: Decision::Allow,
                    allow_pii: None,
                    fallback: PiiAction::Redact,
                };
                self.apply(text, &plan)
            }
        };
        v.error = error;
        v
    }

    /// Redacts every PII value in `text` with its placeholder; matches have byte offsets.
    pub(crate) fn redact(&self, text: &str) -> (String, Vec<Match>) {
        let matches = self.find(text);
        let mut out = String::with_capacity(text.len());
        let mut pos = 0usize;
        for m in &matches {
            out.push_str(text.get(pos..m.start).unwrap_or_default());
            out.push_str(self.placeholder(&m.ty));
            pos = m.end;
        }
        out.push_str(text.get(pos..).unwrap_or_default());
        (out, matches)
    }

    /// The token of `value`, at least `min_token_len` hex digits long.
    pub(crate) fn token(&self, ty: &PiiType, value: &str) -> String {
        self.key.token(ty, value, self.policy.token_hex_len().max(self.min_token_len))
    }

    /// The reversible token of `value`; the placeholder when there is no keyring or the value
    /// is too long to encrypt (fail closed: an encrypted value is never passed through).
    pub(crate) fn encrypted(&self, ty: &'a PiiType, value: &str) -> String {
        match self.keyring.and_then(|k| k.encrypt(ty, value)) {
            Some(token) => token,
            None => String::from(self.placeholder(ty)),
        }
    }

    pub(crate) fn placeholder(&self, ty: &'a PiiType) -> &'a str {
        match ty {
            PiiType::Builtin(k) => k.placeholder(),
            PiiType::Custom(name) => {
                self.policy.custom_pii().iter().find(|c| c.name() == name).map_or("<REDACTED>", |c| c.placeholder())
            }
        }
    }

    /// Whether the strict fallback denies a value of type `ty`.
    pub(crate) fn strict_blocks(ty: &PiiType) -> bool {
        matches!(ty, PiiType::Builtin(PiiKind::UsSsn | PiiKind::Password))
    }

    fn strict(&self, text: &str) -> Verdict {
        let matches = self.find(text);
        let mut reasons: Vec<Reason> = Vec::new();
        for m in &matches {
            if Self::strict_blocks(&m.ty) {
                let r = Reason::StrictPiiBlocked(m.ty.clone());
                if !reasons.contains(&r) {
                    reasons.push(r);
                }
            }
        }
        let findings = matches.into_iter().map(|found| Finding { found, action: None }).collect();
        if reasons.is_empty() {
            Verdict {
                decision: Decision::Allow,
                text_out: Some(text.to_owned()),
                reasons: alloc::vec![Reason::StrictFallbackAllow],
                policy_id: PolicyId::StrictFallback,
                findings,
                error: None,
            }
        } else {
            Verdict {
                decision: Decision::Deny,
                text_out: None,
                reasons,
                policy_id: PolicyId::StrictFallback,
                findings,
                error: None,
            }
        }
    }

    fn apply(&self, text: &str, plan: &Plan<'_>) -> Verdict {
        let matches = self.find(text);
        let mut out = String::with_capacity(text.len() + 16 * matches.len());
        let mut reasons: Vec<Reason> = plan.first_reason.iter().cloned().collect();
        let mut seen: Vec<(PiiAction, &PiiType)> = Vec::new();
        let mut denied_any = false;
        let mut pos = 0usize;
        let mut findings = Vec::with_capacity(matches.len());
        for m in &matches {
            let action = plan.action(&m.ty);
            let value = text.get(m.start..m.end).unwrap_or_default();
            out.push_str(text.get(pos..m.start).unwrap_or_default());
            match action {
                PiiAction::PassThrough => out.push_str(value),
                PiiAction::Tokenize => out.push_str(&self.token(&m.ty, value)),
                PiiAction::Encrypt => out.push_str(&self.encrypted(&m.ty, value)),
                PiiAction::Redact => out.push_str(self.placeholder(&m.ty)),
                PiiAction::Deny => denied_any = true,
            }
            pos = m.end;
            findings.push(Finding { found: m.clone(), action: Some(action) });
            if !seen.iter().any(|(a, t)| *a == action && *t == &m.ty) {
                seen.push((action, &m.ty));
                reasons.push(Reason::Pii { outcome: action.into(), ty: m.ty.clone() });
            }
        }
        out.push_str(text.get(pos..).unwrap_or_default());
        let decision = if denied_any || plan.base == Decision::Deny {
            Decision::Deny
        } else if plan.base == Decision::Confirm {
            Decision::Confirm
        } else if out != text {
            Decision::Transform
        } else {
            Decision::Allow
        };
        let text_out = if decision == Decision::Deny { None } else { Some(out) };
        Verdict { decision, text_out, reasons, policy_id: plan.policy_id, findings, error: None }
    }
}

fn applies(rule: RuleDirection, dir: Direction) -> bool {
    matches!(
        (rule, dir),
        (RuleDirection::Both, _)
            | (RuleDirection::Ingress, Direction::Ingress)
            | (RuleDirection::Egress, Direction::Egress)
    )
}

/// The PII action of a non-`deny`, non-`confirm` rule action.
fn pii_action(a: RuleAction) -> PiiAction {
    match a {
        RuleAction::PassThrough => PiiAction::PassThrough,
        RuleAction::Tokenize => PiiAction::Tokenize,
        RuleAction::Deny => PiiAction::Deny,
        RuleAction::Encrypt => PiiAction::Encrypt,
        RuleAction::Redact | RuleAction::Confirm => PiiAction::Redact,
    }
}

fn denied(policy_id: PolicyId, reason: Reason) -> Verdict {
    Verdict {
        decision: Decision::Deny,
        text_out: None,
        reasons: alloc::vec![reason],
        policy_id,
        findings: Vec::new(),
        error: None,
    }
}
