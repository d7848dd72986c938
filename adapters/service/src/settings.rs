//! Every setting of SPEC §9, read once through a lookup function and validated into types.
//!
//! Each runtime passes its own lookup — the process environment (`warden serve`, Lambda,
//! Cloud Run, Azure), a Worker's vars and secrets, the wasm package's options — and gets the
//! same [`Settings`] or the same [`ConfigError`] naming the variable (never its value, which
//! may be a secret). Nothing here does I/O: whether a path is writable or a store answers is
//! checked when the service is assembled.

use crate::auth::ApiKeys;
use crate::events::EventsConfig;
use crate::service::ServiceConfig;
use core::fmt;
use core::time::Duration;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use warden_engine::budget::{Money, PriceTable, TokenPrice};
use warden_engine::{Keyring, OnError, TokenKey};

/// The salt used when `PII_TOKEN_SALT` is unset; readiness warns about it.
pub const DEFAULT_SALT: &str = "warden-default-salt-change-me";

/// `WARDEN_DOCUMENT_LIMIT` default: documents (S3 objects, blobs, stream images) above it are
/// quarantined unread.
pub const DEFAULT_DOCUMENT_LIMIT: usize = 10 * 1024 * 1024;

/// `WARDEN_DEDUPE_TTL_S` default: how long a message id is remembered (one day covers the
/// redelivery windows of SQS, Pub/Sub and Azure queues).
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A setting that cannot be used: the variable and what is wrong with it (never its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable, e.g. `ON_ERROR`.
    pub variable: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl ConfigError {
    /// An error for `variable`.
    pub fn new(variable: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError { variable, problem: problem.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Reads variables through a lookup; blank values count as unset. Adapters use it for their
/// own platform settings so that every variable is parsed and reported the same way.
pub struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl fmt::Debug for Vars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vars")
    }
}

impl<'a> Vars<'a> {
    /// Variables read through `lookup`.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Vars<'a> {
        Vars(lookup)
    }

    /// A non-blank value, trimmed.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// A parsed value, or `default` when unset.
    pub fn parse<T: FromStr>(&self, var: &'static str, default: T, expected: &str) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            // The value is not repeated: it may be a secret pasted into the wrong variable.
            Some(v) => v.parse().map_err(|_| ConfigError::new(var, format!("expected {expected}"))),
        }
    }

    /// A positive integer, or `default` when unset.
    pub fn positive(&self, var: &'static str, default: usize) -> Result<usize, ConfigError> {
        match self.parse(var, default, "a positive integer")? {
            0 => Err(ConfigError::new(var, "must be at least 1")),
            n => Ok(n),
        }
    }

    /// A boolean (`true/false/1/0/yes/no/on/off`), or `default` when unset.
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::new(var, "expected a boolean (true/false)")),
            },
        }
    }

    /// A non-negative number of seconds, or `default` when unset.
    pub fn seconds(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| ConfigError::new(var, "expected a non-negative number of seconds")),
        }
    }
}

/// Where budgets, rate limits and message ids are kept (`WARDEN_STORE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// In process: one instance only, lost on restart.
    Memory,
    /// The embedded SQLite file under `WARDEN_DATA_DIR` (budgets; rate limits in memory).
    Sqlite,
    /// Redis at `REDIS_URL`: shared by every instance.
    Redis,
    /// DynamoDB tables (the AWS adapter brings the store).
    DynamoDb,
    /// A Durable Object (the Worker brings the store).
    DurableObjects,
}

impl StoreKind {
    /// The setting's value.
    pub const fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite",
            StoreKind::Redis => "redis",
            StoreKind::DynamoDb => "dynamodb",
            StoreKind::DurableObjects => "durable_objects",
        }
    }
}

/// What a request's `policy_config` may do (`WARDEN_REQUEST_POLICY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequestPolicyMode {
    /// It replaces the server policy for that request (SPEC §3, GovernsAI's behaviour).
    #[default]
    Replace,
    /// It may only make decisions stricter than the server policy's.
    Tighten,
    /// It is refused: 422 `policy_config_disabled`.
    Off,
}

impl RequestPolicyMode {
    /// The setting's value.
    pub const fn name(self) -> &'static str {
        match self {
            RequestPolicyMode::Replace => "replace",
            RequestPolicyMode::Tighten => "tighten",
            RequestPolicyMode::Off => "off",
        }
    }
}

/// Where audit lines go (`WARDEN_AUDIT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditTarget {
    /// Standard output (the default: containers and serverless platforms collect it).
    Stdout,
    /// Nowhere.
    Off,
    /// An append-mode file.
    File(PathBuf),
}

