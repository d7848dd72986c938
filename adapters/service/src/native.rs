//! Native (tokio) wiring shared by `warden serve` and the serverless adapters: settings from
//! the environment (SPEC §9), policy loading and hot reload, and the HTTP listener.

use crate::clock::SystemClock;
use crate::policy_source::PolicySource;
use crate::service::{Service, ServiceConfig, DEFAULT_SALT};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
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
        Ok(Settings {
            policy_file,
            service: ServiceConfig {
                on_error,
                body_limit,
                max_batch,
                org_id: env.get("WARDEN_ORG_ID"),
                default_salt: salt.is_none(),
                environment: env.get("WARDEN_ENV").unwrap_or_else(|| String::from("production")),
            },
            salt,
            data_dir: PathBuf::from(env.get("WARDEN_DATA_DIR").unwrap_or_else(|| String::from("./data"))),
            policy_poll: Duration::from_millis(poll_ms.max(50)),
        })
    }

    /// The token key.
    pub fn token_key(&self) -> TokenKey {
        TokenKey::new(self.salt.as_deref().unwrap_or(DEFAULT_SALT))
    }
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
