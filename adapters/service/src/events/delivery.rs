//! Runtime-neutral delivery: one retry loop, one DLQ line format, and the [`Outbox`] that
//! serverless adapters flush before they return. Nothing here sleeps or draws random numbers
//! itself: a [`Timer`] from the runtime does (tokio natively, `setTimeout` on Workers).

use super::event::iso8601_utc_ms;
use super::EventBuilder;
use crate::budget::StoreError;
use crate::record::DecisionRecord;
use crate::service::Observer;
use async_trait::async_trait;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::time::Duration;
use serde::de::IgnoredAny;
use serde_json::Value;
use std::sync::{Mutex, PoisonError};

/// A boxed future that is `Send`, as the runtimes' sleeps are handed around.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why one delivery attempt failed. Messages never contain URLs, keys or secrets, so they
/// can be logged and written to the DLQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No answer within the configured timeout.
    Timeout,
    /// The connection could not be opened or broke.
    Connect(String),
    /// The receiver answered with a non-2xx status.
    Status(u16),
    /// Anything else (TLS, protocol, invalid URL, ...).
    Other(String),
}

impl SendError {
    /// Whether another attempt may succeed: network errors, timeouts, 408, 429 and 5xx. Any
    /// other status is the receiver refusing this event; retrying would only delay the DLQ.
    pub fn retryable(&self) -> bool {
        match self {
            SendError::Timeout | SendError::Connect(_) | SendError::Other(_) => true,
            SendError::Status(s) => matches!(s, 408 | 429 | 500..=599),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Timeout => f.write_str("timeout"),
            SendError::Connect(message) => write!(f, "connect: {message}"),
            SendError::Status(code) => write!(f, "http status {code}"),
            SendError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SendError {}

/// A destination for decision events. One call is one attempt: retries, backoff and the DLQ
/// are [`deliver`]'s job.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Delivers one event (compact JSON). `Ok` only when the receiver accepted it.
    async fn send(&self, event_json: &str) -> Result<(), SendError>;
}

/// Where undeliverable events are kept: a file natively, a KV namespace on Workers, a queue
/// or bucket on serverless platforms.
#[async_trait]
pub trait DeadLetter: Send + Sync {
    /// Stores one event with why and after how many attempts it failed. On `Err` the caller
    /// logs the line itself, the last place left.
    async fn put(&self, event_json: &str, error: &str, attempts: u32) -> Result<(), StoreError>;
}

/// Sleeps and jitter, supplied by the runtime.
pub trait Timer: Send + Sync {
    /// A future that completes after `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<()>;
    /// A uniformly distributed number in `[0, 1)`, for backoff jitter.
    fn unit_random(&self) -> f64;
}

/// Exponential backoff with jitter: retry `n` (0-based) waits `base * 2^n`, capped at
/// `max_backoff`, scaled by a random factor in `[1 - jitter, 1 + jitter]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`WEBHOOK_MAX_RETRIES`, default 3).
    pub max_retries: u32,
    /// Wait before the first retry (`WEBHOOK_BACKOFF_BASE_MS`, default 150 ms).
    pub backoff_base: Duration,
    /// Relative jitter, 0.2 = ±20 %; spreads retries from many instances apart.
    pub jitter: f64,
    /// Upper bound of one wait, before jitter.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff_base: Duration::from_millis(150),
            jitter: 0.2,
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `retry` (0 = the wait after the first attempt), with `unit`
    /// a random number in `[0, 1)` choosing where in the jitter band it falls.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
        let nominal = self.backoff_base.saturating_mul(factor).min(self.max_backoff);
        if !(self.jitter.is_finite() && self.jitter > 0.0 && unit.is_finite()) {
            return nominal;
        }
        let jitter = self.jitter.min(1.0);
        let scale = 1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0);
        Duration::try_from_secs_f64(nominal.as_secs_f64() * scale).unwrap_or(nominal)
    }
}

/// Queue and worker settings of the native dispatcher.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatcherConfig {
    /// Events waiting for delivery before new ones go straight to the DLQ
    /// (`WARDEN_EVENTS_QUEUE_CAPACITY`, default 10 000; at least 1).
    pub queue_capacity: usize,
    /// Bytes of event JSON waiting for delivery before new events go straight to the DLQ
    /// (`WARDEN_EVENTS_QUEUE_BYTES`, default 64 MiB); one event is always accepted.
    pub queue_bytes: usize,
    /// Deliveries in flight at once (`WARDEN_EVENTS_CONCURRENCY`, default 32; at least 1).
    pub concurrency: usize,
    /// Retries per event.
    pub retry: RetryPolicy,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            queue_capacity: 10_000,
            queue_bytes: 64 * 1024 * 1024,
            concurrency: 32,
            retry: RetryPolicy::default(),
        }
    }
}

