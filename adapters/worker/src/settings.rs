//! The Worker's settings, read from its bindings (vars and secrets are both plain strings in
//! the Worker's `env`). Pure: a lookup function in, settings or a message naming the variable
//! out, so the parsing is unit-tested natively.

use core::time::Duration;
use warden_engine::OnError;
use warden_service::auth::ApiKeys;

/// KV binding holding the policy (optional; the bundled policy is served without it).
pub const POLICY_KV_BINDING: &str = "WARDEN_POLICY";
/// KV binding receiving undeliverable events (optional; they are logged without it).
pub const DLQ_KV_BINDING: &str = "WARDEN_DLQ";
/// Workers rate-limit binding (optional; no rate limit without it).
pub const RATE_LIMIT_BINDING: &str = "WARDEN_RATE_LIMITER";
/// `WEBHOOK_SECRET` when unset, as on every other Warden (GovernsAI's default); readiness
/// warns while it is in use. Kept equal to `warden_service::events::DEFAULT_WEBHOOK_SECRET`,
/// which is compiled only with the service's `native` feature.
pub const DEFAULT_WEBHOOK_SECRET: &str = "dev-secret";

/// Settings of one Worker deployment (SPEC §9 names).
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// `PII_TOKEN_SALT` (a secret); `None` → the default salt, with a readiness warning.
    pub salt: Option<String>,
    /// `ON_ERROR`.
    pub on_error: OnError,
    /// `WARDEN_API_KEYS` (a secret).
    pub api_keys: ApiKeys,
    /// `WARDEN_BODY_LIMIT` (default 1 MiB).
    pub body_limit: usize,
    /// `WARDEN_MAX_BATCH` (default 1000).
    pub max_batch: usize,
    /// `WARDEN_ORG_ID`.
    pub org_id: Option<String>,
    /// `WARDEN_ENV` (default `production`).
    pub environment: String,
    /// `POLICY_KV_KEY`: the key of the policy in the [`POLICY_KV_BINDING`] namespace.
    pub policy_key: String,
    /// `POLICY_REFRESH_S`: how often a KV policy is re-read (default 60 s).
    pub policy_refresh: Duration,
    /// `RATE_LIMIT_PER_MINUTE`: the limit configured on the rate-limit binding, reported in
    /// 429 messages (the binding itself enforces its own configured limit).
    pub rate_limit_per_minute: u32,
    /// Decision events; `None` when `WEBHOOK_URL` is unset.
    pub events: Option<EventSettings>,
    /// `WARDEN_AUDIT`: `off` disables the per-request audit line on the Worker's log.
    pub audit: bool,
}

/// Webhook delivery of decision events (SPEC §7).
#[derive(Clone, PartialEq)]
pub struct EventSettings {
    /// `WEBHOOK_URL` (http or https).
    pub url: String,
    /// `WEBHOOK_SECRET` (a secret).
    pub secret: String,
    /// Whether `WEBHOOK_SECRET` was unset.
    pub default_secret: bool,
    /// `WEBHOOK_MAX_RETRIES` (default 3).
    pub max_retries: u32,
    /// `WEBHOOK_BACKOFF_BASE_MS` (default 150).
    pub backoff_base: Duration,
    /// `WEBHOOK_TIMEOUT_S` (default 2.5), per attempt.
    pub timeout: Duration,
    /// `EVENTS_INCLUDE_RAW_TEXT` (default false).
    pub include_raw_text: bool,
}

