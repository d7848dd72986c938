//! The runtime-neutral service: every operation of SPEC §2, the message seam
//! ([`Service::handle_message`]) and the document seam ([`Service::govern_document`]).
//! HTTP routers, direct invocations, queues, Pub/Sub, blob and object triggers all call into
//! it; adapters only map their platform's shapes onto these calls.
//!
//! Layout: [`operation`] (operations and the invoke envelope), [`hooks`] (observers and
//! readiness probes), `pipeline` (one governed request → response + one
//! [`DecisionRecord`](crate::record::DecisionRecord)), `batch`, `readiness`, [`message`],
//! [`document`] and [`builder`].

pub mod builder;
pub mod document;
pub mod hooks;
pub mod message;
pub mod operation;

mod batch;
pub(crate) mod detokenize;
mod pipeline;
mod policy_cache;
mod readiness;
mod streaming;

pub use builder::{Budgets, BuildError, ServiceBuilder};
pub use document::{Disposition, DocumentMeta, DocumentOutcome};
pub use hooks::{Check, CheckStatus, Observer, Probe};
pub use message::{MemoryDedupe, MessageDedupe, MessageMeta, MessageOutcome, Seen};
pub use operation::Operation;
pub use streaming::{PostcheckStream, StreamQuery};

use crate::clock::Clock;
use crate::error::ApiError;
use crate::policy_source::PolicySource;
use crate::settings::{CorsOrigins, TrustedProxies};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use warden_engine::{Detector, Gate, Keyring, OnError, Policy, PolicyMode, RequestPolicy, TokenKey};

pub use crate::settings::DEFAULT_SALT;

/// The service's own settings (a slice of [`Settings`](crate::settings::Settings)).
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// `on_error` for an invalid request `policy_config` that names none, and for store
    /// failures (`ON_ERROR`).
    pub on_error: OnError,
    /// Largest accepted request body in bytes (413 above).
    pub body_limit: usize,
    /// Most items in one batch (422 above).
    pub max_batch: usize,
    /// Organisation id put into events (`WARDEN_ORG_ID`).
    pub org_id: Option<String>,
    /// Whether the token salt is the built-in default (readiness warning).
    pub default_salt: bool,
    /// Whether events are signed with the built-in default webhook secret (readiness warning).
    pub default_webhook_secret: bool,
    /// Environment name reported by readiness (`WARDEN_ENV`).
    pub environment: String,
    /// Largest document governed (`WARDEN_DOCUMENT_LIMIT`); larger ones are quarantined.
    pub document_limit: usize,
    /// The tool documents are governed as (`WARDEN_DOCUMENT_TOOL`).
    pub document_tool: String,
    /// Proxies whose `X-Forwarded-For` is believed (`WARDEN_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// Browser origins allowed (`WARDEN_CORS_ORIGINS`).
    pub cors_origins: CorsOrigins,
    /// How long answered message ids are remembered (`WARDEN_DEDUPE_TTL_S`).
    pub dedupe_ttl: core::time::Duration,
    /// `agent_id` of an HTTP `evaluate` that names none (the runtime's default).
    pub default_agent_id: Option<String>,
    /// What a request's `policy_config` may do (`WARDEN_REQUEST_POLICY`).
    pub request_policy: crate::settings::RequestPolicyMode,
    /// The shortest token (`PII_TOKEN_HEX_LEN`).
    pub token_hex_len: usize,
    /// Keys of the `encrypt` action (`WARDEN_ENCRYPT_KEYS`); without them a policy that
    /// encrypts is refused.
    pub keyring: Option<Keyring>,
    /// API keys that may detokenize (`WARDEN_DETOKENIZE_KEYS`).
    pub detokenize_keys: crate::auth::ApiKeys,
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            on_error: OnError::Block,
            body_limit: 1024 * 1024,
            max_batch: 1000,
            org_id: None,
            default_salt: false,
            default_webhook_secret: false,
            environment: String::from("production"),
            document_limit: crate::settings::DEFAULT_DOCUMENT_LIMIT,
            document_tool: String::from("document"),
            trusted_proxies: TrustedProxies::default(),
            cors_origins: CorsOrigins::Off,
            dedupe_ttl: crate::settings::DEFAULT_DEDUPE_TTL,
            default_agent_id: None,
            request_policy: crate::settings::RequestPolicyMode::Replace,
            token_hex_len: 8,
            keyring: None,
            detokenize_keys: crate::auth::ApiKeys::disabled(),
        }
    }
}

