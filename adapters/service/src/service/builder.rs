//! [`ServiceBuilder`]: every part of a service is plugged in explicitly — stores, observers,
//! probes and the clock. Nothing falls back silently: a service without a clock does not
//! build, and readiness reports every store that is not there.

use super::hooks::{Check, CheckStatus, Observer, Probe, StaticProbe};
use super::message::MessageDedupe;
use super::{Service, ServiceConfig};
use crate::budget::BudgetStore;
use crate::clock::Clock;
use crate::policy_source::PolicySource;
use crate::ratelimit::RateLimiter;
use crate::settings::Settings;
use core::fmt;
use std::sync::Arc;
use warden_engine::budget::PriceTable;
use warden_engine::{Detector, TokenKey};

/// Per-user budgets (SPEC §6): where spend is kept and how LLM cost is priced.
#[derive(Clone)]
pub struct Budgets {
    /// The store (memory, SQLite or Redis).
    pub store: Arc<dyn BudgetStore>,
    /// Model prices.
    pub prices: PriceTable,
}

/// Why a service could not be assembled.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No clock was given ([`ServiceBuilder::clock`]).
    NoClock,
    /// The policy encrypts (the field named) but no token keys were given
    /// ([`ServiceConfig::keyring`], `WARDEN_ENCRYPT_KEYS`).
    NoEncryptKeys(String),
    /// The policy looks for person names (`detect_extra: [person]`) but the detector has no
    /// name tables (an engine built without `embedded-names`, and none given at run time).
    NoNameTables,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoClock => f.write_str("no clock: call ServiceBuilder::clock"),
            BuildError::NoEncryptKeys(field) => write!(
                f,
                "policy field `{field}` is `encrypt`, which needs reversible-token keys: set WARDEN_ENCRYPT_KEYS"
            ),
            BuildError::NoNameTables => f.write_str(NO_NAME_TABLES),
        }
    }
}

impl std::error::Error for BuildError {}

/// Why a policy that looks for person names is refused by a detector without name tables.
pub const NO_NAME_TABLES: &str = "policy field `detect_extra` has `person`, which needs the name tables, \
     and this build has none: load the asset warden-names.bin (the wasm package's option `nameTables`)";

/// What is plugged into a service besides its policy, key and clock.
#[derive(Default)]
pub(crate) struct Plugins {
    pub(crate) observers: Vec<Arc<dyn Observer>>,
    pub(crate) probes: Vec<Arc<dyn Probe>>,
    pub(crate) budgets: Option<Budgets>,
    pub(crate) limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) caller_limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) dedupe: Option<Arc<dyn MessageDedupe>>,
}

/// Assembles a [`Service`].
pub struct ServiceBuilder {
    policy: Arc<PolicySource>,
    key: TokenKey,
    config: ServiceConfig,
    clock: Option<Arc<dyn Clock>>,
    detector: Option<Detector>,
    plugins: Plugins,
}