/// The result of [`deliver`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The sink accepted the event.
    Delivered {
        /// Attempts made, including the successful one.
        attempts: u32,
    },
    /// The event could not be delivered: retries exhausted, or a non-retryable answer.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        error: SendError,
    },
}

/// Sends `event_json` to `sink`, retrying retryable failures per `policy` with `timer`'s
/// sleeps; `attempts` is called before each attempt (so an interrupted delivery still knows
/// how often it was tried). Does not touch the DLQ.
pub async fn deliver(
    sink: &dyn EventSink,
    event_json: &str,
    policy: &RetryPolicy,
    timer: &dyn Timer,
    mut on_attempt: impl FnMut() + Send,
) -> DeliveryOutcome {
    let mut attempts = 0u32;
    loop {
        attempts = attempts.saturating_add(1);
        on_attempt();
        match sink.send(event_json).await {
            Ok(()) => return DeliveryOutcome::Delivered { attempts },
            Err(error) if !error.retryable() || attempts > policy.max_retries => {
                return DeliveryOutcome::Failed { attempts, error };
            }
            Err(_) => timer.sleep(policy.backoff(attempts - 1, timer.unit_random())).await,
        }
    }
}

/// One DLQ line (without the trailing newline):
/// `{"event":<event>,"error":"...","failedAt":"<ISO>","attempts":N}`. A valid one-line JSON
/// `event_json` is embedded as is, so replay re-sends the exact bytes; pretty-printed JSON is
/// compacted, and anything that is not JSON is stored as a JSON string.
pub fn dlq_line(event_json: &str, error: &str, attempts: u32, failed_at_unix_ms: i64) -> String {
    let single_line = !event_json.contains(['\n', '\r']);
    let event = if single_line && serde_json::from_str::<IgnoredAny>(event_json).is_ok() {
        event_json.to_owned()
    } else {
        match serde_json::from_str::<Value>(event_json) {
            Ok(value) => value.to_string(),
            Err(_) => Value::String(event_json.to_owned()).to_string(),
        }
    };
    format!(
        "{{\"event\":{event},\"error\":{},\"failedAt\":{},\"attempts\":{attempts}}}",
        Value::String(error.to_owned()),
        Value::String(iso8601_utc_ms(failed_at_unix_ms)),
    )
}

/// What one [`Outbox::flush`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Events the sink accepted.
    pub delivered: usize,
    /// Events stored in the dead-letter destination.
    pub dead_lettered: usize,
    /// Events that could not even be dead-lettered (their DLQ line went to the error log).
    pub logged: usize,
}

/// Collects the decision events of one invocation and delivers them before the invocation
/// returns: the event path of runtimes that may freeze or end the process as soon as a
/// response is sent (Lambda, Cloud Functions, Azure, Workers' `wait_until`). Register it as
/// an [`Observer`]; call [`flush`](Self::flush) with the time left.
pub struct Outbox {
    builder: EventBuilder,
    sink: Box<dyn EventSink>,
    dead_letter: Option<Box<dyn DeadLetter>>,
    timer: Box<dyn Timer>,
    retry: RetryPolicy,
    pending: Mutex<Vec<String>>,
    capacity: usize,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox").field("pending", &self.pending_len()).finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox building events with `builder`, sending them to `sink` with `retry`, keeping
    /// what cannot be sent in `dead_letter`; at most `capacity` events wait between flushes
    /// (more are dead-lettered at the next flush without an attempt).
    pub fn new(
        builder: EventBuilder,
        sink: Box<dyn EventSink>,
        dead_letter: Option<Box<dyn DeadLetter>>,
        timer: Box<dyn Timer>,
        retry: RetryPolicy,
        capacity: usize,
    ) -> Outbox {
        Outbox { builder, sink, dead_letter, timer, retry, pending: Mutex::new(Vec::new()), capacity: capacity.max(1) }
    }