/// How a request arrived: decides what a transient store failure does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Channel {
    /// A synchronous caller (HTTP, direct invoke): a store failure is answered per
    /// `on_error`, since the caller cannot be asked to come back.
    #[default]
    Request,
    /// A redeliverable message (queue, Pub/Sub, stream): a store failure fails the message
    /// so the platform redelivers it.
    Message,
}

/// Where a request came from, for rate-limit keys and audit.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    /// The authenticated API key, if any (never logged; hashed for rate-limit keys).
    pub api_key: Option<String>,
    /// The client address, if known.
    pub client_addr: Option<IpAddr>,
    /// How the request arrived.
    pub channel: Channel,
    /// The platform's request id (Lambda request id, Pub/Sub message id...).
    pub request_id: Option<String>,
    /// Message id that budget spend is keyed by, so a redelivery is not charged twice.
    pub idempotency_key: Option<String>,
    /// `agent_id` of an `evaluate` that names none; else the service's default.
    pub default_agent_id: Option<String>,
}

/// The service: shared by every adapter. Build it with [`ServiceBuilder`].
pub struct Service {
    policy: Arc<PolicySource>,
    key: TokenKey,
    detector: Detector,
    config: ServiceConfig,
    clock: Arc<dyn Clock>,
    plugins: builder::Plugins,
    request_ids: std::sync::atomic::AtomicU64,
    policy_cache: policy_cache::PolicyCache,
}

impl core::fmt::Debug for Service {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Service")
            .field("policy", &self.policy.origin())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// True when the detector has the person detector's name tables (embedded, or given to
    /// [`ServiceBuilder::detector`]); without them a policy with `detect_extra: [person]` is
    /// refused ([`builder::NO_NAME_TABLES`]).
    pub fn has_name_tables(&self) -> bool {
        self.detector.has_names()
    }

