//! Native (tokio) assembly shared by `warden serve` and every native cloud adapter: the
//! policy file and its watcher, the stores named by `WARDEN_STORE`, audit, metrics, events
//! (a background dispatcher for servers, an [`Outbox`] for functions) and graceful shutdown.
//!
//! An adapter says what its platform is ([`Platform`]) and gets a [`Built`] service:
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! use warden_service::native::{assemble, Platform};
//! use warden_service::settings::Settings;
//! let settings = Settings::from_lookup(|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
//! let built = assemble(&settings, &Platform::server("warden-default")).await?;
//! # let _ = built; Ok(()) }
//! ```

use crate::audit::{AuditWriter, Auditor};
use crate::budget::{
    connect_redis, BudgetStore, MemoryBudgetStore, RedisBudgetStore, SqliteBudgetStore, SQLITE_FILE_NAME,
};
use crate::clock::SystemClock;
use crate::events::{DeadLetter, Dispatcher, EventBuilder, EventPublisher, Outbox, TokioTimer};
use crate::metrics::Metrics;
use crate::policy_source::{Offered, PolicySource, Settler};
use crate::ratelimit::{MemoryRateLimiter, RateLimiter, RedisRateLimiter};
use crate::router::{router, AppState};
use crate::service::{Budgets, MemoryDedupe, MessageDedupe, Observer, Service, ServiceBuilder};
use crate::settings::{AuditTarget, Settings, StoreKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::dedupe_redis::RedisDedupe;

/// The default `POLICY_FILE`, used when it exists.
pub const DEFAULT_POLICY_FILE: &str = "policies/policy.tool_access.yaml";

/// Message ids an in-memory dedupe store keeps.
const MEMORY_DEDUPE_IDS: usize = 100_000;

/// How decision events leave the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventMode {
    /// A background dispatcher with a bounded queue (long-running servers).
    Background,
    /// An [`Outbox`] the adapter flushes before each invocation returns (functions).
    Outbox,
}

/// What the runtime is, so the core can pick defaults that are right for it.
#[derive(Clone, Debug)]
pub struct Platform {
    /// Store when `WARDEN_STORE` is unset and no `REDIS_URL` is given: `Some(Sqlite)` for a
    /// server with a disk; `None` for functions, whose instances share nothing (budgets are
    /// off then, and readiness says so).
    pub default_store: Option<StoreKind>,
    /// `agent_id` of an `evaluate` that names none.
    pub default_agent_id: String,
    /// Prometheus metrics at `/api/metrics`.
    pub metrics: bool,
    /// How events are sent.
    pub events: EventMode,
    /// Looks for `policies/policy.tool_access.yaml` in the working directory when
    /// `POLICY_FILE` is unset.
    pub policy_in_working_dir: bool,
}

impl Platform {
    /// A long-running server (`warden serve`, Cloud Run): SQLite budgets by default,
    /// Prometheus, background event delivery.
    pub fn server(default_agent_id: &str) -> Platform {
        Platform {
            default_store: Some(StoreKind::Sqlite),
            default_agent_id: default_agent_id.to_owned(),
            metrics: true,
            events: EventMode::Background,
            policy_in_working_dir: true,
        }
    }

    /// A function (Lambda, Azure Functions): no default store, events through an outbox.
    pub fn function(default_agent_id: &str) -> Platform {
        Platform {
            default_store: None,
            default_agent_id: default_agent_id.to_owned(),
            metrics: false,
            events: EventMode::Outbox,
            policy_in_working_dir: false,
        }
    }
}

/// Stores an adapter brings itself (e.g. DynamoDB on Lambda for `WARDEN_STORE=dynamodb`),
/// used instead of the ones [`assemble`] would open.
#[derive(Default)]
pub struct Stores {
    /// Per-user budgets, if on.
    pub budgets: Option<Budgets>,
    /// The per-user rate limiter, if on.
    pub limiter: Option<Arc<dyn RateLimiter>>,
    /// The per-caller rate limiter, if on.
    pub caller_limiter: Option<Arc<dyn RateLimiter>>,
    /// Message dedupe.
    pub dedupe: Option<Arc<dyn MessageDedupe>>,
}

/// What an adapter plugs into [`assemble_with`].
#[derive(Default)]
pub struct Extras {
    /// Its own stores; `None` → the stores `WARDEN_STORE` names.
    pub stores: Option<Stores>,
    /// Where the outbox dead-letters events (an SQS queue, a bucket prefix...); `None` → the
    /// file at `PRECHECK_DLQ`.
    pub dead_letter: Option<Box<dyn DeadLetter>>,
    /// More observers of every decision (e.g. a platform's metrics format).
    pub observers: Vec<Arc<dyn Observer>>,
}

