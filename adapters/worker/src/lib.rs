//! Warden as a Cloudflare Worker. The fetch handler runs the native server's axum router
//! unchanged (workers-rs `http` feature): every route of SPEC §2, the same JSON, the same
//! 4xx errors. Around it, only what is specific to Workers:
//!
//! - settings from vars and secrets (`wrangler secret put PII_TOKEN_SALT`, `WEBHOOK_SECRET`,
//!   `WARDEN_API_KEYS`), read by the core's `Settings::from_lookup`;
//! - the policy from the `WARDEN_POLICY` KV namespace when bound (key `POLICY_KV_KEY`,
//!   re-read every `POLICY_REFRESH_S` after a response, keeping the last good policy), else the
//!   bundled `policies/policy.tool_access.yaml`;
//! - rate limits through the `WARDEN_RATE_LIMITER` rate-limit binding when bound;
//! - decision events sent by the core's outbox inside `ctx.wait_until`, after the response,
//!   see [`events`];
//! - audit lines on the Worker's log (`console.log`);
//! - `POST /api/v1/postcheck/stream` streams both ways (workers-rs turns the request body into
//!   a stream and the response body into a `ReadableStream`); its decision event is emitted
//!   when the stream ends, after the response started, so it is delivered then ([`EndSignal`]).
//! - budgets in Durable Objects (`WARDEN_STORE=durable_objects`, binding `WARDEN_BUDGETS`),
//!   see [`budget`];
//! - `GET /api/metrics`: this isolate's counters in Prometheus text, see [`metrics`].
//!
//! Everything is built once per isolate (policy parsed, detectors compiled) and reused.
//! Nothing here panics: a panic would trap and kill the isolate.
#![forbid(unsafe_code)]

pub mod budget;
pub mod events;
pub mod metrics;

use crate::budget::{DurableObjectBudgetStore, BUDGET_DO_BINDING};
use crate::events::{ConsoleAudit, FetchSink, JsTimer, KvDeadLetter};
use crate::metrics::IsolateMetrics;
use axum::body::Body;
use axum::Router;
use core::time::Duration;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use tower::ServiceExt;
use warden_engine::ErrorCode;
use warden_service::budget::StoreError;
use warden_service::clock::{Clock, JsClock};
use warden_service::error::ApiError;
use warden_service::events::{EventBuilder, Outbox};
use warden_service::policy_source::PolicySource;
use warden_service::ratelimit::{RateDecision, RateLimiter};
use warden_service::router::{router, AppState, ClientAddr};
use warden_service::service::builder::static_probe;
use warden_service::service::builder::Budgets;
use warden_service::service::{CheckStatus, Observer, Service, ServiceBuilder};
use warden_service::settings::{AuditTarget, ConfigError, Settings, StoreKind, Vars};
use worker::{event, Context, Env, HttpRequest};

/// KV binding holding the policy (optional; the bundled policy is served without it).
pub const POLICY_KV_BINDING: &str = "WARDEN_POLICY";
/// KV binding receiving undeliverable events (optional; they are logged without it).
pub const DLQ_KV_BINDING: &str = "WARDEN_DLQ";
/// Workers rate-limit binding (optional; no rate limit without it).
pub const RATE_LIMIT_BINDING: &str = "WARDEN_RATE_LIMITER";
/// `agent_id` of an `evaluate` that names none.
pub const DEFAULT_AGENT_ID: &str = "cloudflare-worker";

/// Rate limits through the Workers rate-limit binding. The binding keeps its own counters
/// (per Cloudflare location) with the limit and period set in `wrangler.toml`; it only says
/// yes or no, so `Retry-After` is the rest of the current minute.
pub struct CfRateLimiter {
    binding: worker::send::SendWrapper<worker::RateLimiter>,
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
        let outcome = worker::send::SendFuture::new(self.binding.0.limit(key.to_string()))
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
        "cloudflare binding WARDEN_RATE_LIMITER"
    }
}

/// Where the active policy comes from, and when to look at KV again.
#[derive(Debug)]
struct KvPolicy {
    key: String,
    refresh_ms: i64,
    next_check_ms: Cell<i64>,
}

/// Everything built once per isolate.
struct App {
    router: Router,
    service: Arc<Service>,
    outbox: Option<Arc<Outbox>>,
    kv_policy: Option<KvPolicy>,
    flush_deadline: Duration,
}

