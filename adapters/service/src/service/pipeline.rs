//! One governed request: rate limit → engine → budget → response, and exactly one
//! [`DecisionRecord`] built from the typed outcome for the observers.

use super::{Channel, RequestMeta, Service};
use crate::budget::SpendRequest;
use crate::error::{from_value, ApiError};
use crate::ratelimit::{caller_key, rate_key};
use crate::record::{pii_counts, DecisionRecord};
use serde_json::Value;
use warden_engine::budget::{BudgetInfo, BudgetStatus, Charge};
use warden_engine::{
    CheckRequest, CheckResponse, Decision, Direction, ErrorCode, EvaluateRequest, EvaluateResponse, OnError,
    PiiOutcome, PolicyId, Reason, RedactRequest,
};

/// Longest `context` kept in an audit record, in bytes.
const CONTEXT_LIMIT: usize = 512;

/// What a request is about: the parts of a [`DecisionRecord`] that come from the request.
pub(super) struct Subject {
    pub operation: &'static str,
    pub direction: Direction,
    pub tool: String,
    pub scope: String,
    pub raw_text: String,
    pub corr_id: Option<String>,
    pub tags: Vec<String>,
    pub user_id: Option<String>,
    /// Caller-supplied context (already redacted), for the audit record.
    pub context: Option<String>,
}

/// What was decided: the parts of a [`DecisionRecord`] that come from the outcome.
pub(super) struct Outcome {
    pub decision: Decision,
    pub policy_id: PolicyId,
    pub reasons: Vec<Reason>,
    pub raw_text_out: Option<String>,
    pub pii_counts: Vec<(String, usize)>,
}

/// A budget outcome to join into a response.
#[derive(Debug)]
pub(super) struct BudgetJoin {
    decision: Decision,
    reason: Reason,
    status: Option<BudgetStatus>,
    info: Option<BudgetInfo>,
    failed: bool,
}

/// The fields of a response that a budget outcome changes.
struct Joinable<'a> {
    decision: &'a mut Decision,
    reasons: &'a mut Vec<Reason>,
    policy_id: &'a mut PolicyId,
    status: &'a mut Option<BudgetStatus>,
    info: &'a mut Option<BudgetInfo>,
}

/// A response a budget outcome joins into.
trait Budgeted {
    fn joinable(&mut self) -> Joinable<'_>;
    /// Drops the output (denied text is never echoed).
    fn withhold(&mut self);
}

/// Both responses carry the same budget fields; they differ in what output a deny drops.
macro_rules! budgeted {
    ($ty:ty, $output:ident = $empty:expr) => {
        impl Budgeted for $ty {
            fn joinable(&mut self) -> Joinable<'_> {
                Joinable {
                    decision: &mut self.decision,
                    reasons: &mut self.reasons,
                    policy_id: &mut self.policy_id,
                    status: &mut self.budget_status,
                    info: &mut self.budget_info,
                }
            }

            fn withhold(&mut self) {
                self.$output = $empty;
            }
        }
    };
}

budgeted!(CheckResponse, raw_text_out = None);
budgeted!(EvaluateResponse, modified_payload = Value::Null);

impl BudgetJoin {
    /// Joins into a response: deny > confirm > transform > allow, reason appended. A store
    /// failure under `on_error: block` denies with policy id `on-error`; a denied response
    /// loses its output.
    fn join(self, response: &mut impl Budgeted) {
        let target = response.joinable();
        if self.failed && self.decision == Decision::Deny {
            *target.policy_id = PolicyId::OnError;
        }
        *target.decision = (*target.decision).max(self.decision);
        // Reasons stay deduplicated (a stream's outcome promises it).
        if !target.reasons.contains(&self.reason) {
            target.reasons.push(self.reason);
        }
        *target.status = self.status;
        *target.info = self.info;
        if *target.decision == Decision::Deny {
            response.withhold();
        }
    }
}

/// A stream's end and the budget fields of its metadata record: a deny drops the governed
/// bytes not yet sent.
struct StreamBudget<'a> {
    finished: &'a mut crate::stream::Finished,
    status: Option<BudgetStatus>,
    info: Option<BudgetInfo>,
}

impl Budgeted for StreamBudget<'_> {
    fn joinable(&mut self) -> Joinable<'_> {
        Joinable {
            decision: &mut self.finished.outcome.decision,
            reasons: &mut self.finished.outcome.reasons,
            policy_id: &mut self.finished.outcome.policy_id,
            status: &mut self.status,
            info: &mut self.info,
        }
    }

    fn withhold(&mut self) {
        self.finished.body.clear();
    }
}