/// An assembled native Warden.
pub struct Built {
    /// The service.
    pub service: Arc<Service>,
    /// Router state (auth keys, metrics renderer).
    pub state: AppState,
    /// Prometheus metrics, when the platform exports them.
    pub metrics: Option<Arc<Metrics>>,
    /// The event dispatcher ([`EventMode::Background`] with `WEBHOOK_URL` set).
    pub dispatcher: Option<Arc<Dispatcher>>,
    /// The outbox ([`EventMode::Outbox`] with `WEBHOOK_URL` set): flush it before returning.
    pub outbox: Option<Arc<Outbox>>,
    /// The policy file being served, if any (watch it with [`watch_policy`]).
    pub policy_file: Option<PathBuf>,
}

impl Built {
    /// Delivers or dead-letters every queued event within `grace` (call on shutdown).
    pub async fn shutdown(&self, grace: Duration) {
        if let Some(d) = &self.dispatcher {
            d.shutdown(grace).await;
        }
        if let Some(o) = &self.outbox {
            o.flush(grace, self.service.clock().now_ms()).await;
        }
    }
}

/// The policy file to serve: `POLICY_FILE`, else the default file when the platform looks
/// for it and it exists, else none (the bundled policy).
pub fn policy_path(settings: &Settings, platform: &Platform) -> Option<PathBuf> {
    settings.policy_file.clone().or_else(|| {
        let p = PathBuf::from(DEFAULT_POLICY_FILE);
        (platform.policy_in_working_dir && p.exists()).then_some(p)
    })
}

/// Reads and validates a policy file; errors read `file:line:col: field `x`: message`.
pub fn load_policy_file(path: &Path) -> Result<PolicySource, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read policy file: {e}"))?;
    PolicySource::parse(&text, name)
}

/// The policy source for `path`, or the bundled policy.
pub fn load_policy(path: Option<&Path>) -> Result<PolicySource, String> {
    match path {
        Some(p) => load_policy_file(p),
        None => PolicySource::bundled(),
    }
}

/// Stores per the settings. Every failure is a start-up error naming the setting: a missing
/// or read-only data directory is reported here, not on the first request.
async fn stores(settings: &Settings, platform: &Platform) -> Result<Stores, String> {
    let kind = settings.store.or(platform.default_store);
    let redis = match (kind, &settings.redis_url) {
        (Some(StoreKind::Redis), Some(url)) => Some(connect_redis(url).await.map_err(|e| format!("REDIS_URL: {e}"))?),
        _ => None,
    };
    let limit = settings.budget_default_limit;
    let store: Option<Arc<dyn BudgetStore>> = match (kind, &redis) {
        _ if !settings.budget_enabled => None,
        (Some(StoreKind::Redis), Some(conn)) => Some(Arc::new(RedisBudgetStore::new(conn.clone(), limit))),
        (Some(StoreKind::Sqlite), _) => {
            let dir = settings.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir).map_err(|e| format!("WARDEN_DATA_DIR: cannot create {}: {e}", dir.display()))?;
                SqliteBudgetStore::open(dir.join(SQLITE_FILE_NAME), limit)
                    .map_err(|e| format!("WARDEN_DATA_DIR: budget store: {e} (set WARDEN_STORE=memory or redis on a read-only filesystem)"))
            })
            .await
            .map_err(|e| e.to_string())??;
            Some(Arc::new(store))
        }
        (Some(StoreKind::Memory), _) => Some(Arc::new(MemoryBudgetStore::new(limit))),
        (Some(other @ (StoreKind::DynamoDb | StoreKind::DurableObjects)), _) => {
            return Err(format!("WARDEN_STORE: `{}` is provided by its platform's adapter, not here", other.name()))
        }
        _ => None,
    };
    let budgets = store.map(|store| Budgets { store, prices: settings.prices.clone() });
    let limiter_for = |limit: Option<std::num::NonZeroU32>| -> Option<Arc<dyn RateLimiter>> {
        match (limit, &redis) {
            (None, _) => None,
            (Some(n), Some(conn)) => Some(Arc::new(RedisRateLimiter::new(conn.clone(), n))),
            (Some(n), None) => Some(Arc::new(MemoryRateLimiter::new(n))),
        }
    };
    let dedupe: Arc<dyn MessageDedupe> = match &redis {
        Some(conn) => Arc::new(RedisDedupe::new(conn.clone())),
        None => Arc::new(MemoryDedupe::new(MEMORY_DEDUPE_IDS)),
    };
    Ok(Stores {
        budgets,
        limiter: limiter_for(settings.rate_limit),
        caller_limiter: limiter_for(settings.rate_limit_per_key),
        dedupe: Some(dedupe),
    })
}

