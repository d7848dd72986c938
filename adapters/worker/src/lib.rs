//! Warden as a Cloudflare Worker. The fetch handler runs the native server's axum router
//! unchanged (workers-rs `http` feature): every route of SPEC §2, the same JSON, the same
//! 4xx errors. Around it, only what is specific to Workers:
//!
//! - settings from vars and secrets (`wrangler secret put PII_TOKEN_SALT`, `WEBHOOK_SECRET`,
//!   `WARDEN_API_KEYS`), see [`settings`];
//! - the policy from the `WARDEN_POLICY` KV namespace when bound (key `POLICY_KV_KEY`,
//!   re-read every `POLICY_REFRESH_S` after a response, keeping the last good policy), else the
//!   bundled `policies/policy.tool_access.yaml`;
//! - rate limits through the `WARDEN_RATE_LIMITER` rate-limit binding when bound;
//! - decision events sent with `ctx.wait_until`, after the response, see [`events`];
//! - audit lines on the Worker's log (`console.log`).
//!
//! Everything is built once per isolate (policy parsed, detectors compiled) and reused.
//! Nothing here panics: a panic would trap and kill the isolate.
#![forbid(unsafe_code)]

pub mod events;
pub mod settings;

use crate::events::{Collector, Delivery};
use crate::settings::{Settings, DLQ_KV_BINDING, POLICY_KV_BINDING, RATE_LIMIT_BINDING};
use axum::body::Body;
use axum::Router;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use tower::ServiceExt;
use warden_engine::policy_file::parse_policy;
use warden_engine::TokenKey;
use warden_service::budget::StoreError;
use warden_service::clock::Clock;
use warden_service::error::ApiError;
use warden_service::policy_source::PolicySource;
use warden_service::ratelimit::{RateDecision, RateLimiter};
use warden_service::router::{router, AppState, ClientAddr};
use warden_service::service::{Check, Probe, Service, ServiceConfig, DEFAULT_SALT};
use worker::{event, Context, Env, HttpRequest};

/// The policy compiled into the Worker, served when no KV policy is bound.
pub const BUNDLED_POLICY: &str = include_str!("../../../policies/policy.tool_access.yaml");

/// Unix milliseconds from JavaScript's clock (`SystemTime` panics on wasm32-unknown-unknown).
pub fn now_ms() -> i64 {
    // `Date.now()` is an integral number of milliseconds, far inside i64.
    #[allow(clippy::cast_possible_truncation)]
    let ms = js_sys::Date::now() as i64;
    ms
}

/// The service's clock on Workers. Workers freeze time during synchronous execution (a
/// Spectre mitigation), so latencies read 0 unless I/O happened; that is the platform's truth.
#[derive(Debug, Default)]
pub struct JsClock;

impl Clock for JsClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn monotonic_us(&self) -> u64 {
        u64::try_from(now_ms()).unwrap_or(0).saturating_mul(1000)
    }
}

/// Rate limits through the Workers rate-limit binding. The binding keeps its own counters
/// (per Cloudflare location) with the limit and period set in `wrangler.toml`; it only says
/// yes or no, so `Retry-After` is the rest of the current minute.
pub struct CfRateLimiter {
    binding: worker::RateLimiter,
    limit: u32,
}

impl core::fmt::Debug for CfRateLimiter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CfRateLimiter").field("limit", &self.limit).finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl RateLimiter for CfRateLimiter {
    async fn hit(&self, key: &str, now_ms: i64) -> Result<RateDecision, StoreError> {
        // Workers run one thread per isolate, so the JS future may be marked Send (workers-rs'
        // documented SendFuture) to satisfy the service's Send trait.
        let outcome = worker::send::SendFuture::new(self.binding.limit(key.to_string()))
            .await
            .map_err(|e| StoreError::new("cloudflare-rate-limit", e.to_string()))?;
        let into_minute = now_ms.rem_euclid(60_000);
        let retry_after_secs = u64::try_from((60_000 - into_minute + 999) / 1000).unwrap_or(60).max(1);
        Ok(RateDecision {
            allowed: outcome.success,
            limit: self.limit,
            remaining: if outcome.success { 1 } else { 0 },
            retry_after_secs,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "cloudflare"
    }
}

/// Readiness of what this Worker has bound: where undeliverable events go, and the rate limiter.
#[derive(Debug)]
struct BindingsProbe {
    name: &'static str,
    check: Check,
}

#[async_trait::async_trait]
impl Probe for BindingsProbe {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self) -> Check {
        self.check.clone()
    }
}

