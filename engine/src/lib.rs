//! Warden's engine: the policy model, PII detection, transforms, tokenization and decisions
//! of an AI-governance gate, plus budget arithmetic.
//!
//! An agent's tool call is checked before the tool runs (*precheck*, [`Direction::Ingress`])
//! and its answer after (*postcheck*, [`Direction::Egress`]). A [`Policy`] says, per tool and
//! direction, whether the call is allowed, denied or needs a human's confirmation, and what
//! happens to each kind of PII in the text: kept, tokenized, redacted or denied. The engine
//! answers with a [`Verdict`]: a [`Decision`], the text to forward and the [`Reason`]s.
//!
//! The engine is pure: no I/O, no clock, no randomness, no global state. Time, salts and
//! stores are passed in by the caller, so the same code runs in a server, a CLI and
//! WebAssembly (it is `no_std` + `alloc`).
//!
//! # Example
//!
//! ```
//! use warden_engine::policy_file::parse_policy;
//! use warden_engine::{CheckRequest, Decision, Detector, Direction, Gate, PolicyId, TokenKey};
//!
//! let policy = parse_policy(
//!     "policy.yaml",
//!     r#"
//! version: v1
//! tool_access:
//!   verify_identity:
//!     direction: ingress
//!     allow_pii:
//!       PII:email_address: pass_through
//!       PII:us_ssn: tokenize
//! deny_tools: [python.exec]
//! "#,
//! )?;
//! // Build the detector and the key once and share them: a gate only borrows.
//! let detector = Detector::new();
//! let key = TokenKey::new("salt");
//! let gate = Gate::new(&policy, &key, &detector);
//!
//! let request = CheckRequest {
//!     tool: "verify_identity".into(),
//!     raw_text: "Email alice@example.com, SSN: 123-45-6789".into(),
//!     ..CheckRequest::default()
//! };
//! let verdict = gate.check(&request, Direction::Ingress);
//! assert_eq!(verdict.decision, Decision::Transform);
//! assert_eq!(verdict.policy_id, PolicyId::ToolAccess);
//! assert_eq!(verdict.text_out.as_deref(), Some("Email alice@example.com, SSN: pii_7cfd5131"));
//! let reasons: Vec<String> = verdict.reasons.iter().map(ToString::to_string).collect();
//! assert_eq!(reasons, ["pii.allowed:PII:email_address", "pii.tokenized:PII:us_ssn"]);
//!
//! // `check_text` evaluates a bare text; denied text is never echoed.
//! let verdict = gate.check_text(Direction::Ingress, "python.exec", "", "print(1)");
//! assert_eq!(verdict.decision, Decision::Deny);
//! assert_eq!(verdict.text_out, None);
//! assert_eq!(verdict.reasons[0].to_string(), "blocked tool: code/exec");
//! # Ok::<(), warden_engine::policy_file::PolicyFileError>(())
//! ```
//!
//! # Policies
//!
//! Load a policy with [`policy_file::parse_policy`] (YAML or JSON text, errors with line and
//! field) or [`Policy::from_json_value`]; [`Policy::default`] is the built-in policy. A
//! `Policy` is validated once and cannot be built invalid; its getters expose the rules.
//! Evaluation follows a fixed precedence, reported as the verdict's [`PolicyId`]:
//! `deny_tools`, then the tool's [`ToolRule`], then `defaults.<direction>` ([`DefaultRule`]),
//! then network scopes and tools (all PII redacted), then the strict fallback (SSNs and
//! passwords deny, everything else passes).
//!
//! # Decisions and reasons
//!
//! [`Decision`]s are ordered by severity (`Deny > Confirm > Transform > Allow`) so that
//! combined checks take the maximum. A [`Reason`] displays (and serializes) as its stable
//! wire string, such as `pii.tokenized:PII:us_ssn` or `default.egress.redact`, and parses
//! back with [`str::parse`]. [`Verdict::findings`] lists every PII value found ([`Finding`],
//! [`Match`]), with what was done to it ([`PiiAction`]).
//!
//! # Requests and errors
//!
//! [`Gate::check`] takes the wire request ([`CheckRequest`]); [`CheckResponse::from_verdict`]
//! makes the response. A request may carry its own `policy_config`; when that is invalid,
//! its own `on_error` (else the gate's, [`Gate::with_on_error`]) decides ([`OnError`]) and
//! the verdict carries [`ErrorCode::PolicyInvalid`]. Every [`ErrorCode`] knows its HTTP
//! status and whether a retry may help.
//!
//! ```
//! use warden_engine::{CheckRequest, Decision, Detector, Direction, ErrorCode, Gate, Policy, TokenKey};
//!
//! let (policy, key, detector) = (Policy::default(), TokenKey::new("salt"), Detector::new());
//! let gate = Gate::new(&policy, &key, &detector);
//! let request = CheckRequest {
//!     tool: "crm.lookup".into(),
//!     raw_text: "hello".into(),
//!     policy_config: Some(serde_json::json!({"tool_access": 3, "on_error": "pass"})),
//!     ..CheckRequest::default()
//! };
//! let verdict = gate.check(&request, Direction::Ingress);
//! assert_eq!(verdict.decision, Decision::Allow);
//! assert_eq!(verdict.reasons[0].to_string(), "error:policy_invalid");
//! let code = verdict.error.map(|e| e.code);
//! assert_eq!(code, Some(ErrorCode::PolicyInvalid));
//! assert_eq!(code.map(ErrorCode::status), Some(422));
//! ```
//!
//! # JSON mode
//!
//! [`Gate::evaluate`] governs every string leaf of an arbitrary JSON payload and combines
//! the leaves' verdicts into one [`EvaluateResponse`]: the most severe decision, the
//! deduplicated reasons, the `violations` among them ([`Reason::is_violation`]), the
//! transformed payload and the distinct [`PiiFound`] pairs.
//!
//! ```
//! use serde_json::json;
//! use warden_engine::{Decision, Detector, EvaluateRequest, Gate, Policy, TokenKey};
//!
//! let (policy, key, detector) = (Policy::default(), TokenKey::new("salt"), Detector::new());
//! let gate = Gate::new(&policy, &key, &detector);
//! let request = EvaluateRequest {
//!     payload: json!({"to": "bob@example.com", "notes": ["SSN: 123-45-6789"]}),
//!     agent_id: "agent-7".into(),
//!     tool: Some("web.post".into()),
//!     ..EvaluateRequest::default()
//! };
//! let response = gate.evaluate(&request, 1_700_000_000);
//! assert_eq!(response.decision, Decision::Transform);
//! assert_eq!(response.modified_payload, json!({"to": "<USER_EMAIL>", "notes": ["SSN: <USER_SSN>"]}));
//! assert!(response.violations.is_empty());
//! ```
//!
//! # Redaction
//!
//! [`Gate::redact`] replaces every PII value with its type's placeholder ([`PiiKind::placeholder`],
//! or a custom type's) regardless of rules, and reports [`Entity`] spans in chars (Unicode
//! scalars), as the wire does. [`Gate::find`] returns the raw [`Match`]es with byte offsets;
//! [`Detector::detect`] finds built-in kinds only.
//!
//! ```
//! use warden_engine::{Detector, Gate, Policy, TokenKey};
//!
//! let (policy, key, detector) = (Policy::default(), TokenKey::new("salt"), Detector::new());
//! let out = Gate::new(&policy, &key, &detector).redact("Grüße: alice@example.com");
//! assert_eq!(out.redacted, "Grüße: <USER_EMAIL>");
//! assert_eq!((out.matches[0].ty.as_str(), out.matches[0].start, out.matches[0].end), ("email_address", 7, 24));
//! ```
//!
//! # Tokens
//!
//! `tokenize` replaces a value with `pii_` + hex of HMAC-SHA256 keyed by the [`TokenKey`]'s
//! salt over the value's canonical form (emails lowercased, SSNs, cards and phones as digits),
//! [`Policy::token_hex_len`] characters long. The same value gets the same token under the same
//! salt, so tokenized data can still be joined; keep the salt secret.
//!
//! # Streaming
//!
//! [`Gate::postcheck_stream`] (and [`Gate::check_stream`]) govern a text that arrives in chunks,
//! such as an AI model's streamed answer: [`TextStream::push`] bytes, get governed text back,
//! [`TextStream::finish`] for the rest and the verdict. The output equals the one-shot check's
//! for every decision but deny; a deny stops the stream ([`StreamStop`]).
//! `encrypt` replaces a value with a reversible token, `encpii.<kid>.<type>.<base32>`:
//! deterministic AES-SIV under the caller's [`Keyring`] ([`Gate::with_keyring`]), with the key id
//! and the PII type authenticated. [`Keyring::restore_text`] and [`Keyring::restore_json`] turn
//! tokens back into values, leaving unknown-key, tampered and malformed ones as they are with a
//! [`KeptReason`]. Without a keyring an encrypted value is redacted, never passed through.
//!
//! # Budgets and encodings
//!
//! The [`budget`] module holds the arithmetic of spend limits: [`budget::Money`] in integer
//! micro-USD, model prices, cost estimates, the allow / warn / exceed assessment and the
//! `budget_status` / `budget_info` shapes of [`CheckResponse`] and [`EvaluateResponse`]. The
//! caller keeps the spend and passes the clock. [`encode`] has the hex, HMAC and UTC date
//! helpers the adapters share.
//!
//! # Features
//!
//! - `std` (default): `std::error::Error` impls, and faster paths in dependencies.
//! - `yaml` (default, implies `std`): [`policy_file`], parsing YAML or JSON policy text with
//!   errors that name line and field.
//!
//! # `no_std`
//!
//! With `default-features = false` the engine is `no_std` + `alloc` and builds for targets
//! such as `wasm32v1-none`; everything but [`policy_file`] is available (load policies with
//! [`Policy::from_json_value`]).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// The crate docs link to `policy_file`, which exists only with `yaml`.
#![cfg_attr(not(feature = "yaml"), allow(rustdoc::broken_intra_doc_links))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod api;
pub mod budget;
mod detect;
pub mod encode;
mod error;
mod eval;
mod gate;
mod json_mode;
mod pii;
mod policy;
#[cfg(feature = "yaml")]
pub mod policy_file;
mod reason;
mod reversible;
mod stream;
mod text;
mod tighten;
mod token;

