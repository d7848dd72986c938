//! The document seam: one call for every stored object a platform hands over (an S3 object,
//! an Azure blob, a DynamoDB stream image). The core, not the adapter, decides what the bytes
//! are and what happens to them, so the same object gets the same disposition everywhere:
//!
//! - over `WARDEN_DOCUMENT_LIMIT` → quarantined unread (`error:payload_too_large`);
//! - JSON (by content type, or bytes that start like JSON) → JSON mode over every string
//!   leaf; JSON that does not parse while its content type says JSON → quarantined
//!   (`error:invalid_json`);
//! - other UTF-8 → governed as text;
//! - anything else is binary: it cannot be read or redacted, so its metadata (name and
//!   content type) is governed, and it is approved only when that passes unchanged.
//!
//! Documents are governed as ingress with tool `WARDEN_DOCUMENT_TOOL` (default `document`).

use super::pipeline::{Outcome, Subject};
use super::Service;
use crate::record::pii_counts;
use serde::Serialize;
use warden_engine::{CheckRequest, Decision, Direction, ErrorCode, EvaluateRequest, PolicyId, Reason};

/// Where a document came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentMeta {
    /// The source, e.g. `s3://bucket`, `azure-blob:ai-requests`, `dynamodb:table`; kept in
    /// audit records (as the scope) and used as the `agent_id` of JSON documents.
    pub source: String,
    /// The object's name or key (never logged: names can hold PII).
    pub name: String,
    /// Its declared content type, if any.
    pub content_type: Option<String>,
}

/// What happens to a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Allowed unchanged: copy to the approved destination.
    Approve,
    /// Transformed: write [`DocumentOutcome::output`] to the processed destination.
    Modify,
    /// Denied, needs confirmation, too large or unreadable: move to quarantine.
    Quarantine,
}

/// How the core read a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// JSON, governed in JSON mode.
    Json,
    /// UTF-8 text.
    Text,
    /// Anything else: governed by its metadata.
    Binary,
    /// Not read (over the limit).
    Unread,
}

/// The verdict on a document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocumentOutcome {
    /// The decision.
    pub decision: Decision,
    /// Why.
    pub reasons: Vec<Reason>,
    /// Which policy level decided.
    pub policy_id: PolicyId,
    /// The governed content for [`Disposition::Modify`] (the redacted text or JSON); `None`
    /// otherwise (the original stays as it is).
    #[serde(skip)]
    pub output: Option<Vec<u8>>,
    /// What to do with the document.
    pub disposition: Disposition,
    /// How it was read.
    pub kind: DocumentKind,
}

impl DocumentOutcome {
    fn refused(code: ErrorCode, kind: DocumentKind) -> DocumentOutcome {
        DocumentOutcome {
            decision: Decision::Deny,
            reasons: vec![Reason::Error(code)],
            policy_id: PolicyId::OnError,
            output: None,
            disposition: Disposition::Quarantine,
            kind,
        }
    }
}

fn disposition(decision: Decision) -> Disposition {
    match decision {
        Decision::Allow => Disposition::Approve,
        Decision::Transform => Disposition::Modify,
        Decision::Confirm | Decision::Deny => Disposition::Quarantine,
    }
}

fn looks_like_json(bytes: &[u8]) -> bool {
    matches!(bytes.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

impl Service {
    /// Governs one document; see the module documentation for the rules.
    pub fn govern_document(&self, bytes: &[u8], meta: &DocumentMeta) -> DocumentOutcome {
        let (now_ms, t0) = self.now();
        let tool = self.config.document_tool.clone();
        let subject = |raw_text: String| Subject {
            operation: "document",
            direction: Direction::Ingress,
            tool: tool.clone(),
            scope: meta.source.clone(),
            raw_text,
            corr_id: None,
            tags: Vec::new(),
            user_id: None,
            context: None,
        };
        let refuse = |code: ErrorCode, kind: DocumentKind| {
            let out = DocumentOutcome::refused(code, kind);
            let outcome = Outcome {
                decision: out.decision,
                policy_id: out.policy_id,
                reasons: out.reasons.clone(),
                raw_text_out: None,
                pii_counts: Vec::new(),
            };
            self.record(subject(String::new()), outcome, t0, now_ms);
            out
        };
        if bytes.len() > self.config.document_limit {
            return refuse(ErrorCode::PayloadTooLarge, DocumentKind::Unread);
        }
        let declared_json = meta.content_type.as_deref().is_some_and(|c| c.to_ascii_lowercase().contains("json"));
        let policy = self.policy.get();
        let gate = self.gate(&policy);
        if declared_json || looks_like_json(bytes) {
            match crate::json::from_slice(bytes) {
                Ok(payload) => {
                    let req = EvaluateRequest {
                        payload,
                        agent_id: meta.source.clone(),
                        tool: Some(tool.clone()),
                        direction: Some(Direction::Ingress),
                        scope: None,
                        policy_config: None,
                        corr_id: None,
                        user_id: None,
                    };
                    let (resp, counts) = gate.evaluate_counted(&req, now_ms.div_euclid(1000));
                    let output = (resp.decision == Decision::Transform)
                        .then(|| serde_json::to_vec(&resp.modified_payload).unwrap_or_default());
                    let out = DocumentOutcome {
                        decision: resp.decision,
                        reasons: resp.reasons.clone(),
                        policy_id: resp.policy_id,
                        output,
                        disposition: disposition(resp.decision),
                        kind: DocumentKind::Json,
                    };
                    let outcome = Outcome {
                        decision: resp.decision,
                        policy_id: resp.policy_id,
                        reasons: resp.reasons,
                        raw_text_out: (resp.decision != Decision::Deny).then(|| resp.modified_payload.to_string()),
                        pii_counts: counts.iter().map(|(t, n)| (t.name().to_owned(), *n)).collect(),
                    };
                    self.record(subject(req.payload.to_string()), outcome, t0, now_ms);
                    return out;
                }
                Err(_) if declared_json => return refuse(ErrorCode::InvalidJson, DocumentKind::Json),
                Err(_) => {}
            }
        }
        let (text, kind) = match core::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), DocumentKind::Text),
            Err(_) => {
                let described = format!("{} {}", meta.name, meta.content_type.as_deref().unwrap_or(""));
                (described.trim_end().to_owned(), DocumentKind::Binary)
            }
        };
        let req = CheckRequest { tool: tool.clone(), raw_text: text, ..CheckRequest::default() };
        let verdict = gate.check(&req, Direction::Ingress);
        let counts = pii_counts(verdict.findings.iter().map(|f| f.found.ty.name()));
        let disposition = match (kind, verdict.decision) {
            // A binary cannot be redacted: anything but a clean pass is quarantined.
            (DocumentKind::Binary, Decision::Allow) => Disposition::Approve,
            (DocumentKind::Binary, _) => Disposition::Quarantine,
            (_, d) => disposition(d),
        };
        let output = match disposition {
            Disposition::Modify => verdict.text_out.clone().map(String::into_bytes),
            _ => None,
        };
        let out = DocumentOutcome {
            decision: verdict.decision,
            reasons: verdict.reasons.clone(),
            policy_id: verdict.policy_id,
            output,
            disposition,
            kind,
        };
        let outcome = Outcome {
            decision: verdict.decision,
            policy_id: verdict.policy_id,
            reasons: verdict.reasons,
            raw_text_out: verdict.text_out,
            pii_counts: counts,
        };
        self.record(subject(req.raw_text), outcome, t0, now_ms);
        out
    }
}