/// Where the active policy comes from, and when to look at KV again.
#[derive(Debug)]
struct KvPolicy {
    key: String,
    refresh_ms: i64,
    next_check_ms: Cell<i64>,
    last_text: RefCell<String>,
}

/// Everything built once per isolate.
struct App {
    router: Router,
    service: Arc<Service>,
    collector: Arc<Collector>,
    delivery: Option<Rc<Delivery>>,
    kv_policy: Option<Rc<KvPolicy>>,
    dlq: bool,
}

thread_local! {
    // Workers run one thread per isolate: this is the isolate's cache.
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
}

/// A string binding (var or secret: both are strings in `env`), if set.
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

impl App {
    /// The isolate's app, built on first use.
    async fn get(env: &Env) -> Result<Rc<App>, String> {
        if let Some(app) = APP.with(|a| a.borrow().clone()) {
            return Ok(app);
        }
        let app = Rc::new(App::build(env).await?);
        // Concurrent first requests may both build; keep the first stored, drop the rest.
        Ok(APP.with(|a| Rc::clone(a.borrow_mut().get_or_insert(app))))
    }

    async fn build(env: &Env) -> Result<App, String> {
        let settings = Settings::from_lookup(&|k| lookup(env, k)).map_err(|e| e.to_string())?;
        let (policy, origin, kv_policy) = match env.kv(POLICY_KV_BINDING) {
            Err(_) => {
                let p = parse_policy("embedded:policy.tool_access.yaml", BUNDLED_POLICY).map_err(|e| e.to_string())?;
                (p, String::from("embedded:policy.tool_access.yaml"), None)
            }
            Ok(kv) => {
                let origin = format!("kv:{POLICY_KV_BINDING}/{}", settings.policy_key);
                let text = kv
                    .get(&settings.policy_key)
                    .text()
                    .await
                    .map_err(|e| format!("{origin}: cannot read the policy: {e}"))?
                    .ok_or_else(|| {
                        format!("{origin}: no such key (put the policy there, or unbind {POLICY_KV_BINDING})")
                    })?;
                let policy = parse_policy(&origin, &text).map_err(|e| e.to_string())?;
                let refresh_ms = i64::try_from(settings.policy_refresh.as_millis()).unwrap_or(i64::MAX);
                let kv_policy = KvPolicy {
                    key: settings.policy_key.clone(),
                    refresh_ms,
                    next_check_ms: Cell::new(now_ms().saturating_add(refresh_ms)),
                    last_text: RefCell::new(text),
                };
                (policy, origin, Some(Rc::new(kv_policy)))
            }
        };
        let config = ServiceConfig {
            on_error: settings.on_error,
            body_limit: settings.body_limit,
            max_batch: settings.max_batch,
            org_id: settings.org_id.clone(),
            default_salt: settings.salt.is_none(),
            default_webhook_secret: settings.events.as_ref().is_some_and(|e| e.default_secret),
            environment: settings.environment.clone(),
        };
        let key = TokenKey::new(settings.salt.as_deref().unwrap_or(DEFAULT_SALT));
        let collector = Arc::new(Collector::new(settings.events.is_some(), settings.audit));
        let dlq = env.kv(DLQ_KV_BINDING).is_ok();
        let dlq_check = match (&settings.events, dlq) {
            (None, _) => Check::new("disabled", None),
            (Some(_), true) => Check::new("ok", Some(format!("undeliverable events go to KV {DLQ_KV_BINDING}"))),
            (Some(_), false) => Check::new(
                "warning",
                Some(format!("no {DLQ_KV_BINDING} KV binding: undeliverable events are only logged")),
            ),
        };
        let mut service = Service::new(Arc::new(PolicySource::new(policy, origin)), key, config, Arc::new(JsClock))
            .with_observer(Arc::clone(&collector) as Arc<dyn warden_service::service::Observer>)
            .with_probe(Arc::new(BindingsProbe { name: "dlq", check: dlq_check }));
        let stores_check = match env.rate_limiter(RATE_LIMIT_BINDING) {
            Ok(binding) => {
                service = service
                    .with_rate_limiter(Arc::new(CfRateLimiter { binding, limit: settings.rate_limit_per_minute }));
                Check::new("ok", Some(format!("rate limits: cloudflare binding {RATE_LIMIT_BINDING}")))
            }
            Err(_) => {
                Check::new("disabled", Some(String::from("no rate-limit binding; budgets need a long-running server")))
            }
        };
        let service = Arc::new(service.with_probe(Arc::new(BindingsProbe { name: "stores", check: stores_check })));
        let api_keys = settings.api_keys.is_enabled().then(|| Arc::new(settings.api_keys.clone()));
        let router = router(AppState { service: Arc::clone(&service), api_keys, metrics: None });
        let delivery = settings.events.clone().map(|e| Rc::new(Delivery::new(e, settings.org_id.clone())));
        Ok(App { router, service, collector, delivery, kv_policy, dlq })
    }

