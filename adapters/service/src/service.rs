//! The platform-neutral service: every operation of SPEC §2 on JSON values, with auth-free
//! business logic (policy, budgets, rate limits, observers). HTTP routers, the invoke
//! envelope, queues and Pub/Sub handlers all call [`Service::run`].

use crate::budget::{BudgetStore, SpendRequest};
use crate::clock::Clock;
use crate::error::{from_value, ApiError};
use crate::policy_source::PolicySource;
use crate::ratelimit::{rate_key, RateLimiter};
use crate::record::DecisionRecord;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use warden_engine::api::{Context, EvaluateRequest, RedactRequest};
use warden_engine::budget::{Charge, PriceTable};
use warden_engine::{CheckRequest, CheckResponse, Decision, Detector, Direction, OnError, PolicyId, TokenKey};

/// An operation of SPEC §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `POST /api/v1/precheck`.
    Precheck,
    /// `POST /api/v1/postcheck`.
    Postcheck,
    /// `POST /api/v1/redact`.
    Redact,
    /// `POST /api/v1/evaluate`.
    Evaluate,
    /// `POST /api/v1/batch`.
    Batch,
    /// `GET /api/v1/health`.
    Health,
    /// `GET /api/v1/ready`.
    Ready,
}

impl Operation {
    /// Parses an invoke-envelope `action`.
    pub fn from_action(s: &str) -> Option<Operation> {
        Some(match s {
            "precheck" => Operation::Precheck,
            "postcheck" => Operation::Postcheck,
            "redact" => Operation::Redact,
            "evaluate" => Operation::Evaluate,
            "batch" => Operation::Batch,
            "health" => Operation::Health,
            "ready" => Operation::Ready,
            _ => return None,
        })
    }

    /// The action / metrics name.
    pub const fn name(self) -> &'static str {
        match self {
            Operation::Precheck => "precheck",
            Operation::Postcheck => "postcheck",
            Operation::Redact => "redact",
            Operation::Evaluate => "evaluate",
            Operation::Batch => "batch",
            Operation::Health => "health",
            Operation::Ready => "ready",
        }
    }
}

/// Sees every decision: audit writers, metrics, event dispatchers.
pub trait Observer: Send + Sync {
    /// Called once per governed request, after the decision, off the decision's critical path
    /// as far as the implementation can make it (e.g. enqueue, don't send).
    fn observe(&self, record: &DecisionRecord);

    /// Called when a component failed but the request was still answered (a store is down).
    fn error(&self, code: &str, message: &str) {
        let _ = (code, message);
    }

    /// Called when a request was refused by the rate limiter.
    fn rate_limited(&self) {}
}

/// One readiness component (SPEC §2 `/api/v1/ready`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// `ok`, `warning`, `error` or `disabled`.
    pub status: &'static str,
    /// Details for operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    /// A check with a status and optional detail.
    pub fn new(status: &'static str, detail: Option<String>) -> Check {
        Check { status, detail }
    }
}

/// A readiness probe contributed by a platform component (DLQ, stores, ...).
#[async_trait::async_trait]
pub trait Probe: Send + Sync {
    /// The component name in `checks`.
    fn name(&self) -> &'static str;
    /// Its current state.
    async fn check(&self) -> Check;
}

/// Service settings (SPEC §9); secrets are not here but in the service itself.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// `on_error` for an invalid request `policy_config` that names none (`ON_ERROR`).
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
        }
    }
}

/// Where a request came from, for rate-limit keys and audit.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    /// The authenticated API key, if any (never logged; hashed for rate-limit keys).
    pub api_key: Option<String>,
    /// The client address, if known.
    pub client_addr: Option<std::net::IpAddr>,
}

/// The salt used when `PII_TOKEN_SALT` is unset; readiness warns about it.
pub const DEFAULT_SALT: &str = "warden-default-salt-change-me";

