//! Native (tokio) wiring shared by `warden serve` and the serverless adapters: settings from
//! the environment (SPEC §9), policy loading and hot reload, and the HTTP listener.

use crate::audit::AuditWriter;
use crate::auth::ApiKeys;
use crate::budget::{connect_redis, BudgetStore, RedisBudgetStore, SqliteBudgetStore, SQLITE_FILE_NAME};
use crate::clock::SystemClock;
use crate::events::{Dispatcher, EventBuilder, EventPublisher, EventsConfig};
use crate::metrics::Metrics;
use crate::policy_source::PolicySource;
use crate::ratelimit::{MemoryRateLimiter, RateLimiter, RedisRateLimiter};
use crate::router::AppState;
use crate::service::{Budgets, Check, Probe, Service, ServiceConfig, DEFAULT_SALT};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use warden_engine::budget::{Money, PriceTable, TokenPrice};
use warden_engine::policy_file::parse_policy;
use warden_engine::{OnError, Policy, TokenKey};

/// The policy shipped with Warden, used when no policy file is configured or present.
pub const BUNDLED_POLICY: &str = include_str!("../../../policies/policy.tool_access.yaml");

/// The default `POLICY_FILE`.
pub const DEFAULT_POLICY_FILE: &str = "policies/policy.tool_access.yaml";

/// A setting from the environment that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The variable.
    pub var: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl core::fmt::Display for SettingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "environment variable {}: {}", self.var, self.message)
    }
}

impl std::error::Error for SettingError {}

/// Reads environment variables; a lookup function so tests need not touch the process env.
pub struct Env<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The process environment.
    pub fn process() -> Env<'static> {
        Env(&|k| std::env::var(k).ok())
    }

    /// A non-empty value.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    /// A parsed value, or `default` when unset.
    pub fn parse<T: std::str::FromStr>(&self, var: &'static str, default: T) -> Result<T, SettingError>
    where
        T::Err: core::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e| SettingError { var, message: format!("`{v}` is not valid: {e}") }),
        }
    }

    /// A boolean (`true/false/1/0/yes/no/on/off`), or `default` when unset.
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, SettingError> {
        match self.get(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(SettingError { var, message: format!("`{v}` is not a boolean (true/false)") }),
            },
        }
    }
}

/// Settings of a native Warden (SPEC §9).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Policy file; `None` → the bundled policy.
    pub policy_file: Option<PathBuf>,
    /// Token salt (`PII_TOKEN_SALT`); `None` → the default salt (readiness warning).
    pub salt: Option<String>,
    /// Service settings.
    pub service: ServiceConfig,
    /// Data directory for embedded stores (`WARDEN_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// How often the policy file is checked for changes (`WARDEN_POLICY_POLL_MS`, default 1000).
    pub policy_poll: Duration,
    /// Per-user budgets on (`BUDGET_ENABLED`, default true).
    pub budget_enabled: bool,
    /// Monthly limit of users without one (`BUDGET_DEFAULT_LIMIT`, USD, default 10.0).
    pub budget_default_limit: Money,
    /// Model price overrides/extensions (`WARDEN_MODEL_PRICES="model=usd_per_1k_tokens,..."`).
    pub prices: PriceTable,
    /// Redis for budgets and rate limits across instances (`REDIS_URL`).
    pub redis_url: Option<String>,
    /// Requests per minute per user/key/address (`RATE_LIMIT_PER_MINUTE`, default 100; 0 = off).
    pub rate_limit: Option<NonZeroU32>,
    /// API keys (`WARDEN_API_KEYS`); disabled when unset.
    pub api_keys: ApiKeys,
    /// Decision events (`WEBHOOK_URL`, `WEBHOOK_*`, `PRECHECK_DLQ`, `EVENTS_INCLUDE_RAW_TEXT`).
    pub events: EventsConfig,
    /// Audit destination (`WARDEN_AUDIT`: `stdout` (default), `off`, or a file path).
    pub audit: String,
}