    /// Events waiting for the next flush.
    pub fn pending_len(&self) -> usize {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Delivers every pending event, concurrently, within `deadline`; each event not
    /// delivered by then (or refused) is dead-lettered, so none is lost silently. `now_ms`
    /// stamps the DLQ lines.
    pub async fn flush(&self, deadline: Duration, now_ms: i64) -> FlushReport {
        let events = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        let mut report = FlushReport::default();
        if events.is_empty() {
            return report;
        }
        let (send, overflow) = events.split_at(events.len().min(self.capacity));
        let attempts: Vec<std::sync::atomic::AtomicU32> =
            send.iter().map(|_| std::sync::atomic::AtomicU32::new(0)).collect();
        let outcomes: Mutex<Vec<Option<DeliveryOutcome>>> = Mutex::new(vec![None; send.len()]);
        let all = futures_util::future::join_all(send.iter().zip(&attempts).enumerate().map(|(i, (event, count))| {
            let outcomes = &outcomes;
            async move {
                let outcome = deliver(self.sink.as_ref(), event, &self.retry, self.timer.as_ref(), || {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .await;
                if let Some(slot) = outcomes.lock().unwrap_or_else(PoisonError::into_inner).get_mut(i) {
                    *slot = Some(outcome);
                }
            }
        }));
        let timeout = self.timer.sleep(deadline);
        futures_util::future::select(Box::pin(all), timeout).await;
        let outcomes = outcomes.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut failed: Vec<(&str, String, u32)> = Vec::new();
        for ((event, outcome), count) in send.iter().zip(outcomes).zip(&attempts) {
            match outcome {
                Some(DeliveryOutcome::Delivered { .. }) => report.delivered += 1,
                Some(DeliveryOutcome::Failed { attempts, error }) => failed.push((event, error.to_string(), attempts)),
                None => failed.push((
                    event,
                    String::from("deadline: delivery interrupted"),
                    count.load(std::sync::atomic::Ordering::Relaxed),
                )),
            }
        }
        failed.extend(overflow.iter().map(|e| (e.as_str(), String::from("queue_full"), 0)));
        for (event, error, attempts) in failed {
            let stored = match &self.dead_letter {
                Some(dlq) => dlq.put(event, &error, attempts).await.map_err(|e| e.to_string()),
                None => Err(String::from("no dead-letter destination configured")),
            };
            match stored {
                Ok(()) => report.dead_lettered += 1,
                Err(why) => {
                    report.logged += 1;
                    // Last resort: the DLQ line on the error log, which every platform keeps.
                    eprintln!(
                        "{}",
                        serde_json::json!({"level": "error", "msg": "event undeliverable", "dlq": why,
                            "dlq_line": dlq_line(event, &error, attempts, now_ms)})
                    );
                }
            }
        }
        report
    }
}

impl Observer for Outbox {
    fn observe(&self, record: &DecisionRecord) {
        let event = self.builder.json(record);
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// A timer whose sleeps complete at once (or never, for the flush deadline when asked).
    struct InstantTimer {
        hang_over: Duration,
    }

    impl Timer for InstantTimer {
        fn sleep(&self, d: Duration) -> BoxFuture<()> {
            if d >= self.hang_over {
                Box::pin(futures_util::future::pending())
            } else {
                Box::pin(async {})
            }
        }

        fn unit_random(&self) -> f64 {
            0.5
        }
    }

    /// Answers each attempt from a script of statuses (`None` = accepted).
    struct ScriptedSink {
        script: Mutex<Vec<Option<SendError>>>,
        calls: AtomicU32,
    }

    #[async_trait]
    impl EventSink for ScriptedSink {
        async fn send(&self, _event: &str) -> Result<(), SendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut script = self.script.lock().unwrap();
            match if script.is_empty() { None } else { script.remove(0) } {
                None => Ok(()),
                Some(e) => Err(e),
            }
        }
    }

    fn sink(script: Vec<Option<SendError>>) -> ScriptedSink {
        ScriptedSink { script: Mutex::new(script), calls: AtomicU32::new(0) }
    }

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn retries_network_errors_408_429_and_5xx_but_not_other_4xx() {
        let timer = InstantTimer { hang_over: Duration::MAX };
        let policy = RetryPolicy { max_retries: 5, ..RetryPolicy::default() };
        for retryable in [
            SendError::Timeout,
            SendError::Connect("x".into()),
            SendError::Status(408),
            SendError::Status(429),
            SendError::Status(503),
        ] {
            let s = sink(vec![Some(retryable.clone()), None]);
            assert_eq!(
                run(deliver(&s, "{}", &policy, &timer, || {})),
                DeliveryOutcome::Delivered { attempts: 2 },
                "{retryable}"
            );
        }
        for refused in [400u16, 401, 404, 410, 422] {
            let s = sink(vec![Some(SendError::Status(refused)), None]);
            let out = run(deliver(&s, "{}", &policy, &timer, || {}));
            assert_eq!(out, DeliveryOutcome::Failed { attempts: 1, error: SendError::Status(refused) });
        }
        let s = sink(vec![Some(SendError::Timeout); 10]);
        let out = run(deliver(&s, "{}", &RetryPolicy { max_retries: 2, ..policy }, &timer, || {}));
        assert_eq!(out, DeliveryOutcome::Failed { attempts: 3, error: SendError::Timeout });
    }

    #[test]
    fn backoff_doubles_within_the_jitter_band() {
        let p = RetryPolicy { backoff_base: Duration::from_millis(100), jitter: 0.2, ..RetryPolicy::default() };
        assert_eq!(p.backoff(0, 0.5), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(400));
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(80));
        assert!(p.backoff(0, 0.999_999) <= Duration::from_millis(120));
        assert_eq!(p.backoff(40, 0.5), p.max_backoff);
    }

    #[derive(Default)]
    struct MemoryDlq(Arc<Mutex<Vec<(String, String, u32)>>>);

    #[async_trait]
    impl DeadLetter for MemoryDlq {
        async fn put(&self, event: &str, error: &str, attempts: u32) -> Result<(), StoreError> {
            self.0.lock().unwrap().push((event.to_owned(), error.to_owned(), attempts));
            Ok(())
        }
    }

    fn record() -> DecisionRecord {
        DecisionRecord::for_test()
    }

    #[test]
    fn outbox_delivers_and_dead_letters_what_is_refused() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let outbox = Outbox::new(
            EventBuilder::new(super::super::EventOptions::default()),
            Box::new(sink(vec![None, Some(SendError::Status(400))])),
            Some(Box::new(MemoryDlq(Arc::clone(&kept)))),
            Box::new(InstantTimer { hang_over: Duration::MAX }),
            RetryPolicy::default(),
            100,
        );
        outbox.observe(&record());
        outbox.observe(&record());
        assert_eq!(outbox.pending_len(), 2);
        let report = run(outbox.flush(Duration::from_secs(1), 0));
        assert_eq!(report, FlushReport { delivered: 1, dead_lettered: 1, logged: 0 });
        assert_eq!(outbox.pending_len(), 0);
        let kept = kept.lock().unwrap();
        assert_eq!((kept[0].1.as_str(), kept[0].2), ("http status 400", 1));
        assert!(kept[0].0.contains("decision.v1"));
    }

    #[test]
    fn outbox_dead_letters_what_the_deadline_interrupts() {
        struct Hanging;
        #[async_trait]
        impl EventSink for Hanging {
            async fn send(&self, _event: &str) -> Result<(), SendError> {
                futures_util::future::pending().await
            }
        }
        let kept = Arc::new(Mutex::new(Vec::new()));
        let outbox = Outbox::new(
            EventBuilder::new(super::super::EventOptions::default()),
            Box::new(Hanging),
            Some(Box::new(MemoryDlq(Arc::clone(&kept)))),
            // The deadline's sleep completes at once; every other sleep would hang.
            Box::new(InstantTimer { hang_over: Duration::from_millis(1) }),
            RetryPolicy::default(),
            100,
        );
        outbox.observe(&record());
        let report = run(outbox.flush(Duration::ZERO, 0));
        assert_eq!(report.dead_lettered, 1);
        assert_eq!(kept.lock().unwrap()[0].1, "deadline: delivery interrupted");
    }

    #[test]
    fn dlq_line_embeds_json_events_verbatim() {
        let line = dlq_line("{\"a\":1}", "boom", 4, 0);
        assert_eq!(
            line,
            "{\"event\":{\"a\":1},\"error\":\"boom\",\"failedAt\":\"1970-01-01T00:00:00.000Z\",\"attempts\":4}"
        );
        assert!(dlq_line("not json", "e", 0, 0).starts_with("{\"event\":\"not json\""));
    }
}
