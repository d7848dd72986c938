//! The engine's entry point: resolves a request's `policy_config` and `on_error`, then
//! evaluates texts (SPEC §3), JSON payloads (JSON mode) or redacts.

use crate::api::{CheckRequest, Entity, EvaluateRequest, EvaluateResponse, RedactResponse};
use crate::detect::Detector;
use crate::error::ErrorCode;
use crate::eval::{Evaluator, Match, Verdict};
use crate::pii::PiiType;
use crate::policy::{on_error_of, Direction, OnError, Policy};
use crate::text;
use crate::token::TokenKey;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Evaluates requests and texts against a server policy, with a token key and a detector.
/// Holds only references: cheap to build per request.
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    eval: Evaluator<'a>,
    on_error: OnError,
}

/// The policy a request is evaluated under: the server's, or its own `policy_config`.
enum Resolved {
    Server,
    Own(Box<Policy>),
    Invalid { on_error: OnError, message: String },
}

impl<'a> Gate<'a> {
    /// A gate over the server `policy`, tokenizing with `key`, finding PII with `detector`.
    /// A request whose `policy_config` is invalid and names no `on_error` is blocked; see
    /// [`Gate::with_on_error`].
    pub fn new(policy: &'a Policy, key: &'a TokenKey, detector: &'a Detector) -> Gate<'a> {
        Gate { eval: Evaluator { policy, key, detector, field: None }, on_error: OnError::Block }
    }

    /// Sets the `on_error` used when a request's `policy_config` is invalid and names none
    /// (the server's `ON_ERROR`).
    pub fn with_on_error(self, on_error: OnError) -> Gate<'a> {
        Gate { on_error, ..self }
    }

    /// The server policy.
    pub fn policy(&self) -> &'a Policy {
        self.eval.policy
    }

    fn resolve(&self, policy_config: Option<&serde_json::Value>) -> Resolved {
        match policy_config {
            None => Resolved::Server,
            Some(v) => match Policy::from_json_value(v) {
                Ok(p) => Resolved::Own(Box::new(p)),
                Err(e) => {
                    Resolved::Invalid { on_error: on_error_of(v).unwrap_or(self.on_error), message: e.to_string() }
                }
            },
        }
    }

    /// Evaluates a precheck (ingress) or postcheck (egress) request, under its
    /// `policy_config` when it has one.
    pub fn check(&self, req: &CheckRequest, direction: Direction) -> Verdict {
        match self.resolve(req.policy_config.as_ref()) {
            Resolved::Server => self.eval.check(direction, &req.tool, &req.scope, &req.raw_text),
            Resolved::Own(p) => {
                Evaluator { policy: &p, ..self.eval }.check(direction, &req.tool, &req.scope, &req.raw_text)
            }
            Resolved::Invalid { on_error, message } => {
                self.eval.on_error(on_error, ErrorCode::PolicyInvalid, &message, &req.raw_text)
            }
        }
    }

    /// Evaluates `text` for `tool` in `scope` and `direction` under the server policy
    /// (SPEC §3 precedence).
    pub fn check_text(&self, direction: Direction, tool: &str, scope: &str, text: &str) -> Verdict {
        self.eval.check(direction, tool, scope, text)
    }

    /// Evaluates a JSON-mode request: every string leaf of the payload, combined into one
    /// response made at `ts` (Unix seconds).
    pub fn evaluate(&self, req: &EvaluateRequest, ts: i64) -> EvaluateResponse {
        self.evaluate_counted(req, ts).0
    }

    /// [`evaluate`](Self::evaluate), with how many values of each PII type were found over
    /// all string leaves (in order of first occurrence) — what audit records and metrics count.
    pub fn evaluate_counted(&self, req: &EvaluateRequest, ts: i64) -> (EvaluateResponse, Vec<(PiiType, usize)>) {
        let direction = req.direction.unwrap_or_default();
        let tool = req.tool.as_deref().unwrap_or("");
        let scope = req.scope.as_deref().unwrap_or("");
        let resolved = self.resolve(req.policy_config.as_ref());
        let own;
        let (eval, invalid): (Evaluator<'_>, Option<(OnError, String)>) = match resolved {
            Resolved::Server => (self.eval, None),
            Resolved::Own(p) => {
                own = p;
                (Evaluator { policy: &own, ..self.eval }, None)
            }
            Resolved::Invalid { on_error, message } => (self.eval, Some((on_error, message))),
        };
        crate::json_mode::evaluate(&req.payload, ts, |field, leaf| {
            let eval = Evaluator { field, ..eval };
            match &invalid {
                Some((on_error, message)) => eval.on_error(*on_error, ErrorCode::PolicyInvalid, message, leaf),
                None => eval.check(direction, tool, scope, leaf),
            }
        })
    }

    /// Redacts every PII value (built-in and the server policy's custom types) in `text`
    /// with its placeholder. Match offsets are char (Unicode scalar) indices into `text`.
    pub fn redact(&self, text: &str) -> RedactResponse {
        let (redacted, matches) = self.eval.redact(text);
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

    /// Every PII value in `text` (built-in and the server policy's custom types), sorted by
    /// start, non-overlapping, with byte offsets. Built-in detection wins a tie with a custom
    /// match of the same span.
    pub fn find(&self, text: &str) -> Vec<Match> {
        self.eval.find(text)
    }

    /// The verdict `on_error` gives for an error with `code` on `text` (SPEC §3): `block`
    /// denies, `pass` allows unchanged, `best_effort` redacts every PII value. The verdict
    /// carries the error and the reason `error:<code>`.
    pub fn on_error(&self, on_error: OnError, code: ErrorCode, message: &str, text: &str) -> Verdict {
        self.eval.on_error(on_error, code, message, text)
    }
}