impl AuditTarget {
    fn parse(value: Option<String>) -> AuditTarget {
        match value.as_deref() {
            None | Some("stdout" | "-" | "on" | "true" | "1") => AuditTarget::Stdout,
            Some("off" | "none" | "false" | "0") => AuditTarget::Off,
            Some(path) => AuditTarget::File(PathBuf::from(path)),
        }
    }
}

/// One CIDR block, e.g. `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network = canonical(addr.trim().parse::<IpAddr>().map_err(|_| format!("`{s}` is not an address or CIDR"))?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("`{s}`: bad prefix"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Proxies whose `X-Forwarded-For` is believed (`WARDEN_TRUSTED_PROXIES`, comma-separated
/// CIDRs; empty = none, so the header is ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trusts these blocks.
    pub fn new(blocks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(blocks)
    }

    /// Whether `addr` is a trusted proxy.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(addr))
    }

    /// The client behind `peer`: when `peer` is a trusted proxy, the rightmost
    /// `X-Forwarded-For` hop that is not one (hops left of it are client-supplied and
    /// forgeable); otherwise `peer` itself.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else { return peer };
        let mut client = peer;
        // Bounded: a header is at most a few KB, and each hop is parsed once.
        for hop in header.rsplit(',').take(64) {
            match hop.trim().parse::<IpAddr>() {
                Ok(addr) if self.contains(addr) => client = addr,
                Ok(addr) => return canonical(addr),
                Err(_) => return client,
            }
        }
        client
    }
}

/// Origins allowed to call from browsers (`WARDEN_CORS_ORIGINS`: comma-separated origins, or
/// `*`; unset = no CORS headers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers.
    #[default]
    Off,
    /// Any origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// These exact origins.
    List(Vec<String>),
}

impl CorsOrigins {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    pub fn allow(&self, origin: Option<&str>) -> Option<String> {
        match self {
            CorsOrigins::Off => None,
            CorsOrigins::Any => Some(String::from("*")),
            CorsOrigins::List(list) => origin.filter(|o| list.iter().any(|a| a == o)).map(str::to_owned),
        }
    }
}

/// Every setting of SPEC §9, validated.
#[derive(Clone)]
pub struct Settings {
    /// `POLICY_FILE`; `None` → the runtime's default (the bundled policy where no file exists).
    pub policy_file: Option<PathBuf>,
    /// `PII_TOKEN_SALT`; `None` → [`DEFAULT_SALT`], with a readiness warning.
    pub salt: Option<String>,
    /// `ON_ERROR` (default `block`).
    pub on_error: OnError,
    /// `WARDEN_BODY_LIMIT` (default 1 MiB).
    pub body_limit: usize,
    /// `WARDEN_MAX_BATCH` (default 1000).
    pub max_batch: usize,
    /// `WARDEN_ORG_ID`.
    pub org_id: Option<String>,
    /// `WARDEN_ENV` (default `production`).
    pub environment: String,
    /// `WARDEN_DATA_DIR` (default `./data`): embedded stores.
    pub data_dir: PathBuf,
    /// `WARDEN_POLICY_POLL_MS` (default 1000, at least 50).
    pub policy_poll: Duration,
    /// `BUDGET_ENABLED` (default true).
    pub budget_enabled: bool,
    /// `BUDGET_DEFAULT_LIMIT` (USD, default 10.0).
    pub budget_default_limit: Money,
    /// `WARDEN_MODEL_PRICES` over the built-in table.
    pub prices: PriceTable,
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `WARDEN_STORE`; `None` → `redis` when `REDIS_URL` is set, else the runtime's default.
    pub store: Option<StoreKind>,
    /// `RATE_LIMIT_PER_MINUTE` (default 100; 0 = off): per user of a caller (API key, else
    /// client address).
    pub rate_limit: Option<NonZeroU32>,
    /// `RATE_LIMIT_PER_KEY_PER_MINUTE` (default 1000; 0 = off): per caller, whatever user ids
    /// it sends, so rotating user ids does not escape the limit.
    pub rate_limit_per_key: Option<NonZeroU32>,
    /// `WARDEN_REQUEST_POLICY` (default `replace`).
    pub request_policy: RequestPolicyMode,
    /// `PII_TOKEN_HEX_LEN` (default 8, 8..=64): the shortest token; a policy's
    /// `token_hex_len` can only make tokens longer.
    pub token_hex_len: usize,
    /// `WARDEN_DEV` (default false): allows the built-in salt while API keys are on.
    pub dev: bool,
    /// `WARDEN_API_KEYS` (unset = auth off).
    pub api_keys: ApiKeys,
    /// `WEBHOOK_*`, `PRECHECK_DLQ`, `EVENTS_INCLUDE_RAW_TEXT`, queue settings.
    pub events: EventsConfig,
    /// `WARDEN_AUDIT` (default stdout).
    pub audit: AuditTarget,
    /// `WARDEN_TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// `WARDEN_CORS_ORIGINS`.
    pub cors_origins: CorsOrigins,
    /// `WARDEN_DOCUMENT_LIMIT` (bytes, default 10 MiB).
    pub document_limit: usize,
    /// `WARDEN_DOCUMENT_TOOL` (default `document`): the tool documents are governed as.
    pub document_tool: String,
    /// `WARDEN_DEDUPE_TTL_S` (default one day): how long message ids are remembered.
    pub dedupe_ttl: Duration,
    /// `WARDEN_ENCRYPT_KEYS` (`kid:base64key,...`, the first active): keys of the `encrypt`
    /// action; unset = a policy that encrypts is refused.
    pub encrypt_keys: Option<Keyring>,
    /// `WARDEN_DETOKENIZE_KEYS` (unset = nobody): API keys that may call detokenize.
    pub detokenize_keys: ApiKeys,
}