impl BudgetJoin {
    /// Whether the budget denies.
    pub(super) fn denies(&self) -> bool {
        self.decision == Decision::Deny
    }

    /// Joins into a stream's end as [`join`](Self::join) does into a response; returns the
    /// budget fields for the metadata record.
    pub(super) fn join_stream(
        self,
        finished: &mut crate::stream::Finished,
    ) -> (Option<BudgetStatus>, Option<BudgetInfo>) {
        let mut end = StreamBudget { finished, status: None, info: None };
        self.join(&mut end);
        (end.status, end.info)
    }
}

impl Service {
    pub(super) fn now(&self) -> (i64, u64) {
        (self.clock.now_ms(), self.clock.monotonic_us())
    }

    pub(super) fn elapsed_ms(&self, t0: u64) -> f64 {
        let us = self.clock.monotonic_us().saturating_sub(t0);
        // Microseconds fit f64 exactly far beyond any request's latency.
        u32::try_from(us).map_or(f64::from(u32::MAX), f64::from) / 1000.0
    }

    /// Builds the one record of a request and hands it to every observer.
    pub(super) fn record(&self, subject: Subject, outcome: Outcome, t0: u64, now_ms: i64) {
        let record = DecisionRecord {
            operation: subject.operation,
            org_id: self.config.org_id.clone(),
            direction: subject.direction,
            decision: outcome.decision,
            policy_id: outcome.policy_id,
            tool: subject.tool,
            scope: subject.scope,
            raw_text: subject.raw_text,
            raw_text_out: outcome.raw_text_out,
            reasons: outcome.reasons,
            pii_counts: outcome.pii_counts,
            latency_ms: self.elapsed_ms(t0),
            corr_id: subject.corr_id,
            tags: subject.tags,
            ts_unix_ms: now_ms,
            user_id: subject.user_id,
            context: subject.context,
        };
        self.observe(&record);
    }

    pub(super) async fn check(&self, body: Value, direction: Direction, meta: &RequestMeta) -> Result<Value, ApiError> {
        let req: CheckRequest = from_value(body)?;
        self.check_typed(req, direction, meta, to_json).await
    }

    /// A check on a typed request; `render` turns the response into what the caller answers
    /// (a JSON value, or the body's bytes) before the response's parts move into the
    /// decision record, so nothing is copied for the record.
    pub(super) async fn check_typed<R>(
        &self,
        req: CheckRequest,
        direction: Direction,
        meta: &RequestMeta,
        render: impl FnOnce(&CheckResponse) -> R,
    ) -> Result<R, ApiError> {
        IdentityFields {
            tool: Some(&req.tool),
            scope: Some(&req.scope),
            user_id: req.user_id.as_deref(),
            corr_id: req.corr_id.as_deref(),
            agent_id: None,
            tags: &req.tags,
        }
        .check()?;
        self.rate_limit(req.user_id.as_deref(), meta).await?;
        let (now_ms, t0) = self.now();
        let request = self.request_policy(req.policy_config.as_ref())?;
        let policy = self.policy.get();
        let verdict = self.gate(&policy).check_with(&req, direction, request.as_deref());
        let counts = pii_counts(verdict.findings.iter().map(|f| f.found.ty.name()));
        let mut resp = CheckResponse::from_verdict(verdict, now_ms.div_euclid(1000));
        if let Some(user) = req.user_id.as_deref() {
            let chars = req.raw_text.chars().count();
            let join = self.budget(
                user,
                chars,
                req.tool_config.as_ref(),
                &req.tool,
                req.corr_id.as_deref(),
                resp.decision,
                now_ms,
                meta,
            );
            if let Some(join) = join.await? {
                join.join(&mut resp);
            }
        }
        let operation = if direction == Direction::Ingress { "precheck" } else { "postcheck" };
        let rendered = render(&resp);
        let outcome = Outcome {
            decision: resp.decision,
            policy_id: resp.policy_id,
            reasons: resp.reasons,
            raw_text_out: resp.raw_text_out,
            pii_counts: counts,
        };
        let subject = Subject {
            operation,
            direction,
            tool: req.tool,
            scope: req.scope,
            raw_text: req.raw_text,
            corr_id: req.corr_id,
            tags: req.tags,
            user_id: req.user_id,
            context: None,
        };
        self.record(subject, outcome, t0, now_ms);
        Ok(rendered)
    }