// Secrets and URLs (which may carry tokens) are never printed.
impl core::fmt::Debug for Settings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Settings")
            .field("salt_set", &self.salt.is_some())
            .field("on_error", &self.on_error)
            .field("api_keys", &self.api_keys)
            .field("policy_key", &self.policy_key)
            .field("events", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

/// A setting that cannot be used: the variable and what is wrong (never its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingError(pub String);

impl core::fmt::Display for SettingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Settings {
    /// Reads every setting through `get` (which returns a variable's value, if bound).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let on_error = match get("ON_ERROR") {
            None => OnError::Block,
            Some(v) => OnError::from_name(&v)
                .ok_or_else(|| SettingError(format!("ON_ERROR: `{v}` is not one of block, pass, best_effort")))?,
        };
        let api_keys = match get("WARDEN_API_KEYS") {
            None => ApiKeys::disabled(),
            Some(v) => ApiKeys::from_env_value(&v).map_err(|e| SettingError(e.to_string()))?,
        };
        let events = match get("WEBHOOK_URL") {
            None => None,
            Some(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(SettingError(String::from(
                        "WEBHOOK_URL: must be an http(s):// webhook on Workers (WebSocket gateways need a long-running server)",
                    )));
                }
                let secret = get("WEBHOOK_SECRET");
                Some(EventSettings {
                    url,
                    default_secret: secret.is_none(),
                    secret: secret.unwrap_or_else(|| String::from(DEFAULT_WEBHOOK_SECRET)),
                    max_retries: number(&get, "WEBHOOK_MAX_RETRIES", 3u32)?,
                    backoff_base: Duration::from_millis(number(&get, "WEBHOOK_BACKOFF_BASE_MS", 150u64)?),
                    timeout: seconds(&get, "WEBHOOK_TIMEOUT_S", 2.5)?,
                    include_raw_text: flag(&get, "EVENTS_INCLUDE_RAW_TEXT", false)?,
                })
            }
        };
        let body_limit: usize = number(&get, "WARDEN_BODY_LIMIT", 1024 * 1024)?;
        let max_batch: usize = number(&get, "WARDEN_MAX_BATCH", 1000)?;
        if body_limit == 0 || max_batch == 0 {
            return Err(SettingError(String::from("WARDEN_BODY_LIMIT and WARDEN_MAX_BATCH must be at least 1")));
        }
        Ok(Settings {
            salt: get("PII_TOKEN_SALT"),
            on_error,
            api_keys,
            body_limit,
            max_batch,
            org_id: get("WARDEN_ORG_ID"),
            environment: get("WARDEN_ENV").unwrap_or_else(|| String::from("production")),
            policy_key: get("POLICY_KV_KEY").unwrap_or_else(|| String::from("policy")),
            policy_refresh: seconds(&get, "POLICY_REFRESH_S", 60.0)?,
            rate_limit_per_minute: number(&get, "RATE_LIMIT_PER_MINUTE", 100u32)?,
            events,
            audit: flag(&get, "WARDEN_AUDIT", true)?,
        })
    }
}

fn number<T: core::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    var: &str,
    default: T,
) -> Result<T, SettingError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| SettingError(format!("{var}: `{v}` is not a valid non-negative integer"))),
    }
}

fn seconds(get: &dyn Fn(&str) -> Option<String>, var: &str, default: f64) -> Result<Duration, SettingError> {
    let v = match get(var) {
        None => default,
        Some(v) => v.parse::<f64>().map_err(|_| SettingError(format!("{var}: `{v}` is not a number of seconds")))?,
    };
    Duration::try_from_secs_f64(v).map_err(|_| SettingError(format!("{var}: `{v}` is not a non-negative duration")))
}

fn flag(get: &dyn Fn(&str) -> Option<String>, var: &str, default: bool) -> Result<bool, SettingError> {
    match get(var).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(SettingError(format!("{var}: `{v}` is not a boolean (true/false)"))),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.on_error, OnError::Block);
        assert!(s.salt.is_none() && s.events.is_none() && !s.api_keys.is_enabled() && s.audit);
        assert_eq!((s.body_limit, s.max_batch, s.policy_key.as_str()), (1024 * 1024, 1000, "policy"));
        assert_eq!(s.policy_refresh, Duration::from_secs(60));
    }

    #[test]
    fn values_are_read_and_blank_is_unset() {
        let s = settings(&[
            ("PII_TOKEN_SALT", "salt"),
            ("ON_ERROR", "best_effort"),
            ("WEBHOOK_URL", "https://hooks.example/warden"),
            ("WEBHOOK_TIMEOUT_S", "0.5"),
            ("WARDEN_API_KEYS", "k1,k2"),
            ("WARDEN_ORG_ID", "  "),
        ])
        .unwrap();
        assert_eq!(s.salt.as_deref(), Some("salt"));
        assert_eq!(s.on_error, OnError::BestEffort);
        let e = s.events.unwrap();
        assert_eq!((e.secret.as_str(), e.default_secret), (DEFAULT_WEBHOOK_SECRET, true));
        assert_eq!(e.timeout, Duration::from_millis(500));
        assert_eq!(s.api_keys.len(), 2);
        assert!(s.org_id.is_none());
    }

    #[test]
    fn bad_values_name_the_variable_not_the_secret() {
        let e = settings(&[("ON_ERROR", "explode")]).unwrap_err();
        assert!(e.0.starts_with("ON_ERROR:"), "{e}");
        let e = settings(&[("WEBHOOK_URL", "wss://gw.example/x?key=SECRET")]).unwrap_err();
        assert!(e.0.starts_with("WEBHOOK_URL:") && !e.0.contains("SECRET"), "{e}");
        assert!(settings(&[("WEBHOOK_URL", "https://x"), ("WEBHOOK_TIMEOUT_S", "-1")]).is_err());
        assert!(settings(&[("WARDEN_MAX_BATCH", "0")]).is_err());
        assert!(settings(&[("WARDEN_AUDIT", "maybe")]).is_err());
        let e = settings(&[("WARDEN_API_KEYS", "ok,sha256:zz")]).unwrap_err();
        assert!(!e.0.contains("ok,"), "{e}");
    }
}