/// The service: shared by every adapter.
pub struct Service {
    policy: Arc<PolicySource>,
    key: TokenKey,
    detector: Detector,
    config: ServiceConfig,
    clock: Arc<dyn Clock>,
    observers: Vec<Arc<dyn Observer>>,
    probes: Vec<Arc<dyn Probe>>,
    budgets: Option<Budgets>,
    limiter: Option<Arc<dyn RateLimiter>>,
}

/// Per-user budgets (SPEC §6): where spend is kept and how LLM cost is priced.
#[derive(Clone)]
pub struct Budgets {
    /// The store (memory, SQLite or Redis).
    pub store: Arc<dyn BudgetStore>,
    /// Model prices.
    pub prices: PriceTable,
}

/// A request's budget outcome, joined into its response.
struct BudgetJoin {
    decision: Decision,
    reason: String,
    status: Option<Value>,
    info: Option<Value>,
    failed: bool,
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
    /// A service evaluating `policy` with token salt `key`.
    pub fn new(policy: Arc<PolicySource>, key: TokenKey, config: ServiceConfig, clock: Arc<dyn Clock>) -> Service {
        Service {
            policy,
            key,
            detector: Detector::new(),
            config,
            clock,
            observers: Vec::new(),
            probes: Vec::new(),
            budgets: None,
            limiter: None,
        }
    }

    /// Adds an observer of every decision.
    pub fn with_observer(mut self, o: Arc<dyn Observer>) -> Service {
        self.observers.push(o);
        self
    }

    /// Adds a readiness probe.
    pub fn with_probe(mut self, p: Arc<dyn Probe>) -> Service {
        self.probes.push(p);
        self
    }

    /// Enables per-user budgets.
    pub fn with_budgets(mut self, b: Budgets) -> Service {
        self.budgets = Some(b);
        self
    }