    pub(super) async fn redact(&self, body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        let req: RedactRequest = from_value(body)?;
        self.rate_limit(None, meta).await?;
        let (now_ms, t0) = self.now();
        let policy = self.policy.get();
        let resp = self.gate(&policy).redact(&req.text);
        let mut reasons: Vec<Reason> = Vec::new();
        for m in &resp.matches {
            if let Some(ty) = policy.pii_type(&m.ty) {
                let r = Reason::Pii { outcome: PiiOutcome::Redacted, ty };
                if !reasons.contains(&r) {
                    reasons.push(r);
                }
            }
        }
        let outcome = Outcome {
            decision: if resp.matches.is_empty() { Decision::Allow } else { Decision::Transform },
            // Redaction is "redact every PII value", i.e. the network level's semantics.
            policy_id: PolicyId::NetRedactRegex,
            reasons,
            raw_text_out: Some(resp.redacted.clone()),
            pii_counts: pii_counts(resp.matches.iter().map(|m| m.ty.as_str())),
        };
        let subject = Subject {
            operation: "redact",
            direction: Direction::Ingress,
            tool: String::new(),
            scope: String::new(),
            raw_text: req.text,
            corr_id: None,
            tags: Vec::new(),
            user_id: None,
            context: None,
        };
        self.record(subject, outcome, t0, now_ms);
        Ok(to_json(&resp))
    }

    pub(super) async fn evaluate(&self, mut body: Value, meta: &RequestMeta) -> Result<Value, ApiError> {
        if let (Value::Object(map), Some(agent)) = (&mut body, self.default_agent_id(meta)) {
            map.entry("agent_id").or_insert_with(|| Value::String(agent.to_owned()));
        }
        // Callers of the Tork guide send `context` ({path, method}); it goes to the audit
        // record, governed like any text so that no raw PII reaches the log.
        let context = body.get("context").map(|c| self.audit_context(c));
        let req: EvaluateRequest = from_value(body)?;
        IdentityFields {
            tool: req.tool.as_deref(),
            scope: req.scope.as_deref(),
            user_id: req.user_id.as_deref(),
            corr_id: req.corr_id.as_deref(),
            agent_id: Some(&req.agent_id),
            tags: &[],
        }
        .check()?;
        self.rate_limit(req.user_id.as_deref(), meta).await?;
        let (now_ms, t0) = self.now();
        let request = self.request_policy(req.policy_config.as_ref())?;
        let policy = self.policy.get();
        let (mut resp, counts) = self.gate(&policy).evaluate_with(&req, now_ms.div_euclid(1000), request.as_deref());
        let tool = req.tool.clone().unwrap_or_default();
        if let Some(user) = req.user_id.as_deref() {
            let chars = string_chars(&req.payload);
            let join = self.budget(user, chars, None, &tool, req.corr_id.as_deref(), resp.decision, now_ms, meta);
            if let Some(join) = join.await? {
                join.join(&mut resp);
                resp.tork_decision = resp.decision.tork();
            }
        }
        let outcome = Outcome {
            decision: resp.decision,
            policy_id: resp.policy_id,
            reasons: resp.reasons.clone(),
            raw_text_out: (resp.decision != Decision::Deny).then(|| resp.modified_payload.to_string()),
            pii_counts: pii_counts(counts.iter().flat_map(|(t, n)| core::iter::repeat_n(t.name(), *n))),
        };
        let subject = Subject {
            operation: "evaluate",
            direction: req.direction.unwrap_or_default(),
            tool,
            scope: req.scope.clone().unwrap_or_default(),
            raw_text: req.payload.to_string(),
            corr_id: req.corr_id.clone(),
            tags: Vec::new(),
            user_id: req.user_id.clone().or_else(|| Some(req.agent_id.clone())),
            context,
        };
        self.record(subject, outcome, t0, now_ms);
        Ok(to_json(&resp))
    }