impl Settings {
    /// Reads the settings; `policy_override` (e.g. `--policy`) beats `POLICY_FILE`.
    pub fn from_env(env: &Env<'_>, policy_override: Option<PathBuf>) -> Result<Settings, SettingError> {
        let on_error = match env.get("ON_ERROR") {
            None => OnError::Block,
            Some(v) => OnError::from_name(v.trim()).ok_or(SettingError {
                var: "ON_ERROR",
                message: format!("`{v}` is not one of block, pass, best_effort"),
            })?,
        };
        let policy_file = policy_override.or_else(|| env.get("POLICY_FILE").map(PathBuf::from)).or_else(|| {
            let p = PathBuf::from(DEFAULT_POLICY_FILE);
            p.exists().then_some(p)
        });
        let salt = env.get("PII_TOKEN_SALT");
        let body_limit = env.parse("WARDEN_BODY_LIMIT", 1024 * 1024usize)?;
        let max_batch = env.parse("WARDEN_MAX_BATCH", 1000usize)?;
        let poll_ms = env.parse("WARDEN_POLICY_POLL_MS", 1000u64)?;
        let events = EventsConfig::from_lookup(|k| env.get(k))
            .map_err(|e| SettingError { var: "WEBHOOK_*", message: e.to_string() })?;
        Ok(Settings {
            policy_file,
            service: ServiceConfig {
                on_error,
                body_limit,
                max_batch,
                org_id: env.get("WARDEN_ORG_ID"),
                default_salt: salt.is_none(),
                default_webhook_secret: events.webhook_url.is_some() && events.uses_default_secret(),
                environment: env.get("WARDEN_ENV").unwrap_or_else(|| String::from("production")),
            },
            salt,
            data_dir: PathBuf::from(env.get("WARDEN_DATA_DIR").unwrap_or_else(|| String::from("./data"))),
            policy_poll: Duration::from_millis(poll_ms.max(50)),
            budget_enabled: env.flag("BUDGET_ENABLED", true)?,
            budget_default_limit: dollars(env, "BUDGET_DEFAULT_LIMIT", 10.0)?,
            prices: prices(env)?,
            redis_url: env.get("REDIS_URL"),
            rate_limit: NonZeroU32::new(env.parse("RATE_LIMIT_PER_MINUTE", 100u32)?),
            events,
            audit: env.get("WARDEN_AUDIT").unwrap_or_else(|| String::from("stdout")),
            api_keys: match env.get("WARDEN_API_KEYS") {
                None => ApiKeys::disabled(),
                Some(v) => ApiKeys::from_env_value(&v)
                    .map_err(|e| SettingError { var: "WARDEN_API_KEYS", message: e.to_string() })?,
            },
        })
    }

    /// The token key.
    pub fn token_key(&self) -> TokenKey {
        TokenKey::new(self.salt.as_deref().unwrap_or(DEFAULT_SALT))
    }
}

fn dollars(env: &Env<'_>, var: &'static str, default: f64) -> Result<Money, SettingError> {
    let v: f64 = env.parse(var, default)?;
    if !v.is_finite() || v < 0.0 {
        return Err(SettingError { var, message: format!("`{v}` must be a non-negative amount of USD") });
    }
    Ok(Money::from_dollars(v))
}

fn prices(env: &Env<'_>) -> Result<PriceTable, SettingError> {
    const VAR: &str = "WARDEN_MODEL_PRICES";
    let mut table = PriceTable::builtin();
    for entry in env.get(VAR).unwrap_or_default().split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || SettingError { var: VAR, message: format!("`{entry}` is not `model=usd_per_1k_tokens`") };
        let (model, price) = entry.split_once('=').ok_or_else(bad)?;
        let price = price.trim().parse::<f64>().ok().and_then(TokenPrice::from_usd_per_1k).ok_or_else(bad)?;
        table = table.with_override(model.trim(), price);
    }
    Ok(table)
}

/// Reads and validates a policy file; errors read `file:line:col: field `x`: message`.
pub fn load_policy_file(path: &Path) -> Result<Policy, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read policy file: {e}"))?;
    parse_policy(&name, &text).map_err(|e| e.to_string())
}

/// Loads the configured policy, or the bundled one.
pub fn load_policy(settings: &Settings) -> Result<PolicySource, String> {
    match &settings.policy_file {
        Some(path) => Ok(PolicySource::new(load_policy_file(path)?, path.display().to_string())),
        None => {
            let p = parse_policy("embedded:policy.tool_access.yaml", BUNDLED_POLICY).map_err(|e| e.to_string())?;
            Ok(PolicySource::new(p, "embedded:policy.tool_access.yaml"))
        }
    }
}

/// Budget store and rate limiter per the settings: Redis when `REDIS_URL` is set, else the
/// embedded SQLite file (budgets) and memory (rate limits).
pub async fn stores(settings: &Settings) -> Result<(Option<Budgets>, Option<Arc<dyn RateLimiter>>), String> {
    let redis = match &settings.redis_url {
        Some(url) => Some(connect_redis(url).await.map_err(|e| format!("REDIS_URL: {e}"))?),
        None => None,
    };
    let budgets = if settings.budget_enabled {
        let store: Arc<dyn BudgetStore> = match &redis {
            Some(conn) => Arc::new(RedisBudgetStore::new(conn.clone(), settings.budget_default_limit)),
            None => {
                let path = settings.data_dir.join(SQLITE_FILE_NAME);
                let limit = settings.budget_default_limit;
                let store = tokio::task::spawn_blocking(move || SqliteBudgetStore::open(path, limit))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("budget store: {e}"))?;
                Arc::new(store)
            }
        };
        Some(Budgets { store, prices: settings.prices.clone() })
    } else {
        None
    };
    let limiter: Option<Arc<dyn RateLimiter>> = match (settings.rate_limit, &redis) {
        (None, _) => None,
        (Some(n), Some(conn)) => Some(Arc::new(RedisRateLimiter::new(conn.clone(), n))),
        (Some(n), None) => Some(Arc::new(MemoryRateLimiter::new(n))),
    };
    Ok((budgets, limiter))
}

