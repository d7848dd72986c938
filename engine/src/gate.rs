//! The engine's entry point: resolves a request's `policy_config` and `on_error`, then
//! evaluates texts (SPEC §3), JSON payloads (JSON mode) or redacts.

use crate::api::{CheckRequest, Entity, EvaluateRequest, EvaluateResponse, RedactResponse};
use crate::detect::Detector;
use crate::error::ErrorCode;
use crate::eval::{Evaluator, Match, Verdict};
use crate::pii::PiiType;
use crate::policy::{on_error_of, Direction, OnError, Policy};
use crate::reversible::Keyring;
use crate::stream::TextStream;
use crate::text;
use crate::tighten;
use crate::token::TokenKey;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Evaluates requests and texts against a server policy, with a token key and a detector.
/// Holds only references: cheap to build per request.
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    pub(crate) eval: Evaluator<'a>,
    on_error: OnError,
    mode: PolicyMode,
}

/// How a request's own `policy_config` combines with the server policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PolicyMode {
    /// The request's policy replaces the server's for that request (SPEC §3).
    #[default]
    Replace,
    /// The request's policy may only make the decision stricter: both evaluate, the stricter
    /// decision wins, each PII value gets the stricter action, and an invalid request policy
    /// gets the stricter of its own and the server's `on_error`.
    Tighten,
}

/// A request's `policy_config`, validated once: valid policies can be cached and reused
/// across requests (validation compiles the custom recognizers).
#[derive(Clone, Debug)]
pub enum RequestPolicy {
    /// A valid policy.
    Valid(Box<Policy>),
    /// A well-formed one over a resource limit (too many recognizers or entries): services
    /// refuse the request (422 naming `field`); evaluated like an invalid one otherwise.
    TooLarge {
        /// The offending field of the policy.
        field: String,
        /// What limit it exceeds.
        message: String,
    },
    /// An invalid one, with its own `on_error` when it names a valid one.
    Invalid {
        /// The `on_error` the document names, if valid.
        on_error: Option<OnError>,
        /// What is wrong (naming the field).
        message: String,
    },
}

impl RequestPolicy {
    /// Validates a `policy_config`.
    pub fn parse(config: &serde_json::Value) -> RequestPolicy {
        match Policy::from_json_value(config) {
            Ok(p) => RequestPolicy::Valid(Box::new(p)),
            Err(e) if e.limit => RequestPolicy::TooLarge { field: e.field.clone(), message: e.to_string() },
            Err(e) => RequestPolicy::Invalid { on_error: on_error_of(config), message: e.to_string() },
        }
    }
}