/// Assembles a native Warden for `platform` from `settings`.
pub async fn assemble(settings: &Settings, platform: &Platform) -> Result<Built, String> {
    assemble_with(settings, platform, Extras::default()).await
}

/// [`assemble`] with stores or a dead-letter destination the adapter brings.
pub async fn assemble_with(settings: &Settings, platform: &Platform, extras: Extras) -> Result<Built, String> {
    let policy_file = policy_path(settings, platform);
    let source = Arc::new(load_policy(policy_file.as_deref())?);
    let mut config = settings.service_config();
    config.default_agent_id = Some(platform.default_agent_id.clone());
    let stores = match extras.stores {
        Some(s) => s,
        None => stores(settings, platform).await?,
    };
    let dedupe = stores.dedupe.unwrap_or_else(|| Arc::new(MemoryDedupe::new(MEMORY_DEDUPE_IDS)));
    let (budgets, limiter) = (stores.budgets, stores.limiter);
    let mut builder =
        ServiceBuilder::new(source, settings.token_key(), config).clock(Arc::new(SystemClock::new())).dedupe(dedupe);
    if let Some(b) = budgets {
        builder = builder.budgets(b);
    }
    if let Some(l) = limiter {
        builder = builder.rate_limiter(l);
    }
    if let Some(l) = stores.caller_limiter {
        builder = builder.caller_rate_limiter(l);
    }
    let audit = match &settings.audit {
        AuditTarget::Stdout => AuditWriter::Stdout,
        AuditTarget::Off => AuditWriter::Off,
        AuditTarget::File(path) => {
            AuditWriter::file(path).map_err(|e| format!("WARDEN_AUDIT: {}: {e}", path.display()))?
        }
    };
    builder = builder.observer(Arc::new(Auditor::new(audit, settings.events.scrubber())));
    for o in extras.observers {
        builder = builder.observer(o);
    }
    let metrics = platform.metrics.then(|| Arc::new(Metrics::new()));
    if let Some(m) = &metrics {
        builder = builder.observer(Arc::clone(m) as Arc<dyn Observer>);
    }
    let events = &settings.events;
    let stats = metrics.as_ref().map(|m| m.delivery_stats()).unwrap_or_default();
    let (mut dispatcher, mut outbox) = (None, None);
    let mut dead_letter = extras.dead_letter;
    if let Some(sink) = events.sink().map_err(|e| format!("WEBHOOK_URL: {e}"))? {
        let builder_events = EventBuilder::new(events.event_options());
        let dlq = events.dead_letter_queue(stats).map_err(|e| format!("PRECHECK_DLQ: {e}"))?;
        match platform.events {
            EventMode::Background => {
                let d = Arc::new(
                    Dispatcher::start(sink, dlq, events.dispatcher.clone()).map_err(|e| format!("events: {e}"))?,
                );
                let publisher = Arc::new(EventPublisher::new(builder_events, Arc::clone(&d)));
                builder = builder.observer(Arc::clone(&publisher) as Arc<dyn Observer>).probe(publisher);
                dispatcher = Some(d);
            }
            EventMode::Outbox => {
                let o = Arc::new(Outbox::new(
                    builder_events,
                    Box::new(ArcSink(sink)),
                    Some(dead_letter.take().unwrap_or_else(|| Box::new(ArcDlq(dlq)))),
                    Box::new(TokioTimer),
                    events.dispatcher.retry.clone(),
                    events.dispatcher.queue_capacity,
                ));
                builder = builder.observer(Arc::clone(&o) as Arc<dyn Observer>);
                outbox = Some(o);
            }
        }
    }
    let service = Arc::new(builder.build().map_err(|e| e.to_string())?);
    let render = metrics.as_ref().map(|m| {
        let m = Arc::clone(m);
        Arc::new(move || m.encode()) as crate::router::MetricsRender
    });
    let state = AppState {
        service: Arc::clone(&service),
        api_keys: Some(Arc::new(settings.api_keys.clone())),
        metrics: render,
    };
    Ok(Built { service, state, metrics, dispatcher, outbox, policy_file })
}

struct ArcSink(Arc<dyn crate::events::EventSink>);

#[async_trait::async_trait]
impl crate::events::EventSink for ArcSink {
    async fn send(&self, event_json: &str) -> Result<(), crate::events::SendError> {
        self.0.send(event_json).await
    }
}

struct ArcDlq(Arc<crate::events::DeadLetterQueue>);

#[async_trait::async_trait]
impl crate::events::DeadLetter for ArcDlq {
    async fn put(&self, event_json: &str, error: &str, attempts: u32) -> Result<(), crate::budget::StoreError> {
        crate::events::DeadLetter::put(self.0.as_ref(), event_json, error, attempts).await
    }
}