// Secrets (salt, keys, webhook secret) and URLs that may carry credentials are never printed.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("policy_file", &self.policy_file)
            .field("salt_set", &self.salt.is_some())
            .field("on_error", &self.on_error)
            .field("store", &self.store)
            .field("api_keys", &self.api_keys)
            .field("events", &self.events)
            .field("encrypt_keys", &self.encrypt_keys)
            .field("detokenize_keys", &self.detokenize_keys)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads every setting through `lookup` (variable name → value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let vars = Vars::new(&lookup);
        let on_error = match vars.get("ON_ERROR") {
            None => OnError::Block,
            Some(v) => OnError::from_name(&v)
                .ok_or_else(|| ConfigError::new("ON_ERROR", "expected one of block, pass, best_effort"))?,
        };
        let redis_url = vars.get("REDIS_URL");
        let store = match vars.get("WARDEN_STORE").map(|v| v.to_ascii_lowercase()) {
            None => redis_url.as_ref().map(|_| StoreKind::Redis),
            Some(v) => Some(match v.as_str() {
                "memory" => StoreKind::Memory,
                "sqlite" => StoreKind::Sqlite,
                "redis" => StoreKind::Redis,
                "dynamodb" => StoreKind::DynamoDb,
                "durable_objects" => StoreKind::DurableObjects,
                _ => {
                    return Err(ConfigError::new(
                        "WARDEN_STORE",
                        "expected one of memory, sqlite, redis, dynamodb, durable_objects",
                    ))
                }
            }),
        };
        if store == Some(StoreKind::Redis) && redis_url.is_none() {
            return Err(ConfigError::new("WARDEN_STORE", "`redis` needs REDIS_URL"));
        }
        let trusted = vars
            .get("WARDEN_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<Cidr>().map_err(|e| ConfigError::new("WARDEN_TRUSTED_PROXIES", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let cors_origins = match vars.get("WARDEN_CORS_ORIGINS") {
            None => CorsOrigins::Off,
            Some(v) if v == "*" => CorsOrigins::Any,
            Some(v) => CorsOrigins::List(v.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect()),
        };
        let request_policy = match vars.get("WARDEN_REQUEST_POLICY").map(|v| v.to_ascii_lowercase()) {
            None => RequestPolicyMode::Replace,
            Some(v) => match v.as_str() {
                "replace" => RequestPolicyMode::Replace,
                "tighten" => RequestPolicyMode::Tighten,
                "off" => RequestPolicyMode::Off,
                _ => return Err(ConfigError::new("WARDEN_REQUEST_POLICY", "expected one of replace, tighten, off")),
            },
        };
        let token_hex_len = vars.parse("PII_TOKEN_HEX_LEN", 8usize, "a number of hex digits")?;
        if !(8..=64).contains(&token_hex_len) {
            return Err(ConfigError::new("PII_TOKEN_HEX_LEN", "must be 8 to 64"));
        }
        let api_keys = match vars.get("WARDEN_API_KEYS") {
            None => ApiKeys::disabled(),
            Some(v) => ApiKeys::from_env_value(&v).map_err(|e| ConfigError::new("WARDEN_API_KEYS", e.to_string()))?,
        };
        let salt = vars.get("PII_TOKEN_SALT");
        let dev = vars.flag("WARDEN_DEV", false)?;
        if salt.is_none() && api_keys.is_enabled() && !dev {
            // A production deployment (it has API keys) must not tokenize with a public salt:
            // its tokens could be reversed by anyone with a list of candidate values.
            return Err(ConfigError::new(
                "PII_TOKEN_SALT",
                "is required when WARDEN_API_KEYS is set (WARDEN_DEV=1 allows the built-in salt for development)",
            ));
        }
        let encrypt_keys =
            vars.get(crate::tokens::ENCRYPT_KEYS_VAR).map(|v| crate::tokens::parse_encrypt_keys(&v)).transpose()?;
        let detokenize_keys = crate::tokens::parse_detokenize_keys(
            vars.get(crate::tokens::DETOKENIZE_KEYS_VAR).as_deref(),
            &api_keys,
            encrypt_keys.as_ref(),
        )?;
        Ok(Settings {
            policy_file: vars.get("POLICY_FILE").map(PathBuf::from),
            salt,
            on_error,
            body_limit: vars.positive("WARDEN_BODY_LIMIT", 1024 * 1024)?,
            max_batch: vars.positive("WARDEN_MAX_BATCH", 1000)?,
            org_id: vars.get("WARDEN_ORG_ID"),
            environment: vars.get("WARDEN_ENV").unwrap_or_else(|| String::from("production")),
            data_dir: PathBuf::from(vars.get("WARDEN_DATA_DIR").unwrap_or_else(|| String::from("./data"))),
            policy_poll: Duration::from_millis(
                vars.parse("WARDEN_POLICY_POLL_MS", 1000u64, "a number of milliseconds")?.max(50),
            ),
            budget_enabled: vars.flag("BUDGET_ENABLED", true)?,
            budget_default_limit: dollars(&vars, "BUDGET_DEFAULT_LIMIT", 10.0)?,
            prices: prices(&vars)?,
            redis_url,
            store,
            rate_limit: NonZeroU32::new(vars.parse("RATE_LIMIT_PER_MINUTE", 100u32, "a non-negative integer")?),
            rate_limit_per_key: NonZeroU32::new(vars.parse(
                "RATE_LIMIT_PER_KEY_PER_MINUTE",
                1000u32,
                "a non-negative integer",
            )?),
            request_policy,
            token_hex_len,
            dev,
            api_keys,
            events: EventsConfig::from_vars(&vars)?,
            audit: AuditTarget::parse(vars.get("WARDEN_AUDIT")),
            trusted_proxies: TrustedProxies::new(trusted),
            cors_origins,
            document_limit: vars.positive("WARDEN_DOCUMENT_LIMIT", DEFAULT_DOCUMENT_LIMIT)?,
            document_tool: vars.get("WARDEN_DOCUMENT_TOOL").unwrap_or_else(|| String::from("document")),
            dedupe_ttl: vars.seconds("WARDEN_DEDUPE_TTL_S", DEFAULT_DEDUPE_TTL)?,
            encrypt_keys,
            detokenize_keys,
        })
    }

    /// The token key (`PII_TOKEN_SALT`, else the default salt).
    pub fn token_key(&self) -> TokenKey {
        TokenKey::new(self.salt.as_deref().unwrap_or(DEFAULT_SALT))
    }

    /// The service's own settings.
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            on_error: self.on_error,
            body_limit: self.body_limit,
            max_batch: self.max_batch,
            org_id: self.org_id.clone(),
            default_salt: self.salt.is_none(),
            default_webhook_secret: self.events.webhook_url.is_some() && self.events.uses_default_secret(),
            environment: self.environment.clone(),
            document_limit: self.document_limit,
            document_tool: self.document_tool.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            cors_origins: self.cors_origins.clone(),
            dedupe_ttl: self.dedupe_ttl,
            default_agent_id: None,
            request_policy: self.request_policy,
            token_hex_len: self.token_hex_len,
            keyring: self.encrypt_keys.clone(),
            detokenize_keys: self.detokenize_keys.clone(),
        }
    }
}