    /// Enables rate limiting.
    pub fn with_rate_limiter(mut self, l: Arc<dyn RateLimiter>) -> Service {
        self.limiter = Some(l);
        self
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The policy source (for reloaders).
    pub fn policy_source(&self) -> &Arc<PolicySource> {
        &self.policy
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Runs `op` on a JSON request body; the result is the JSON response body.
    pub async fn run(&self, op: Operation, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        match op {
            Operation::Precheck => self.check(body, Direction::Ingress, meta).await.map(to_json),
            Operation::Postcheck => self.check(body, Direction::Egress, meta).await.map(to_json),
            Operation::Redact => self.redact(body, meta).await.map(to_json),
            Operation::Evaluate => self.evaluate(body, meta).await.map(to_json),
            Operation::Batch => self.batch(body, meta).await,
            Operation::Health => Ok(self.health()),
            Operation::Ready => Ok(self.ready().await.1),
        }
    }

    /// Runs an invoke envelope `{action, ...}` (SPEC §2 `POST /`): the same operations as the
    /// routes, for direct invocations, queue and Pub/Sub messages.
    pub async fn invoke(&self, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        let (op, rest) = split_action(body)?;
        self.run(op, Value::Object(rest), meta).await
    }

    /// `GET /api/v1/health`.
    pub fn health(&self) -> Value {
        json!({"ok": true, "service": "warden", "version": warden_engine::VERSION})
    }

    /// `GET /api/v1/ready`: whether every component is usable, and the body with `checks`.
    pub async fn ready(&self) -> (bool, Value) {
        let policy = self.policy.get();
        let mut checks = Map::new();
        let policy_detail = format!(
            "{} (version {}, {} tool rules)",
            policy.name.as_deref().unwrap_or("policy"),
            policy.version,
            policy.tool_access.len()
        );
        checks.insert("policy".into(), to_json(Check::new("ok", Some(policy_detail))));
        let file = match self.policy.last_error() {
            Some(e) => Check::new(
                "warning",
                Some(format!("{}: last reload failed, serving the previous policy: {e}", self.policy.origin())),
            ),
            None => Check::new("ok", Some(self.policy.origin().to_string())),
        };
        checks.insert("policy_file".into(), to_json(file));
        checks.insert("detectors".into(), to_json(self.detector_self_test()));
        let mut warnings = Vec::new();
        if self.config.default_salt {
            warnings.push("PII_TOKEN_SALT is not set: tokens use the built-in default salt");
        }
        if self.config.default_webhook_secret {
            warnings.push("WEBHOOK_SECRET is not set: events are signed with the default secret");
        }
        let env = if warnings.is_empty() {
            Check::new("ok", Some(self.config.environment.clone()))
        } else {
            Check::new("warning", Some(warnings.join("; ")))
        };
        checks.insert("environment".into(), to_json(env));
        for name in ["dlq", "stores"] {
            if !self.probes.iter().any(|p| p.name() == name) {
                checks.insert(name.into(), to_json(Check::new("disabled", None)));
            }
        }
        for p in &self.probes {
            checks.insert(p.name().into(), to_json(p.check().await));
        }
        let ok = checks.values().all(|c| c.get("status").and_then(Value::as_str) != Some("error"));
        (ok, json!({"ready": ok, "status": if ok { "ok" } else { "error" }, "checks": checks}))
    }

    /// Proves the detectors work on a known sample (a broken build or data must not pass).
    fn detector_self_test(&self) -> Check {
        let policy = warden_engine::Policy::default();
        let gate = warden_engine::Gate::new(&policy, &self.key, &self.detector);
        let sample = "mail a.b@example.com ssn 123-45-6789 card 4111 1111 1111 1111 ip 10.1.2.3";
        let (redacted, found) = gate.redact(sample);
        if found.len() == 4 && !redacted.contains("example.com") {
            Check::new("ok", Some(String::from("9 built-in types, self-test passed")))
        } else {
            Check::new("error", Some(format!("detector self-test found {} of 4 sample values", found.len())))
        }
    }

    /// The engine context for `policy` with this service's key, detector and `on_error`.
    pub fn context<'a>(&'a self, policy: &'a warden_engine::Policy) -> Context<'a> {
        Context { policy, key: &self.key, detector: &self.detector, on_error: self.config.on_error }
    }

    fn now(&self) -> (i64, u64) {
        (self.clock.now_ms(), self.clock.monotonic_us())
    }

    async fn check(&self, body: Value, direction: Direction, meta: &RequestMeta) -> Result<CheckResponse, ApiError> {
        let req: CheckRequest = from_value(body)?;
        self.rate_limit(req.user_id.as_deref(), meta).await?;
        let (now_ms, t0) = self.now();
        let policy = self.policy.get();
        let ctx = self.context(&policy);
        let verdict = ctx.check(&req, direction);
        let pii_counts = verdict.pii_counts().into_iter().map(|(t, n)| (t.name().to_string(), n)).collect();
        let mut resp = CheckResponse::from_verdict(verdict, now_ms.div_euclid(1000));
        if let Some(user) = req.user_id.as_deref() {
            let chars = req.raw_text.chars().count();
            if let Some(join) = self
                .budget(user, chars, req.tool_config.as_ref(), &req.tool, req.corr_id.clone(), resp.decision, now_ms)
                .await
            {
                join_budget(join, &mut resp);
            }
        }
        let op = if direction == Direction::Ingress { "precheck" } else { "postcheck" };
        self.observe(DecisionRecord {
            operation: op,
            org_id: self.config.org_id.clone(),
            direction,
            decision: resp.decision,
            policy_id: resp.policy_id,
            tool: req.tool,
            scope: req.scope,
            raw_text: req.raw_text,
            raw_text_out: resp.raw_text_out.clone(),
            reasons: resp.reasons.clone(),
            pii_counts,
            latency_ms: self.elapsed_ms(t0),
            corr_id: req.corr_id,
            tags: req.tags,
            ts_unix_ms: now_ms,
            user_id: req.user_id,
        });
        Ok(resp)
    }

    async fn redact(&self, body: Value, meta: &RequestMeta) -> Result<warden_engine::api::RedactResponse, ApiError> {
        let req: RedactRequest = from_value(body)?;
        self.rate_limit(None, meta).await?;
        let (now_ms, t0) = self.now();
        let policy = self.policy.get();
        let ctx = self.context(&policy);
        let resp = ctx.redact(&req.text);
        let mut pii_counts: Vec<(String, usize)> = Vec::new();
        for m in &resp.matches {
            match pii_counts.iter_mut().find(|(t, _)| *t == m.ty) {
                Some((_, n)) => *n += 1,
                None => pii_counts.push((m.ty.clone(), 1)),
            }
        }
        let changed = !resp.matches.is_empty();
        self.observe(DecisionRecord {
            operation: "redact",
            org_id: self.config.org_id.clone(),
            direction: Direction::Ingress,
            decision: if changed { Decision::Transform } else { Decision::Allow },
            // Redaction is "redact every PII value", i.e. the network level's semantics.
            policy_id: PolicyId::NetRedactRegex,
            tool: String::new(),
            scope: String::new(),
            raw_text: req.text,
            raw_text_out: Some(resp.redacted.clone()),
            reasons: resp.matches.iter().fold(Vec::new(), |mut acc: Vec<String>, m| {
                let r = format!("pii.redacted:PII:{}", m.ty);
                if !acc.contains(&r) {
                    acc.push(r);
                }
                acc
            }),
            pii_counts,
            latency_ms: self.elapsed_ms(t0),
            corr_id: None,
            tags: Vec::new(),
            ts_unix_ms: now_ms,
            user_id: None,
        });
        Ok(resp)
    }

    async fn evaluate(
        &self,
        body: Value,
        meta: &RequestMeta,
    ) -> Result<warden_engine::api::EvaluateResponse, ApiError> {
        let req: EvaluateRequest = from_value(body)?;
        self.rate_limit(req.user_id.as_deref(), meta).await?;
        let (now_ms, t0) = self.now();
        let policy = self.policy.get();
        let ctx = self.context(&policy);
        let mut resp = ctx.evaluate(&req, now_ms.div_euclid(1000));
        if let Some(user) = req.user_id.as_deref() {
            let chars = string_chars(&req.payload);
            let tool = req.tool.as_deref().unwrap_or("");
            if let Some(join) = self.budget(user, chars, None, tool, req.corr_id.clone(), resp.decision, now_ms).await {
                join_budget(join, &mut resp);
            }
        }
        let mut pii_counts: Vec<(String, usize)> = Vec::new();
        for p in &resp.pii_found {
            if !pii_counts.iter().any(|(t, _)| *t == p.ty) {
                pii_counts.push((p.ty.clone(), 1));
            }
        }
        let direction = req.direction.unwrap_or_default();
        self.observe(DecisionRecord {
            operation: "evaluate",
            org_id: self.config.org_id.clone(),
            direction,
            decision: resp.decision,
            policy_id: resp.policy_id,
            tool: req.tool.clone().unwrap_or_default(),
            scope: req.scope.clone().unwrap_or_default(),
            raw_text: req.payload.to_string(),
            raw_text_out: (resp.decision != Decision::Deny).then(|| resp.modified_payload.to_string()),
            reasons: resp.reasons.clone(),
            pii_counts,
            latency_ms: self.elapsed_ms(t0),
            corr_id: req.corr_id.clone(),
            tags: Vec::new(),
            ts_unix_ms: now_ms,
            user_id: req.user_id.clone().or_else(|| Some(req.agent_id.clone())),
        });
        Ok(resp)
    }

    async fn batch(&self, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        let Value::Object(mut map) = body else {
            return Err(ApiError::invalid_request(format!(
                "request body must be a JSON object, not {}",
                crate::error::kind(&body)
            )));
        };
        let Some(Value::Array(items)) = map.remove("requests") else {
            return Err(ApiError::invalid_request(
                "`requests` must be an array of precheck/postcheck/evaluate requests",
            )
            .with_field("requests"));
        };
        if items.len() > self.config.max_batch {
            return Err(ApiError::invalid_request(format!(
                "a batch holds at most {} requests, got {}",
                self.config.max_batch,
                items.len()
            ))
            .with_field("requests"));
        }
        let mut summary = [0usize; 5];
        let mut results = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let outcome = match split_action(item) {
                Ok((op @ (Operation::Precheck | Operation::Postcheck | Operation::Evaluate), rest)) => {
                    self.run_item(op, Value::Object(rest), meta).await.map(|v| (op, v))
                }
                Ok((op, _)) => Err(ApiError::invalid_request(format!(
                    "batch items must be precheck, postcheck or evaluate, not {}",
                    op.name()
                ))
                .with_field("action")),
                Err(e) => Err(e),
            };
            match outcome {
                Ok((op, resp)) => {
                    let slot = match resp.get("decision").and_then(Value::as_str) {
                        Some("allow") => 0,
                        Some("deny") => 1,
                        Some("transform") => 2,
                        Some("confirm") => 3,
                        _ => 4,
                    };
                    if let Some(n) = summary.get_mut(slot) {
                        *n += 1;
                    }
                    results
                        .push(json!({"index": index, "action": op.name(), "ok": true, "status": 200, "result": resp}));
                }
                Err(e) => {
                    if let Some(n) = summary.get_mut(4) {
                        *n += 1;
                    }
                    let mut err = e.body();
                    if let Some(obj) = err.as_object_mut() {
                        obj.insert("index".into(), json!(index));
                        obj.insert("ok".into(), json!(false));
                        obj.insert("status".into(), json!(e.status));
                    }
                    results.push(err);
                }
            }
        }
        let [allow, deny, transform, confirm, error] = summary;
        Ok(json!({
            "processed": results.len(),
            "summary": {"allow": allow, "deny": deny, "transform": transform, "confirm": confirm, "error": error},
            "results": results,
        }))
    }

    /// Applies the rate limit for this request's key (user, else API key, else address).
    /// A failing limiter store lets requests through (logged by the store's caller): rate
    /// limiting protects capacity, it is not an access control.
    async fn rate_limit(&self, user: Option<&str>, meta: &RequestMeta) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let key = rate_key(user, meta.api_key.as_deref(), meta.client_addr);
        match limiter.hit(&key, self.clock.now_ms()).await {
            Ok(d) if !d.allowed => {
                for o in &self.observers {
                    o.rate_limited();
                }
                let mut e = ApiError::new(
                    429,
                    "rate_limited",
                    format!("rate limit of {} requests per minute exceeded", d.limit),
                );
                e.retry_after = Some(d.retry_after_secs);
                Err(e)
            }
            Ok(_) => Ok(()),
            Err(err) => {
                self.report_error("rate_limiter_unavailable", &err.to_string());
                Ok(())
            }
        }
    }