thread_local! {
    // Workers run one thread per isolate: this is the isolate's cache.
    static APP: std::cell::RefCell<Option<Rc<App>>> = const { std::cell::RefCell::new(None) };
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
        let get = |k: &str| lookup(env, k);
        let settings = Settings::from_lookup(get).map_err(|e| e.to_string())?;
        let vars = Vars::new(&get);
        let policy_key = vars.get("POLICY_KV_KEY").unwrap_or_else(|| String::from("policy"));
        let refresh = vars.seconds("POLICY_REFRESH_S", Duration::from_secs(60)).map_err(|e| e.to_string())?;
        if settings.events.is_websocket() {
            return Err(ConfigError::new(
                "WEBHOOK_URL",
                "must be an http(s):// webhook on Workers (WebSocket gateways need a long-running server)",
            )
            .to_string());
        }
        let audit = match settings.audit {
            AuditTarget::Stdout => true,
            AuditTarget::Off => false,
            AuditTarget::File(_) => {
                return Err(ConfigError::new("WARDEN_AUDIT", "Workers have no files: use stdout or off").to_string())
            }
        };
        let (source, kv_policy) = match env.kv(POLICY_KV_BINDING) {
            Err(_) => (PolicySource::bundled()?, None),
            Ok(kv) => {
                let origin = format!("kv:{POLICY_KV_BINDING}/{policy_key}");
                let text = kv
                    .get(&policy_key)
                    .text()
                    .await
                    .map_err(|e| format!("{origin}: cannot read the policy: {e}"))?
                    .ok_or_else(|| {
                        format!("{origin}: no such key (put the policy there, or unbind {POLICY_KV_BINDING})")
                    })?;
                let refresh_ms = i64::try_from(refresh.as_millis()).unwrap_or(i64::MAX);
                let now = JsClock.now_ms();
                let kv_policy =
                    KvPolicy { key: policy_key, refresh_ms, next_check_ms: Cell::new(now.saturating_add(refresh_ms)) };
                (PolicySource::parse(&text, origin)?, Some(kv_policy))
            }
        };
        let mut config = settings.service_config();
        config.default_agent_id = Some(String::from(DEFAULT_AGENT_ID));
        let mut builder = ServiceBuilder::new(Arc::new(source), settings.token_key(), config).clock(Arc::new(JsClock));
        if audit {
            builder = builder.observer(Arc::new(ConsoleAudit { scrubber: settings.events.scrubber() }));
        }
        let dlq = env.kv(DLQ_KV_BINDING).ok();
        let outbox = settings.events.webhook_url.clone().map(|url| {
            let events = &settings.events;
            Arc::new(Outbox::new(
                EventBuilder::new(events.event_options()),
                Box::new(FetchSink::new(url, &events.webhook_secret, events.timeout)),
                dlq.map(|kv| {
                    Box::new(KvDeadLetter(worker::send::SendWrapper(kv))) as Box<dyn warden_service::events::DeadLetter>
                }),
                Box::new(JsTimer),
                events.dispatcher.retry.clone(),
                events.dispatcher.queue_capacity,
            ))
        });
        let dlq_probe = match (&outbox, env.kv(DLQ_KV_BINDING).is_ok()) {
            (None, _) => static_probe("dlq", CheckStatus::Disabled, "events are off"),
            (Some(_), true) => {
                static_probe("dlq", CheckStatus::Ok, format!("undeliverable events go to KV {DLQ_KV_BINDING}"))
            }
            (Some(_), false) => static_probe(
                "dlq",
                CheckStatus::Warning,
                format!("no {DLQ_KV_BINDING} KV binding: undeliverable events are only logged"),
            ),
        };
        builder = builder.probe(dlq_probe);
        if let Some(o) = &outbox {
            builder = builder.observer(Arc::clone(o) as Arc<dyn Observer>);
        }
        let budgets_on = settings.budget_enabled && settings.store.is_some();
        match settings.store {
            _ if !settings.budget_enabled => {}
            Some(StoreKind::DurableObjects) => {
                let namespace = env.durable_object(BUDGET_DO_BINDING).map_err(|_| {
                    ConfigError::new(
                        "WARDEN_STORE",
                        "`durable_objects` needs the WARDEN_BUDGETS Durable Object binding (class BudgetObject, see wrangler.toml)",
                    )
                    .to_string()
                })?;
                let store = DurableObjectBudgetStore::new(namespace, settings.budget_default_limit);
                builder = builder.budgets(Budgets { store: Arc::new(store), prices: settings.prices.clone() });
            }
            Some(other) => {
                return Err(ConfigError::new(
                    "WARDEN_STORE",
                    format!("`{}` is not available on Workers: use durable_objects", other.name()),
                )
                .to_string())
            }
            None => {}
        }
        match (env.rate_limiter(RATE_LIMIT_BINDING), settings.rate_limit) {
            (Ok(binding), Some(limit)) => {
                let limiter = CfRateLimiter { binding: worker::send::SendWrapper(binding), limit: limit.get() };
                builder = builder.rate_limiter(Arc::new(limiter));
            }
            // Without a limiter or budgets the core's probe would only say "off"; say why.
            _ if !budgets_on => {
                builder = builder.probe(static_probe(
                    "stores",
                    CheckStatus::Disabled,
                    "no rate-limit binding; budgets off (WARDEN_STORE=durable_objects enables them)",
                ));
            }
            _ => {}
        }
        let metrics = Arc::new(IsolateMetrics::new(JsClock.now_ms()));
        builder = builder.observer(Arc::clone(&metrics) as Arc<dyn Observer>);
        let service = Arc::new(builder.build().map_err(|e| e.to_string())?);
        let api_keys = settings.api_keys.is_enabled().then(|| Arc::new(settings.api_keys.clone()));
        let render: warden_service::router::MetricsRender = Arc::new(move || metrics.encode());
        let router = router(AppState { service: Arc::clone(&service), api_keys, metrics: Some(render) });
        // Workers give `wait_until` work 30 s after the response.
        Ok(App { router, service, outbox, kv_policy, flush_deadline: Duration::from_secs(25) })
    }

    /// Re-reads the KV policy when due and offers it to the policy source (an invalid one is
    /// reported by readiness and the last good policy stays).
    async fn refresh_policy(&self, env: &Env) {
        let Some(kv_policy) = &self.kv_policy else { return };
        let now = JsClock.now_ms();
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
            Ok(Some(text)) => {
                source.offer(&text);
            }
            Ok(None) => source.set_error(Some(String::from("the policy key was deleted"))),
            Err(e) => source.set_error(Some(format!("cannot read the policy: {e}"))),
        }
    }
}