/// Readiness of the budget store and rate limiter.
pub struct StoresProbe {
    /// The budget store, if budgets are on.
    pub budgets: Option<Arc<dyn BudgetStore>>,
    /// The rate limiter, if on.
    pub limiter: Option<Arc<dyn RateLimiter>>,
}

#[async_trait::async_trait]
impl Probe for StoresProbe {
    fn name(&self) -> &'static str {
        "stores"
    }

    async fn check(&self) -> Check {
        let mut parts = Vec::new();
        if let Some(b) = &self.budgets {
            match b.ping().await {
                Ok(()) => parts.push(format!("budgets: {}", b.kind())),
                Err(e) => return Check::new("error", Some(format!("budgets: {e}"))),
            }
        }
        if let Some(l) = &self.limiter {
            match l.ping().await {
                Ok(()) => parts.push(format!("rate limits: {}", l.kind())),
                Err(e) => return Check::new("error", Some(format!("rate limits: {e}"))),
            }
        }
        if parts.is_empty() {
            Check::new("disabled", None)
        } else {
            Check::new("ok", Some(parts.join(", ")))
        }
    }
}

/// A native Warden, assembled: the service with stores, audit, metrics and events, and the
/// router state serving it.
pub struct Built {
    /// The service.
    pub service: Arc<Service>,
    /// Router state (auth keys, metrics renderer).
    pub state: AppState,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The event dispatcher, when `WEBHOOK_URL` is set (drain it on shutdown).
    pub dispatcher: Option<Arc<Dispatcher>>,
}

/// Assembles a native Warden from its settings.
pub async fn build(settings: &Settings) -> Result<Built, String> {
    let metrics = Arc::new(Metrics::new());
    let (budgets, limiter) = stores(settings).await?;
    let mut service = base_service(settings)?.with_probe(Arc::new(StoresProbe {
        budgets: budgets.as_ref().map(|b| Arc::clone(&b.store)),
        limiter: limiter.clone(),
    }));
    if let Some(b) = budgets {
        service = service.with_budgets(b);
    }
    if let Some(l) = limiter {
        service = service.with_rate_limiter(l);
    }
    let audit = AuditWriter::from_setting(&settings.audit).map_err(|e| format!("WARDEN_AUDIT: {e}"))?;
    service =
        service.with_observer(Arc::new(audit)).with_observer(Arc::clone(&metrics) as Arc<dyn crate::service::Observer>);
    let dispatcher = match settings.events.start(metrics.delivery_stats()).map_err(|e| format!("events: {e}"))? {
        Some(d) => {
            let d = Arc::new(d);
            let publisher =
                Arc::new(EventPublisher::new(EventBuilder::new(settings.events.event_options()), Arc::clone(&d)));
            service = service
                .with_observer(Arc::clone(&publisher) as Arc<dyn crate::service::Observer>)
                .with_probe(publisher);
            Some(d)
        }
        None => None,
    };
    let service = Arc::new(service);
    let render = {
        let m = Arc::clone(&metrics);
        Arc::new(move || m.encode()) as crate::router::MetricsRender
    };
    let state = AppState {
        service: Arc::clone(&service),
        api_keys: Some(Arc::new(settings.api_keys.clone())),
        metrics: Some(render),
    };
    Ok(Built { service, state, metrics, dispatcher })
}

/// A service with the core pieces wired (policy, salt, clock); callers add observers/probes.
pub fn base_service(settings: &Settings) -> Result<Service, String> {
    let source = Arc::new(load_policy(settings)?);
    Ok(Service::new(source, settings.token_key(), settings.service.clone(), Arc::new(SystemClock::new())))
}

/// Watches the policy file and swaps in valid changes; invalid ones are logged and the last
/// good policy stays. Polls (mtime + size + content) so it works on every filesystem,
/// including the symlink swaps of Kubernetes ConfigMaps.
pub async fn watch_policy(source: Arc<PolicySource>, path: PathBuf, every: Duration, on_reload: impl Fn(bool) + Send) {
    let mut last = std::fs::read(&path).ok();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(now) = tokio::fs::read(&path).await else { continue };
        if last.as_deref() == Some(now.as_slice()) {
            continue;
        }
        last = Some(now.clone());
        let name = path.display().to_string();
        let parsed = String::from_utf8(now)
            .map_err(|_| format!("{name}: policy file is not UTF-8"))
            .and_then(|text| parse_policy(&name, &text).map_err(|e| e.to_string()));
        match parsed {
            Ok(p) => {
                source.replace(p);
                log("info", &format!("policy reloaded from {name}"));
                on_reload(true);
            }
            Err(e) => {
                log("error", &format!("policy reload failed, keeping the previous policy: {e}"));
                source.set_error(Some(e));
                on_reload(false);
            }
        }
    }
}

/// One JSON log line on stderr (stdout carries audit lines).
pub fn log(level: &str, msg: &str) {
    eprintln!("{}", serde_json::json!({"level": level, "msg": msg}));
}
