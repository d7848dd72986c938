//! Event delivery settings from the environment (SPEC §9).

use super::dispatch::{DeliveryStats, Dispatcher, DispatcherConfig, RetryPolicy};
use super::dlq::DeadLetterQueue;
use super::event::EventOptions;
use super::gateway::{redact_url, GatewayUrl};
use super::sink::EventSink;
use super::webhook::WebhookSink;
use super::ws::WebSocketSink;
use core::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `WEBHOOK_TIMEOUT_S` default, seconds.
pub const DEFAULT_TIMEOUT_S: f64 = 2.5;
/// `WEBHOOK_MAX_RETRIES` default.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// `WEBHOOK_BACKOFF_BASE_MS` default.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 150;
/// `WARDEN_EVENTS_QUEUE_CAPACITY` default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// `WARDEN_EVENTS_CONCURRENCY` default.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// DLQ file name inside `WARDEN_DATA_DIR` (default `./data`) when `PRECHECK_DLQ` is unset.
/// GovernsAI's default was `/tmp/precheck.dlq.jsonl`; `/tmp` is often cleared on reboot,
/// which would break "durably, never lost", so Warden keeps it with its other data.
pub const DEFAULT_DLQ_FILE: &str = "dlq.jsonl";
/// `WEBHOOK_SECRET` default, as in GovernsAI; readiness should warn while it is in use.
pub const DEFAULT_WEBHOOK_SECRET: &str = "dev-secret";

/// A setting that could not be used. Never contains the value, which may be a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Event delivery settings. `Debug` masks the secret and URL keys.
#[derive(Clone, PartialEq)]
pub struct EventsConfig {
    /// `WEBHOOK_URL`: `http(s)://` for a signed webhook, `ws(s)://` for a gateway;
    /// `None` turns events off.
    pub webhook_url: Option<String>,
    /// `WEBHOOK_SECRET` (default [`DEFAULT_WEBHOOK_SECRET`]).
    pub webhook_secret: String,
    /// `WEBHOOK_TIMEOUT_S` (default 2.5 s): per attempt.
    pub timeout: Duration,
    /// Queue, concurrency and retries (`WEBHOOK_MAX_RETRIES`, `WEBHOOK_BACKOFF_BASE_MS`,
    /// `WARDEN_EVENTS_QUEUE_CAPACITY`, `WARDEN_EVENTS_CONCURRENCY`).
    pub dispatcher: DispatcherConfig,
    /// `PRECHECK_DLQ` (default `$WARDEN_DATA_DIR/dlq.jsonl`, i.e. `./data/dlq.jsonl`).
    pub dlq_path: PathBuf,
    /// `EVENTS_INCLUDE_RAW_TEXT` (default false).
    pub include_raw_text: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            webhook_url: None,
            webhook_secret: DEFAULT_WEBHOOK_SECRET.to_owned(),
            timeout: Duration::from_millis(2_500),
            dispatcher: DispatcherConfig {
                queue_capacity: DEFAULT_QUEUE_CAPACITY,
                concurrency: DEFAULT_CONCURRENCY,
                retry: RetryPolicy {
                    max_retries: DEFAULT_MAX_RETRIES,
                    backoff_base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
                    ..RetryPolicy::default()
                },
            },
            dlq_path: PathBuf::from("./data").join(DEFAULT_DLQ_FILE),
            include_raw_text: false,
        }
    }
}

impl fmt::Debug for EventsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventsConfig")
            .field("webhook_url", &self.webhook_url.as_deref().map(redact_url))
            .field("webhook_secret", &"***")
            .field("timeout", &self.timeout)
            .field("dispatcher", &self.dispatcher)
            .field("dlq_path", &self.dlq_path)
            .field("include_raw_text", &self.include_raw_text)
            .finish()
    }
}

impl EventsConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<EventsConfig, ConfigError> {
        EventsConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (variable name → value). Unset and empty values take
    /// the defaults; malformed values are errors naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<EventsConfig, ConfigError> {
        let get = |var: &str| lookup(var).filter(|value| !value.trim().is_empty());
        let defaults = EventsConfig::default();