fn dollars(vars: &Vars<'_>, var: &'static str, default: f64) -> Result<Money, ConfigError> {
    let v: f64 = vars.parse(var, default, "an amount of USD")?;
    if !v.is_finite() || v < 0.0 {
        return Err(ConfigError::new(var, "must be a non-negative amount of USD"));
    }
    Ok(Money::from_dollars(v))
}

fn prices(vars: &Vars<'_>) -> Result<PriceTable, ConfigError> {
    const VAR: &str = "WARDEN_MODEL_PRICES";
    let mut table = PriceTable::builtin();
    for entry in vars.get(VAR).unwrap_or_default().split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || ConfigError::new(VAR, format!("`{entry}` is not `model=usd_per_1k_tokens`"));
        let (model, price) = entry.split_once('=').ok_or_else(bad)?;
        let price = price.trim().parse::<f64>().ok().and_then(TokenPrice::from_usd_per_1k).ok_or_else(bad)?;
        table = table.with_override(model.trim(), price);
    }
    Ok(table)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.on_error, OnError::Block);
        assert!(s.salt.is_none() && s.events.webhook_url.is_none() && !s.api_keys.is_enabled());
        assert_eq!((s.body_limit, s.max_batch, s.store), (1024 * 1024, 1000, None));
        assert_eq!(s.audit, AuditTarget::Stdout);
        assert_eq!(s.cors_origins, CorsOrigins::Off);
        assert_eq!(s.document_tool, "document");
    }

    #[test]
    fn store_follows_redis_url_unless_named() {
        assert_eq!(settings(&[("REDIS_URL", "redis://127.0.0.1/")]).unwrap().store, Some(StoreKind::Redis));
        let s = settings(&[("REDIS_URL", "redis://x/"), ("WARDEN_STORE", "memory")]).unwrap();
        assert_eq!(s.store, Some(StoreKind::Memory));
        assert_eq!(settings(&[("WARDEN_STORE", "redis")]).unwrap_err().variable, "WARDEN_STORE");
        assert_eq!(settings(&[("WARDEN_STORE", "dynamo")]).unwrap_err().variable, "WARDEN_STORE");
    }

    #[test]
    fn bad_values_name_the_variable_not_the_value() {
        for (var, value) in [
            ("ON_ERROR", "explode"),
            ("WARDEN_MAX_BATCH", "0"),
            ("WARDEN_BODY_LIMIT", "SECRET"),
            ("BUDGET_ENABLED", "SECRET"),
            ("BUDGET_DEFAULT_LIMIT", "-1"),
            ("WARDEN_TRUSTED_PROXIES", "10.0.0.0/99"),
            ("WEBHOOK_URL", "ftp://SECRET@host"),
            ("WARDEN_API_KEYS", "ok,sha256:zz"),
        ] {
            let e = settings(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{e}");
            assert!(!e.to_string().contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let s = settings(&[("WARDEN_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
        let t = &s.trusted_proxies;
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        // The client is the rightmost hop that is not a trusted proxy; hops left of it are forgeable.
        assert_eq!(t.client(proxy, Some("1.1.1.1, 198.51.100.7, 10.9.9.9")), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(t.client(outsider, Some("198.51.100.7")), outsider);
        assert_eq!(t.client(proxy, None), proxy);
        assert_eq!(t.client(proxy, Some("garbage")), proxy);
        assert_eq!(t.client("::1".parse().unwrap(), Some("198.51.100.7")), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert!("::ffff:10.0.0.1".parse::<IpAddr>().is_ok_and(|a| t.contains(a)));
    }

    #[test]
    fn api_keys_need_a_salt_unless_dev() {
        let e = settings(&[("WARDEN_API_KEYS", "k1")]).unwrap_err();
        assert_eq!(e.variable, "PII_TOKEN_SALT");
        assert!(settings(&[("WARDEN_API_KEYS", "k1"), ("WARDEN_DEV", "1")]).is_ok());
        assert!(settings(&[("WARDEN_API_KEYS", "k1"), ("PII_TOKEN_SALT", "s")]).is_ok());
        assert_eq!(settings(&[("PII_TOKEN_HEX_LEN", "4")]).unwrap_err().variable, "PII_TOKEN_HEX_LEN");
        assert_eq!(settings(&[("WARDEN_REQUEST_POLICY", "loose")]).unwrap_err().variable, "WARDEN_REQUEST_POLICY");
        assert_eq!(
            settings(&[("WARDEN_REQUEST_POLICY", "tighten")]).unwrap().request_policy,
            RequestPolicyMode::Tighten
        );
    }

    #[test]
    fn cors_origins() {
        let s = settings(&[("WARDEN_CORS_ORIGINS", "https://a.example, https://b.example")]).unwrap();
        assert_eq!(s.cors_origins.allow(Some("https://b.example")).as_deref(), Some("https://b.example"));
        assert_eq!(s.cors_origins.allow(Some("https://evil.example")), None);
        assert_eq!(settings(&[("WARDEN_CORS_ORIGINS", "*")]).unwrap().cors_origins.allow(None).as_deref(), Some("*"));
    }
}