    /// The policy source (for reloaders).
    pub fn policy_source(&self) -> &Arc<PolicySource> {
        &self.policy
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The engine's gate for `policy` with this service's key, detector, `on_error`, request
    /// policy mode and shortest token.
    pub fn gate<'a>(&'a self, policy: &'a Policy) -> Gate<'a> {
        let mode = match self.config.request_policy {
            crate::settings::RequestPolicyMode::Tighten => PolicyMode::Tighten,
            _ => PolicyMode::Replace,
        };
        let gate = Gate::new(policy, &self.key, &self.detector)
            .with_on_error(self.config.on_error)
            .with_mode(mode)
            .with_min_token_len(self.config.token_hex_len);
        match &self.config.keyring {
            Some(keyring) => gate.with_keyring(keyring),
            None => gate,
        }
    }

    /// A request's `policy_config`, validated once and cached by content (so a caller sending
    /// the same policy on every request does not make Warden compile it every time); refused
    /// with 422 `policy_config_disabled` when `WARDEN_REQUEST_POLICY=off`.
    pub(crate) fn request_policy(&self, config: Option<&Value>) -> Result<Option<Arc<RequestPolicy>>, ApiError> {
        let Some(config) = config else { return Ok(None) };
        if self.config.request_policy == crate::settings::RequestPolicyMode::Off {
            return Err(ApiError::new(
                warden_engine::ErrorCode::PolicyConfigDisabled,
                "per-request policies are disabled on this server (WARDEN_REQUEST_POLICY=off)",
            )
            .with_field("policy_config"));
        }
        let parsed = self.policy_cache.get_or_parse(config);
        if let RequestPolicy::TooLarge { field, message } = parsed.as_ref() {
            let field = if field.is_empty() { String::from("policy_config") } else { format!("policy_config.{field}") };
            return Err(ApiError::invalid_request(message.clone()).with_field(field));
        }
        if let RequestPolicy::Valid(p) = parsed.as_ref() {
            if p.detect_extra().person && !self.detector.has_names() {
                return Err(ApiError::invalid_request(builder::NO_NAME_TABLES).with_field("policy_config.detect_extra"));
            }
        }
        if let (RequestPolicy::Valid(p), None) = (parsed.as_ref(), &self.config.keyring) {
            if let Some(field) = p.encrypt_field() {
                return Err(ApiError::invalid_request(format!(
                    "`{field}` is `encrypt`, which needs reversible-token keys; this server has none (WARDEN_ENCRYPT_KEYS)"
                ))
                .with_field(format!("policy_config.{field}")));
            }
        }
        Ok(Some(parsed))
    }

    /// Runs `op` on a JSON request body; the result is the JSON response body.
    pub async fn run(&self, op: Operation, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        match op {
            Operation::Precheck => self.check(body, warden_engine::Direction::Ingress, meta).await,
            Operation::Postcheck => self.check(body, warden_engine::Direction::Egress, meta).await,
            Operation::Redact => self.redact(body, meta).await,
            Operation::Evaluate => self.evaluate(body, meta).await,
            Operation::Batch => self.batch(body, meta).await,
            Operation::Health => Ok(self.health()),
            Operation::Ready => Ok(self.ready().await.1),
            Operation::Detokenize => self.detokenize(body, meta).await,
        }
    }

    /// [`Service::run`] on a request body's bytes, answering the response body's bytes.
    /// Checks (the hot path) parse straight into their typed request and serialize their
    /// typed response, with no JSON tree in between; answers and errors are the same as
    /// [`Service::run`]'s.
    pub async fn run_body(&self, op: Operation, body: &[u8], meta: &RequestMeta) -> Result<Vec<u8>, ApiError> {
        let direction = match op {
            Operation::Precheck => warden_engine::Direction::Ingress,
            Operation::Postcheck => warden_engine::Direction::Egress,
            _ => {
                let answer = self.run(op, crate::error::parse_body(body)?, meta).await?;
                return crate::error::to_body(&answer);
            }
        };
        let mut req: warden_engine::CheckRequest = crate::error::parse_typed(body)?;
        // serde_json's `Value` keeps the last of repeated keys inside these free-form fields;
        // the strict reader refuses them, as it does everywhere else.
        if req.policy_config.is_some() || req.tool_config.is_some() {
            req = crate::error::from_value(crate::error::parse_body(body)?)?;
        }
        self.check_typed(req, direction, meta, crate::error::to_body).await?
    }

    /// Runs an invoke envelope (SPEC §2 `POST /`, the Tork guide's handler shape): the same
    /// operations as the routes, for HTTP, direct invocations, queue and Pub/Sub messages.
    /// The answer carries `request_id` (the platform's, else a generated one).
    pub async fn invoke(&self, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        let bare_payload = meta.channel == Channel::Message;
        let (op, rest) = operation::parse_envelope(body, bare_payload)?;
        let mut answer = self.run(op, Value::Object(rest), meta).await?;
        if let Value::Object(map) = &mut answer {
            let id = meta.request_id.clone().unwrap_or_else(|| self.generated_request_id());
            map.insert("request_id".into(), Value::String(id));
        }
        Ok(answer)
    }

    /// A request id unique within this process: the clock's milliseconds and a counter.
    fn generated_request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("req-{:x}-{n:x}", self.clock.now_ms())
    }

    /// The `agent_id` an `evaluate` without one gets.
    pub(crate) fn default_agent_id<'a>(&'a self, meta: &'a RequestMeta) -> Option<&'a str> {
        meta.default_agent_id.as_deref().or(self.config.default_agent_id.as_deref())
    }

    fn report_error(&self, code: warden_engine::ErrorCode, message: &str) {
        for o in &self.plugins.observers {
            o.error(code.as_str(), message);
        }
    }

    fn observe(&self, record: &crate::record::DecisionRecord) {
        for o in &self.plugins.observers {
            o.observe(record);
        }
    }
}