/// Watches the policy file and offers every settled change to `source` (valid ones apply,
/// invalid ones are logged and the last good policy stays). A change is settled when two polls
/// in a row read the same content, so a file being rewritten in place is never loaded half
/// written. Polls content, so it works on every filesystem, including the symlink swaps of
/// Kubernetes ConfigMaps.
pub async fn watch_policy(source: Arc<PolicySource>, path: PathBuf, every: Duration, on_reload: impl Fn(bool) + Send) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Start from the text actually being served, not from a fresh read: the file may already
    // have changed between loading and this task's first poll.
    let mut settler = Settler::new(source.text().map(String::into_bytes));
    loop {
        tick.tick().await;
        let Ok(bytes) = tokio::fs::read(&path).await else { continue };
        let Some(bytes) = settler.observe(bytes) else { continue };
        let name = path.display();
        let Ok(text) = String::from_utf8(bytes) else {
            source.set_error(Some(format!("{name}: policy file is not UTF-8")));
            on_reload(false);
            continue;
        };
        match source.offer(&text) {
            Offered::Unchanged => {}
            Offered::Applied => {
                log("info", &format!("policy reloaded from {name}"));
                on_reload(true);
            }
            Offered::Rejected(e) => {
                log("error", &format!("policy reload failed, keeping the previous policy: {e}"));
                on_reload(false);
            }
        }
    }
}

/// Serves `built` on `listener` until SIGTERM or Ctrl-C, then stops accepting, lets
/// in-flight requests finish and drains queued events, all within `grace`.
pub async fn serve(
    built: Built,
    listener: tokio::net::TcpListener,
    settings: &Settings,
    grace: Duration,
) -> Result<(), String> {
    serve_with(built, listener, settings, grace, |app| app).await
}

/// [`serve`] with the adapter's own `app` (e.g. a platform's invocation routes in front of
/// [`router`]): the same policy watcher, metrics and graceful shutdown.
pub async fn serve_app(
    built: Built,
    app: axum::Router,
    listener: tokio::net::TcpListener,
    settings: &Settings,
    grace: Duration,
) -> Result<(), String> {
    serve_with(built, listener, settings, grace, move |_| app).await
}

/// [`serve`] with the adapter's routes and layers added to the router by `extend` (e.g. a
/// Pub/Sub push endpoint).
pub async fn serve_with(
    built: Built,
    listener: tokio::net::TcpListener,
    settings: &Settings,
    grace: Duration,
    extend: impl FnOnce(axum::Router) -> axum::Router,
) -> Result<(), String> {
    if let Some(path) = built.policy_file.clone() {
        let source = Arc::clone(built.service.policy_source());
        let metrics = built.metrics.clone();
        tokio::spawn(watch_policy(source, path, settings.policy_poll, move |ok| {
            if let Some(m) = &metrics {
                m.policy_reload(ok);
            }
        }));
    }
    let mut app = extend(router(built.state.clone()));
    if let Some(metrics) = built.metrics.clone() {
        app = app.layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| {
            let guard = metrics.active_request();
            async move {
                let resp = next.run(req).await;
                drop(guard);
                resp
            }
        }));
    }
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let signalled = Arc::clone(&started);
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            signalled.notify_one();
        });
    let server = async { server.await.map_err(|e| format!("server error: {e}")) };
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r?,
        () = started.notified() => {
            // In-flight requests get `grace`; a request still running then is cut off.
            match tokio::time::timeout(grace, &mut server).await {
                Ok(r) => r?,
                Err(_) => log("warn", "shutdown: in-flight requests did not finish in time"),
            }
        }
    }
    // Undelivered events go to the DLQ, never lost.
    built.shutdown(grace).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// One JSON log line on stderr (stdout carries audit lines).
pub fn log(level: &str, msg: &str) {
    eprintln!("{}", serde_json::json!({"level": level, "msg": msg}));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watcher_started_late_still_sees_a_change_made_before_its_first_poll() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        let first = "version: v1\ndeny_tools: [a.exec]\n";
        std::fs::write(&file, first).unwrap();
        let source = Arc::new(load_policy_file(&file).unwrap());
        // The file changes after loading but before the watcher runs (a slow first poll).
        std::fs::write(&file, "version: v1\ndeny_tools: [b.exec]\n").unwrap();
        let watcher = tokio::spawn(watch_policy(Arc::clone(&source), file, Duration::from_millis(5), |_| {}));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while source.get().deny_tools() != ["b.exec"] {
            assert!(tokio::time::Instant::now() < deadline, "the change was never applied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        watcher.abort();
    }
}
