//! Event delivery settings from the environment (SPEC §9).

use super::delivery::{DispatcherConfig, RetryPolicy};
use super::event::EventOptions;
use super::gateway::{redact_url, GatewayUrl};
use super::privacy::{HashKey, Scrubber};
use crate::settings::{ConfigError, Vars};
use core::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `WEBHOOK_TIMEOUT_S` default, seconds.
pub const DEFAULT_TIMEOUT_S: f64 = 2.5;
/// `WEBHOOK_MAX_RETRIES` default.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// `WEBHOOK_BACKOFF_BASE_MS` default.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 150;
/// `WARDEN_EVENTS_QUEUE_CAPACITY` default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// `WARDEN_EVENTS_QUEUE_BYTES` default: 64 MiB of event JSON waiting for delivery.
pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// `WARDEN_EVENTS_CONCURRENCY` default.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// DLQ file name inside `WARDEN_DATA_DIR` (default `./data`) when `PRECHECK_DLQ` is unset.
/// GovernsAI's default was `/tmp/precheck.dlq.jsonl`; `/tmp` is often cleared on reboot,
/// which would break "durably, never lost", so Warden keeps it with its other data.
pub const DEFAULT_DLQ_FILE: &str = "dlq.jsonl";
/// `WEBHOOK_SECRET` default, as in GovernsAI; readiness should warn while it is in use.
pub const DEFAULT_WEBHOOK_SECRET: &str = "dev-secret";

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
    /// `WARDEN_EVENTS_QUEUE_CAPACITY`, `WARDEN_EVENTS_QUEUE_BYTES`, `WARDEN_EVENTS_CONCURRENCY`).
    pub dispatcher: DispatcherConfig,
    /// `PRECHECK_DLQ` (default `$WARDEN_DATA_DIR/dlq.jsonl`, i.e. `./data/dlq.jsonl`).
    pub dlq_path: PathBuf,
    /// `EVENTS_INCLUDE_RAW_TEXT` (default false).
    pub include_raw_text: bool,
    /// Key of payload hashes and idempotency keys in events and audit lines, derived from
    /// `PII_TOKEN_SALT` (the default salt when unset: development only).
    pub hash_key: HashKey,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            webhook_url: None,
            webhook_secret: DEFAULT_WEBHOOK_SECRET.to_owned(),
            timeout: Duration::from_millis(2_500),
            dispatcher: DispatcherConfig {
                queue_capacity: DEFAULT_QUEUE_CAPACITY,
                queue_bytes: DEFAULT_QUEUE_BYTES,
                concurrency: DEFAULT_CONCURRENCY,
                retry: RetryPolicy {
                    max_retries: DEFAULT_MAX_RETRIES,
                    backoff_base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
                    ..RetryPolicy::default()
                },
            },
            dlq_path: PathBuf::from("./data").join(DEFAULT_DLQ_FILE),
            include_raw_text: false,
            hash_key: HashKey::default(),
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
            .field("hash_key", &self.hash_key)
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
        EventsConfig::from_vars(&Vars::new(&lookup))
    }

    /// Reads the event settings of [`Settings`](crate::settings::Settings).
    pub fn from_vars(vars: &Vars<'_>) -> Result<EventsConfig, ConfigError> {
        let defaults = EventsConfig::default();
        let webhook_url = match vars.get("WEBHOOK_URL") {
            Some(url) => Some(checked_url(&url)?),
            None => None,
        };
        let timeout = match vars.get("WEBHOOK_TIMEOUT_S") {
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|secs| *secs > 0.0)
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| ConfigError::new("WEBHOOK_TIMEOUT_S", "expected a positive number of seconds"))?,
            None => defaults.timeout,
        };
        let retry = RetryPolicy {
            max_retries: vars.parse("WEBHOOK_MAX_RETRIES", DEFAULT_MAX_RETRIES, "a non-negative integer")?,
            backoff_base: Duration::from_millis(vars.parse(
                "WEBHOOK_BACKOFF_BASE_MS",
                DEFAULT_BACKOFF_BASE_MS,
                "a non-negative integer",
            )?),
            ..defaults.dispatcher.retry
        };
        let dispatcher = DispatcherConfig {
            queue_capacity: vars.positive("WARDEN_EVENTS_QUEUE_CAPACITY", DEFAULT_QUEUE_CAPACITY)?,
            queue_bytes: vars.positive("WARDEN_EVENTS_QUEUE_BYTES", DEFAULT_QUEUE_BYTES)?,
            concurrency: vars.positive("WARDEN_EVENTS_CONCURRENCY", DEFAULT_CONCURRENCY)?,
            retry,
        };
        let dlq_path = match vars.get("PRECHECK_DLQ") {
            Some(path) => PathBuf::from(path),
            None => vars
                .get("WARDEN_DATA_DIR")
                .map_or_else(|| PathBuf::from("./data"), PathBuf::from)
                .join(DEFAULT_DLQ_FILE),
        };
        Ok(EventsConfig {
            webhook_url,
            webhook_secret: vars.get("WEBHOOK_SECRET").unwrap_or(defaults.webhook_secret),
            timeout,
            dispatcher,
            dlq_path,
            include_raw_text: vars.flag("EVENTS_INCLUDE_RAW_TEXT", false)?,
            hash_key: vars.get("PII_TOKEN_SALT").map_or_else(HashKey::default, |salt| HashKey::from_secret(&salt)),
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
            hash_key: self.hash_key.clone(),
        }
    }

    /// The scrubber audit lines use: the same hash key as events (build it once).
    pub fn scrubber(&self) -> Scrubber {
        Scrubber::new(self.hash_key.clone())
    }

    /// Whether `WEBHOOK_URL` is a WebSocket gateway.
    pub fn is_websocket(&self) -> bool {
        self.webhook_url.as_deref().is_some_and(is_websocket)
    }
}

#[cfg(feature = "native")]
mod native {
    use super::super::dispatch::{DeliveryStats, Dispatcher};
    use super::super::dlq::DeadLetterQueue;
    use super::super::sink::EventSink;
    use super::super::webhook::WebhookSink;
    use super::super::ws::WebSocketSink;
    use super::{is_websocket, EventsConfig};
    use std::io;
    use std::sync::Arc;

    impl EventsConfig {
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

        /// The DLQ at `dlq_path`, updating `stats` (starts its writer thread).
        pub fn dead_letter_queue(&self, stats: DeliveryStats) -> io::Result<Arc<DeadLetterQueue>> {
            DeadLetterQueue::new(self.dlq_path.clone(), stats).map(Arc::new)
        }

        /// Starts a [`Dispatcher`] for `WEBHOOK_URL` on the current tokio runtime, counting into
        /// `stats` (pass `Metrics::delivery_stats()` to export them); `None` when events are off.
        pub fn start(&self, stats: DeliveryStats) -> io::Result<Option<Dispatcher>> {
            let Some(sink) = self.sink()? else {
                return Ok(None);
            };
            let dlq = self.dead_letter_queue(stats)?;
            Dispatcher::start(sink, dlq, self.dispatcher.clone()).map(Some)
        }
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
        _ => Err(ConfigError::new("WEBHOOK_URL", "expected an http://, https://, ws:// or wss:// URL")),
    }
}