impl<'a> Gate<'a> {
    /// A gate over the server `policy`, tokenizing with `key`, finding PII with `detector`.
    /// A request whose `policy_config` is invalid and names no `on_error` is blocked; see
    /// [`Gate::with_on_error`].
    pub fn new(policy: &'a Policy, key: &'a TokenKey, detector: &'a Detector) -> Gate<'a> {
        Gate {
            eval: Evaluator { policy, key, detector, min_token_len: 0, field: None, keyring: None },
            on_error: OnError::Block,
            mode: PolicyMode::Replace,
        }
    }

    /// Sets the keys of the `encrypt` action (reversible tokens). Without a keyring, values a
    /// policy encrypts are redacted; services refuse such policies up front
    /// ([`Policy::encrypt_field`]).
    pub fn with_keyring(self, keyring: &'a Keyring) -> Gate<'a> {
        Gate { eval: Evaluator { keyring: Some(keyring), ..self.eval }, ..self }
    }

    /// Sets how a request's `policy_config` combines with the server policy.
    pub fn with_mode(self, mode: PolicyMode) -> Gate<'a> {
        Gate { mode, ..self }
    }

    /// Makes every token at least `hex_len` hex digits long (a policy's `token_hex_len` can
    /// only lengthen it).
    pub fn with_min_token_len(self, hex_len: usize) -> Gate<'a> {
        Gate { eval: Evaluator { min_token_len: hex_len, ..self.eval }, ..self }
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

    /// The `on_error` for an invalid request policy that names `own` (or none).
    fn invalid_on_error(&self, own: Option<OnError>) -> OnError {
        match self.mode {
            PolicyMode::Replace => own.unwrap_or(self.on_error),
            PolicyMode::Tighten => tighten::stricter_on_error(own.unwrap_or(self.on_error), self.on_error),
        }
    }

    /// One text under the server policy and, when given, the request's policy.
    /// `field`: the JSON member name of the text in JSON mode (context for detection).
    fn check_one(
        &self,
        request: Option<&RequestPolicy>,
        field: Option<&str>,
        direction: Direction,
        tool: &str,
        scope: &str,
        text: &str,
    ) -> Verdict {
        let server = Evaluator { field, ..self.eval };
        match request {
            None => server.check(direction, tool, scope, text),
            Some(RequestPolicy::Valid(p)) => {
                let own = Evaluator { policy: p, ..server };
                let ov = own.check(direction, tool, scope, text);
                match self.mode {
                    PolicyMode::Replace => ov,
                    PolicyMode::Tighten => {
                        let sv = server.check(direction, tool, scope, text);
                        tighten::tighten(&server, &own, text, sv, ov)
                    }
                }
            }
            Some(RequestPolicy::Invalid { on_error, message }) => {
                server.on_error(self.invalid_on_error(*on_error), ErrorCode::PolicyInvalid, message, text)
            }
            Some(RequestPolicy::TooLarge { message, .. }) => {
                server.on_error(self.invalid_on_error(None), ErrorCode::PolicyInvalid, message, text)
            }
        }
    }

    /// Evaluates a precheck (ingress) or postcheck (egress) request, under its
    /// `policy_config` when it has one (validated here; see [`Gate::check_with`] to reuse a
    /// validated one).
    pub fn check(&self, req: &CheckRequest, direction: Direction) -> Verdict {
        let request = req.policy_config.as_ref().map(RequestPolicy::parse);
        self.check_with(req, direction, request.as_ref())
    }

    /// [`Gate::check`] with the request's `policy_config` already validated (`None`: the
    /// server policy alone, whatever `req.policy_config` holds).
    pub fn check_with(&self, req: &CheckRequest, direction: Direction, request: Option<&RequestPolicy>) -> Verdict {
        self.check_one(request, None, direction, &req.tool, &req.scope, &req.raw_text)
    }

    /// Evaluates `text` for `tool` in `scope` and `direction` under the server policy
    /// (SPEC §3 precedence).
    pub fn check_text(&self, direction: Direction, tool: &str, scope: &str, text: &str) -> Verdict {
        self.eval.check(direction, tool, scope, text)
    }

    /// Evaluates a text that arrives in chunks for `tool` in `scope` and `direction` under the
    /// server policy (the request's own `policy_config` is not supported here): see
    /// [`TextStream`].
    pub fn check_stream(&self, direction: Direction, tool: &str, scope: &str) -> TextStream {
        TextStream::new(self.eval.level(direction, tool, scope))
    }

    /// [`check_stream`](Self::check_stream) for a postcheck (egress): a tool's answer, such as
    /// an AI model's streamed response.
    pub fn postcheck_stream(&self, tool: &str, scope: &str) -> TextStream {
        self.check_stream(Direction::Egress, tool, scope)
    }

    /// Evaluates a JSON-mode request: every string leaf of the payload, combined into one
    /// response made at `ts` (Unix seconds).
    pub fn evaluate(&self, req: &EvaluateRequest, ts: i64) -> EvaluateResponse {
        self.evaluate_counted(req, ts).0
    }

    /// [`evaluate`](Self::evaluate), with how many values of each PII type were found over
    /// all string leaves (in order of first occurrence) — what audit records and metrics count.
    pub fn evaluate_counted(&self, req: &EvaluateRequest, ts: i64) -> (EvaluateResponse, Vec<(PiiType, usize)>) {
        let request = req.policy_config.as_ref().map(RequestPolicy::parse);
        self.evaluate_with(req, ts, request.as_ref())
    }

    /// [`Gate::evaluate_counted`] with the request's `policy_config` already validated.
    pub fn evaluate_with(
        &self,
        req: &EvaluateRequest,
        ts: i64,
        request: Option<&RequestPolicy>,
    ) -> (EvaluateResponse, Vec<(PiiType, usize)>) {
        let direction = req.direction.unwrap_or_default();
        let tool = req.tool.as_deref().unwrap_or("");
        let scope = req.scope.as_deref().unwrap_or("");
        crate::json_mode::evaluate(&req.payload, ts, |field, leaf| {
            self.check_one(request, field, direction, tool, scope, leaf)
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