    /// Checks (and, when the policy lets the request through, records) the user's spend.
    #[allow(clippy::too_many_arguments)]
    async fn budget(
        &self,
        user: &str,
        chars: usize,
        tool_config: Option<&Value>,
        tool: &str,
        corr_id: Option<String>,
        decision: Decision,
        now_ms: i64,
    ) -> Option<BudgetJoin> {
        let b = self.budgets.as_ref()?;
        let charge = Charge::estimate(chars, tool_config, &b.prices);
        let now_secs = now_ms.div_euclid(1000);
        let req = SpendRequest {
            user: user.to_string(),
            llm: charge.llm,
            purchase: charge.purchase,
            tool: tool.to_string(),
            corr_id,
            record: matches!(decision, Decision::Allow | Decision::Transform),
        };
        Some(match b.store.check_and_spend(req, now_secs).await {
            Ok(out) => BudgetJoin {
                decision: out.assessment.outcome.decision(),
                reason: out.assessment.outcome.reason().to_string(),
                status: Some(to_json(out.status())),
                info: Some(to_json(out.info(&charge.model, now_secs))),
                failed: false,
            },
            Err(err) => {
                self.report_error("budget_unavailable", &err.to_string());
                let decision = if self.config.on_error == OnError::Block { Decision::Deny } else { Decision::Allow };
                BudgetJoin {
                    decision,
                    reason: String::from("error:budget_unavailable"),
                    status: None,
                    info: None,
                    failed: true,
                }
            }
        })
    }