impl fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    /// A builder evaluating `policy`, tokenizing with `key`, under `config`.
    pub fn new(policy: Arc<PolicySource>, key: TokenKey, config: ServiceConfig) -> ServiceBuilder {
        ServiceBuilder { policy, key, config, clock: None, detector: None, plugins: Plugins::default() }
    }

    /// A builder with the salt and service settings of `settings`.
    pub fn from_settings(settings: &Settings, policy: Arc<PolicySource>) -> ServiceBuilder {
        ServiceBuilder::new(policy, settings.token_key(), settings.service_config())
    }

    /// The clock (required).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> ServiceBuilder {
        self.clock = Some(clock);
        self
    }

    /// The detector (default [`Detector::new`]); e.g. one with name tables loaded at run time
    /// ([`Detector::with_names`]).
    pub fn detector(mut self, detector: Detector) -> ServiceBuilder {
        self.detector = Some(detector);
        self
    }

    /// Adds an observer of every decision.
    pub fn observer(mut self, o: Arc<dyn Observer>) -> ServiceBuilder {
        self.plugins.observers.push(o);
        self
    }

    /// Adds a readiness probe.
    pub fn probe(mut self, p: Arc<dyn Probe>) -> ServiceBuilder {
        self.plugins.probes.push(p);
        self
    }

    /// Enables per-user budgets.
    pub fn budgets(mut self, b: Budgets) -> ServiceBuilder {
        self.plugins.budgets = Some(b);
        self
    }

    /// Enables rate limiting.
    pub fn rate_limiter(mut self, l: Arc<dyn RateLimiter>) -> ServiceBuilder {
        self.plugins.limiter = Some(l);
        self
    }

    /// Limits every caller (API key, else client address) whatever user ids it names
    /// (`RATE_LIMIT_PER_KEY_PER_MINUTE`).
    pub fn caller_rate_limiter(mut self, l: Arc<dyn RateLimiter>) -> ServiceBuilder {
        self.plugins.caller_limiter = Some(l);
        self
    }

    /// Remembers message ids, so redelivered messages are neither answered nor charged twice.
    pub fn dedupe(mut self, d: Arc<dyn MessageDedupe>) -> ServiceBuilder {
        self.plugins.dedupe = Some(d);
        self
    }

    /// The service. Adds the `stores` probe (what is configured, and whether it answers)
    /// unless one was given.
    pub fn build(mut self) -> Result<Service, BuildError> {
        let clock = self.clock.ok_or(BuildError::NoClock)?;
        let can_encrypt = self.config.keyring.is_some();
        if let Some(field) = self.policy.get().encrypt_field().filter(|_| !can_encrypt) {
            return Err(BuildError::NoEncryptKeys(field));
        }
        self.policy.set_can_encrypt(can_encrypt);
        let detector = self.detector.unwrap_or_default();
        if self.policy.get().detect_extra().person && !detector.has_names() {
            return Err(BuildError::NoNameTables);
        }
        if !self.plugins.probes.iter().any(|p| p.name() == "stores") {
            let probe: Arc<dyn Probe> = Arc::new(StoresProbe {
                budgets: self.plugins.budgets.as_ref().map(|b| Arc::clone(&b.store)),
                limiter: self.plugins.limiter.clone(),
                dedupe: self.plugins.dedupe.clone(),
            });
            self.plugins.probes.push(probe);
        }
        Ok(Service {
            policy: self.policy,
            key: self.key,
            detector,
            config: self.config,
            clock,
            plugins: self.plugins,
            request_ids: std::sync::atomic::AtomicU64::new(0),
            policy_cache: super::policy_cache::PolicyCache::default(),
        })
    }
}

/// Readiness of the budget store, rate limiter and message dedupe: each one that is
/// configured must answer; budgets that are off are said to be off.
struct StoresProbe {
    budgets: Option<Arc<dyn BudgetStore>>,
    limiter: Option<Arc<dyn RateLimiter>>,
    dedupe: Option<Arc<dyn MessageDedupe>>,
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
                Err(e) => return Check::new(CheckStatus::Error, Some(format!("budgets: {e}"))),
            }
        }
        if let Some(l) = &self.limiter {
            match l.ping().await {
                Ok(()) => parts.push(format!("rate limits: {}", l.kind())),
                Err(e) => return Check::new(CheckStatus::Error, Some(format!("rate limits: {e}"))),
            }
        }
        if parts.is_empty() {
            // Message dedupe alone does not make budgets or limits: say what is off.
            let dedupe = self.dedupe.as_ref().map_or("off", |d| d.kind());
            return Check::new(
                CheckStatus::Disabled,
                Some(format!("budgets and rate limits off; message dedupe: {dedupe}")),
            );
        }
        Check::new(CheckStatus::Ok, Some(parts.join(", ")))
    }
}

/// A probe for platforms whose stores are bindings known at start-up.
pub fn static_probe(name: &'static str, status: CheckStatus, detail: impl Into<String>) -> Arc<dyn Probe> {
    Arc::new(StaticProbe::new(name, Check::new(status, Some(detail.into()))))
}