    /// A caller's `context` as it may appear in audit records: compact JSON, at most
    /// [`CONTEXT_LIMIT`] bytes, every PII value redacted.
    fn audit_context(&self, context: &Value) -> String {
        let mut text = context.to_string();
        if text.len() > CONTEXT_LIMIT {
            let mut end = CONTEXT_LIMIT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        let policy = self.policy.get();
        self.gate(&policy).redact(&text).redacted
    }

    /// Applies the rate limit for this request's key (user, else API key, else address).
    /// A failing limiter store lets requests through (reported to observers): rate limiting
    /// protects capacity, it is not an access control.
    pub async fn rate_limit(&self, user: Option<&str>, meta: &RequestMeta) -> Result<(), ApiError> {
        // Messages are paced by their platform (batch size, concurrency); a limit here would
        // only turn them into redeliveries.
        if meta.channel == Channel::Message {
            return Ok(());
        }
        if let Some(limiter) = &self.plugins.caller_limiter {
            let key = caller_key(meta.api_key.as_deref(), meta.client_addr);
            self.hit(limiter.as_ref(), &key).await?;
        }
        let Some(limiter) = &self.plugins.limiter else { return Ok(()) };
        let key = rate_key(user, meta.api_key.as_deref(), meta.client_addr);
        self.hit(limiter.as_ref(), &key).await
    }

    async fn hit(&self, limiter: &dyn crate::ratelimit::RateLimiter, key: &str) -> Result<(), ApiError> {
        match limiter.hit(key, self.clock.now_ms()).await {
            Ok(d) if !d.allowed => {
                for o in &self.plugins.observers {
                    o.rate_limited();
                }
                let mut e = ApiError::new(
                    ErrorCode::RateLimited,
                    format!("rate limit of {} requests per minute exceeded", d.limit),
                );
                e.retry_after = Some(d.retry_after_secs);
                Err(e)
            }
            Ok(_) => Ok(()),
            Err(err) => {
                self.report_error(ErrorCode::RateLimiterUnavailable, &err.to_string());
                Ok(())
            }
        }
    }

    /// Checks (and, when the policy lets the request through, records) the user's spend. A
    /// store failure is answered per `on_error` for a request, and is an error (so the
    /// platform redelivers) for a message.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn budget(
        &self,
        user: &str,
        chars: usize,
        tool_config: Option<&Value>,
        tool: &str,
        corr_id: Option<&str>,
        decision: Decision,
        now_ms: i64,
        meta: &RequestMeta,
    ) -> Result<Option<BudgetJoin>, ApiError> {
        let Some(b) = self.plugins.budgets.as_ref() else { return Ok(None) };
        let charge = Charge::estimate(chars, tool_config, &b.prices);
        let now_secs = now_ms.div_euclid(1000);
        // A caller's users are its own: with API keys, "alice" of key A is not "alice" of key B.
        let user = match meta.api_key.as_deref() {
            Some(k) => format!("{}:{user}", crate::auth::key_fingerprint(k)),
            None => user.to_owned(),
        };
        let req = SpendRequest {
            user,
            llm: charge.llm,
            purchase: charge.purchase,
            tool: tool.to_string(),
            corr_id: corr_id.map(str::to_owned).or_else(|| meta.idempotency_key.clone()),
            record: matches!(decision, Decision::Allow | Decision::Transform),
        };
        Ok(Some(match b.store.check_and_spend(req, now_secs).await {
            Ok(out) => BudgetJoin {
                decision: out.assessment.outcome.decision(),
                reason: out.assessment.outcome.reason(),
                status: Some(out.status()),
                info: Some(out.info(&charge.model, now_secs)),
                failed: false,
            },
            Err(err) => {
                self.report_error(ErrorCode::BudgetUnavailable, &err.to_string());
                if meta.channel == Channel::Message {
                    return Err(ApiError::new(ErrorCode::BudgetUnavailable, "the budget store is unavailable"));
                }
                let decision = if self.config.on_error == OnError::Block { Decision::Deny } else { Decision::Allow };
                BudgetJoin {
                    decision,
                    reason: Reason::Error(ErrorCode::BudgetUnavailable),
                    status: None,
                    info: None,
                    failed: true,
                }
            }
        }))
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

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Longest `user_id`, `corr_id`, `tool`, `scope`, `agent_id` or tag, in bytes.
pub(super) const MAX_ID_BYTES: usize = 256;
/// Most tags on one request.
pub(super) const MAX_TAGS: usize = 32;

/// The identifying fields of a request, checked before they reach a store, a limiter, a log
/// or an event: bounded in length and free of control characters.
pub(super) struct IdentityFields<'a> {
    pub tool: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub corr_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub tags: &'a [String],
}

impl IdentityFields<'_> {
    pub(super) fn check(&self) -> Result<(), ApiError> {
        let fields = [
            ("tool", self.tool),
            ("scope", self.scope),
            ("user_id", self.user_id),
            ("corr_id", self.corr_id),
            ("agent_id", self.agent_id),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                identifier(name, v)?;
            }
        }
        if self.tags.len() > MAX_TAGS {
            return Err(ApiError::invalid_request(format!("at most {MAX_TAGS} tags")).with_field("tags"));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            identifier(&format!("tags[{i}]"), tag)?;
        }
        Ok(())
    }
}

fn identifier(field: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_ID_BYTES {
        return Err(
            ApiError::invalid_request(format!("`{field}` is longer than {MAX_ID_BYTES} bytes")).with_field(field)
        );
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(format!("`{field}` contains control characters")).with_field(field));
    }
    Ok(())
}