        let webhook_url = match get("WEBHOOK_URL") {
            Some(url) => Some(checked_url(url.trim())?),
            None => None,
        };
        let timeout = match get("WEBHOOK_TIMEOUT_S") {
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|secs| *secs > 0.0)
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| invalid("WEBHOOK_TIMEOUT_S", "expected a positive number of seconds"))?,
            None => defaults.timeout,
        };
        let retry = RetryPolicy {
            max_retries: parsed(&get, "WEBHOOK_MAX_RETRIES", DEFAULT_MAX_RETRIES)?,
            backoff_base: Duration::from_millis(parsed(&get, "WEBHOOK_BACKOFF_BASE_MS", DEFAULT_BACKOFF_BASE_MS)?),
            ..defaults.dispatcher.retry
        };
        let dispatcher = DispatcherConfig {
            queue_capacity: positive(&get, "WARDEN_EVENTS_QUEUE_CAPACITY", DEFAULT_QUEUE_CAPACITY)?,
            concurrency: positive(&get, "WARDEN_EVENTS_CONCURRENCY", DEFAULT_CONCURRENCY)?,
            retry,
        };
        let dlq_path = match get("PRECHECK_DLQ") {
            Some(path) => PathBuf::from(path),
            None => {
                get("WARDEN_DATA_DIR").map_or_else(|| PathBuf::from("./data"), PathBuf::from).join(DEFAULT_DLQ_FILE)
            }
        };
        let include_raw_text = match get("EVENTS_INCLUDE_RAW_TEXT") {
            Some(text) => {
                parse_bool(&text).ok_or_else(|| invalid("EVENTS_INCLUDE_RAW_TEXT", "expected true or false"))?
            }
            None => false,
        };
        Ok(EventsConfig {
            webhook_url,
            webhook_secret: get("WEBHOOK_SECRET").unwrap_or(defaults.webhook_secret),
            timeout,
            dispatcher,
            dlq_path,
            include_raw_text,
        })
    }

    /// True while `WEBHOOK_SECRET` is the well-known default: readiness should warn.
    pub fn uses_default_secret(&self) -> bool {
        self.webhook_secret == DEFAULT_WEBHOOK_SECRET
    }

    /// Event builder options: raw-text inclusion, plus the org and decisions channel of a
    /// gateway URL, used when a record carries no org id.
    pub fn event_options(&self) -> EventOptions {
        let gateway = self.webhook_url.as_deref().filter(|url| is_websocket(url)).map(GatewayUrl::parse);
        EventOptions {
            include_raw_text: self.include_raw_text,
            org_id: gateway.as_ref().and_then(|g| g.org().map(str::to_owned)),
            channel: gateway.as_ref().and_then(|g| g.decisions_channel().map(str::to_owned)),
        }
    }

    /// The sink for `WEBHOOK_URL`: a [`WebSocketSink`] for `ws(s)://`, else a signed
    /// [`WebhookSink`]; `None` when no URL is set.
    pub fn sink(&self) -> io::Result<Option<Arc<dyn EventSink>>> {
        let Some(url) = self.webhook_url.as_deref() else {
            return Ok(None);
        };
        let sink: Arc<dyn EventSink> = if is_websocket(url) {
            Arc::new(WebSocketSink::new(url, self.timeout))
        } else {
            Arc::new(WebhookSink::new(url, self.webhook_secret.as_bytes(), self.timeout).map_err(io::Error::other)?)
        };
        Ok(Some(sink))
    }

    /// The DLQ at `dlq_path`, updating `stats`.
    pub fn dead_letter_queue(&self, stats: DeliveryStats) -> Arc<DeadLetterQueue> {
        Arc::new(DeadLetterQueue::new(self.dlq_path.clone(), stats))
    }

    /// Starts a [`Dispatcher`] for `WEBHOOK_URL` on the current tokio runtime, counting into
    /// `stats` (pass `Metrics::delivery_stats()` to export them); `None` when events are off.
    pub fn start(&self, stats: DeliveryStats) -> io::Result<Option<Dispatcher>> {
        let Some(sink) = self.sink()? else {
            return Ok(None);
        };
        let dlq = self.dead_letter_queue(stats);
        Dispatcher::start(sink, dlq, self.dispatcher.clone()).map(Some)
    }
}

fn invalid(var: &'static str, message: &str) -> ConfigError {
    ConfigError { var, message: message.to_owned() }
}

fn parsed<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(var) {
        Some(text) => text.trim().parse().map_err(|_| invalid(var, "expected a non-negative integer")),
        None => Ok(default),
    }
}

fn positive(get: &impl Fn(&str) -> Option<String>, var: &'static str, default: usize) -> Result<usize, ConfigError> {
    match parsed(get, var, default)? {
        0 => Err(invalid(var, "must be at least 1")),
        value => Ok(value),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn scheme(url: &str) -> String {
    url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase()).unwrap_or_default()
}

fn is_websocket(url: &str) -> bool {
    matches!(scheme(url).as_str(), "ws" | "wss")
}

fn checked_url(url: &str) -> Result<String, ConfigError> {
    match scheme(url).as_str() {
        "http" | "https" | "ws" | "wss" => Ok(url.to_owned()),
        _ => Err(invalid("WEBHOOK_URL", "expected an http://, https://, ws:// or wss:// URL")),
    }
}