pub use api::{
    CheckRequest, CheckResponse, Entity, ErrorDetail, EvaluateRequest, EvaluateResponse, PiiFound, RedactRequest,
    RedactResponse,
};
pub use detect::{
    Detector, Extra, Found, NamesError, MAX_ADDRESS_SPAN, MAX_CONTEXT_REACH, MAX_NAMES_ASSET, MAX_PERSON_SPAN,
};
pub use error::{ErrorCode, ParseWireError};
pub use eval::{Decision, EvalError, Finding, Match, PolicyId, TorkDecision, Verdict};
pub use gate::{Gate, PolicyMode, RequestPolicy};
pub use pii::{PiiKind, PiiType};
pub use policy::{
    CustomRecognizer, DefaultRule, Direction, OnError, PiiAction, Policy, PolicyError, RuleAction, RuleDirection,
    ToolRule,
};
pub use reason::{PiiOutcome, Reason};
pub use reversible::{
    scan as scan_tokens, valid_kid, KeptReason, KeptToken, Keyring, KeyringError, RestoreOptions, RestoreReport,
    Restored, Token, DEFAULT_MAX_TOKENS, MAX_KEYS, MAX_LISTED, MAX_TOKEN_BODY, MAX_VALUE_BYTES, TOKEN_PREFIX,
};
pub use stream::{StreamEnd, StreamStop, TextStream, DEFAULT_MAX_HOLD, STEP};
pub use token::TokenKey;

/// Version of the engine (and of Warden), reported by `/api/v1/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