    fn report_error(&self, code: &str, message: &str) {
        for o in &self.observers {
            o.error(code, message);
        }
    }

    /// A batch item: the single-request operations only (no nested batches).
    async fn run_item(&self, op: Operation, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        match op {
            Operation::Postcheck => self.check(body, Direction::Egress, meta).await.map(to_json),
            Operation::Evaluate => self.evaluate(body, meta).await.map(to_json),
            _ => self.check(body, Direction::Ingress, meta).await.map(to_json),
        }
    }

    fn elapsed_ms(&self, t0: u64) -> f64 {
        let us = self.clock.monotonic_us().saturating_sub(t0);
        // Microseconds fit f64 exactly far beyond any request's latency.
        u32::try_from(us).map_or(f64::from(u32::MAX), f64::from) / 1000.0
    }

    fn observe(&self, record: DecisionRecord) {
        for o in &self.observers {
            o.observe(&record);
        }
    }
}

/// A response a budget outcome joins into.
trait BudgetTarget {
    /// Decision, reasons, policy id, `budget_status` and `budget_info`.
    fn parts(&mut self) -> (&mut Decision, &mut Vec<String>, &mut PolicyId, &mut Option<Value>, &mut Option<Value>);
    /// Drops the output (denied text is never echoed).
    fn withhold(&mut self);
}