/// The route whose response streams (see the module docs).
pub const STREAM_PATH: &str = "/api/v1/postcheck/stream";

/// A response body that signals when it is dropped: after its end (workers-rs drops an
/// exhausted body) or when the client went away. `inner` is declared first, so it is dropped
/// (and whatever the route does at its end has run) before the signal fires.
struct EndSignal {
    inner: Body,
    _ended: futures_channel::oneshot::Sender<()>,
}

impl EndSignal {
    fn wrap(resp: http::Response<Body>) -> (http::Response<Body>, futures_channel::oneshot::Receiver<()>) {
        let (tx, rx) = futures_channel::oneshot::channel();
        (resp.map(|inner| Body::new(EndSignal { inner, _ended: tx })), rx)
    }
}

impl http_body::Body for EndSignal {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        core::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The Worker's fetch handler.
#[event(fetch)]
async fn fetch(req: HttpRequest, env: Env, ctx: Context) -> worker::Result<http::Response<Body>> {
    let app = match App::get(&env).await {
        Ok(app) => app,
        Err(message) => {
            // Misconfiguration fails closed and says why (never the value of a secret).
            worker::console_error!("{}", serde_json::json!({"level": "error", "msg": message}));
            let e = ApiError::new(ErrorCode::Unavailable, message);
            return Ok(axum::response::IntoResponse::into_response(e));
        }
    };
    let streaming = req.uri().path() == STREAM_PATH;
    let mut req = req.map(Body::new);
    let client = req.headers().get("cf-connecting-ip").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    let resp = match app.router.clone().oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    if streaming && resp.status().is_success() {
        // The stream's event comes at its end: deliver it (and refresh the policy) then.
        let (resp, ended) = EndSignal::wrap(resp);
        let app = Rc::clone(&app);
        ctx.wait_until(async move {
            // Resolves when the body has ended or was dropped (the client went away).
            let _ = ended.await;
            if let Some(outbox) = &app.outbox {
                outbox.flush(app.flush_deadline, JsClock.now_ms()).await;
            }
            app.refresh_policy(&env).await;
        });
        return Ok(resp);
    }
    let deliver = app.outbox.as_ref().is_some_and(|o| o.pending_len() > 0);
    let refresh = app.kv_policy.as_ref().is_some_and(|k| JsClock.now_ms() >= k.next_check_ms.get());
    if deliver || refresh {
        let app = Rc::clone(&app);
        ctx.wait_until(async move {
            if let Some(outbox) = &app.outbox {
                outbox.flush(app.flush_deadline, JsClock.now_ms()).await;
            }
            app.refresh_policy(&env).await;
        });
    }
    Ok(resp)
}