    /// Re-reads the KV policy when due; an invalid one is reported by readiness and the last
    /// good policy stays (as the native server does with its policy file).
    async fn refresh_policy(&self, env: &Env) {
        let Some(kv_policy) = &self.kv_policy else { return };
        let now = now_ms();
        if now < kv_policy.next_check_ms.get() {
            return;
        }
        // Set before awaiting, so concurrent requests do not all read KV.
        kv_policy.next_check_ms.set(now.saturating_add(kv_policy.refresh_ms));
        let source = self.service.policy_source();
        let text = match env.kv(POLICY_KV_BINDING) {
            Ok(kv) => kv.get(&kv_policy.key).text().await,
            Err(e) => {
                source.set_error(Some(format!("{POLICY_KV_BINDING}: {e}")));
                return;
            }
        };
        match text {
            Ok(Some(text)) if *kv_policy.last_text.borrow() == text => {}
            Ok(Some(text)) => match parse_policy(source.origin(), &text) {
                Ok(policy) => {
                    source.replace(policy);
                    *kv_policy.last_text.borrow_mut() = text;
                }
                Err(e) => source.set_error(Some(e.to_string())),
            },
            Ok(None) => source.set_error(Some(String::from("the policy key was deleted"))),
            Err(e) => source.set_error(Some(format!("cannot read the policy: {e}"))),
        }
    }
}

/// A JSON error response outside the router (the Worker could not start).
fn error_response(e: &ApiError) -> http::Response<Body> {
    let mut resp = http::Response::new(Body::from(e.body().to_string()));
    *resp.status_mut() = http::StatusCode::from_u16(e.status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

/// The Worker's fetch handler.
#[event(fetch)]
async fn fetch(req: HttpRequest, env: Env, ctx: Context) -> worker::Result<http::Response<Body>> {
    let app = match App::get(&env).await {
        Ok(app) => app,
        Err(message) => {
            // Misconfiguration fails closed and says why (never the value of a secret).
            worker::console_error!("{}", serde_json::json!({"level": "error", "msg": message}));
            return Ok(error_response(&ApiError::new(503, "unavailable", message)));
        }
    };
    let mut req = req.map(Body::new);
    let client = req.headers().get("cf-connecting-ip").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    let resp = match app.router.clone().oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    let records = app.collector.drain();
    let deliver = app.delivery.clone().filter(|_| !records.is_empty());
    let refresh = app.kv_policy.as_ref().is_some_and(|k| now_ms() >= k.next_check_ms.get());
    if deliver.is_some() || refresh {
        let app = Rc::clone(&app);
        ctx.wait_until(async move {
            if let Some(delivery) = deliver {
                let dlq = if app.dlq { env.kv(DLQ_KV_BINDING).ok() } else { None };
                delivery.deliver(records, dlq).await;
            }
            app.refresh_policy(&env).await;
        });
    }
    Ok(resp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn bundled_policy_is_valid() {
        assert!(parse_policy("bundled", BUNDLED_POLICY).is_ok());
    }
}