impl BudgetTarget for CheckResponse {
    fn parts(&mut self) -> (&mut Decision, &mut Vec<String>, &mut PolicyId, &mut Option<Value>, &mut Option<Value>) {
        (&mut self.decision, &mut self.reasons, &mut self.policy_id, &mut self.budget_status, &mut self.budget_info)
    }

    fn withhold(&mut self) {
        self.raw_text_out = None;
    }
}

impl BudgetTarget for warden_engine::api::EvaluateResponse {
    fn parts(&mut self) -> (&mut Decision, &mut Vec<String>, &mut PolicyId, &mut Option<Value>, &mut Option<Value>) {
        (&mut self.decision, &mut self.reasons, &mut self.policy_id, &mut self.budget_status, &mut self.budget_info)
    }

    fn withhold(&mut self) {
        self.modified_payload = Value::Null;
    }
}

/// Joins a budget outcome into a response: deny > confirm > transform > allow, reason
/// appended. A store failure under `on_error: block` denies with policy id `on-error`.
fn join_budget(join: BudgetJoin, target: &mut impl BudgetTarget) {
    let (decision, reasons, policy_id, status, info) = target.parts();
    if join.failed && join.decision == Decision::Deny {
        *policy_id = PolicyId::OnError;
    }
    *decision = (*decision).max(join.decision);
    reasons.push(join.reason);
    *status = join.status;
    *info = join.info;
    if *decision == Decision::Deny {
        target.withhold();
    }
}

/// Characters in every string leaf of a JSON value (what an LLM would read of it).
fn string_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.iter().map(string_chars).sum(),
        Value::Object(map) => map.values().map(string_chars).sum(),
        _ => 0,
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Splits `{action, ...rest}` into the operation and the rest of the fields.
fn split_action(body: Value) -> Result<(Operation, Map<String, Value>), ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid_request(format!(
            "request body must be a JSON object, not {}",
            crate::error::kind(&body)
        )));
    };
    let op = match map.remove("action") {
        Some(Value::String(a)) => Operation::from_action(&a).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "unknown action `{a}`; expected one of precheck, postcheck, redact, evaluate, batch, health, ready"
            ))
            .with_field("action")
        })?,
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "`action` must be a string, not {}",
                crate::error::kind(&other)
            ))
            .with_field("action"))
        }
        None => return Err(ApiError::invalid_request("missing field `action`").with_field("action")),
    };
    Ok((op, map))
}
