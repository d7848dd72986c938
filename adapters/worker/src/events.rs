//! Decision events and audit lines on Workers.
//!
//! The service's observers are synchronous and `Send`; JavaScript futures are neither. So the
//! observer only collects records into a `Send` queue, and after the response has been built
//! the fetch handler drains the queue and hands delivery to `ctx.wait_until`: the webhook POST
//! (signed, with retries and backoff) never delays the response. Requests of one isolate
//! interleave, so a drain may also pick up another request's records; every record is still
//! sent exactly once, by whichever request drains it first.

use crate::settings::EventSettings;
use std::sync::{Mutex, PoisonError};
use warden_service::audit::audit_line;
use warden_service::events::{sign, EventBuilder, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use warden_service::record::DecisionRecord;
use warden_service::service::Observer;

/// Collects decision records for delivery after the response, and writes audit lines.
#[derive(Debug, Default)]
pub struct Collector {
    queue: Mutex<Vec<DecisionRecord>>,
    collect: bool,
    audit: bool,
}

impl Collector {
    /// Collects records when `events` is on; logs an audit line per record when `audit` is on.
    pub fn new(events: bool, audit: bool) -> Collector {
        Collector { queue: Mutex::new(Vec::new()), collect: events, audit }
    }

    /// Takes every collected record.
    pub fn drain(&self) -> Vec<DecisionRecord> {
        // Records are whole values pushed in one step: a poisoned lock still holds valid data.
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Observer for Collector {
    fn observe(&self, record: &DecisionRecord) {
        if self.audit {
            // `console.log` is the Worker's stdout: Workers Logs / `wrangler tail` collect it.
            worker::console_log!("{}", audit_line(record));
        }
        if self.collect {
            self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(record.clone());
        }
    }

    fn error(&self, code: &str, message: &str) {
        worker::console_error!("{}", serde_json::json!({"level": "error", "code": code, "msg": message}));
    }
}

/// How one delivery attempt failed.
#[derive(Debug)]
enum Failure {
    /// Worth retrying: network error, timeout, 429 or 5xx.
    Transient(String),
    /// Not worth retrying: any other non-2xx status.
    Permanent(String),
}

/// Webhook delivery: settings plus the event builder (detector built once per isolate).
pub struct Delivery {
    settings: EventSettings,
    builder: EventBuilder,
}

impl core::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Delivery").finish_non_exhaustive()
    }
}

impl Delivery {
    /// Delivery with `settings`; `org_id` is the event's organisation when records carry none.
    pub fn new(settings: EventSettings, org_id: Option<String>) -> Delivery {
        let options =
            warden_service::events::EventOptions { include_raw_text: settings.include_raw_text, org_id, channel: None };
        Delivery { settings, builder: EventBuilder::new(options) }
    }

    /// Sends every record (concurrently); each undeliverable one goes to the dead-letter KV
    /// namespace `dlq` when bound, else to the error log, so no event is silently lost.
    pub async fn deliver(&self, records: Vec<DecisionRecord>, dlq: Option<worker::kv::KvStore>) {
        let sends = records.iter().map(|r| self.deliver_one(r, dlq.as_ref()));
        futures_util::future::join_all(sends).await;
    }

    async fn deliver_one(&self, record: &DecisionRecord, dlq: Option<&worker::kv::KvStore>) {
        let body = self.builder.json(record);
        let mut attempts = 0u32;
        let error = loop {
            attempts += 1;
            match self.send(&body).await {
                Ok(()) => return,
                Err(Failure::Permanent(e)) => break e,
                Err(Failure::Transient(e)) if attempts > self.settings.max_retries => break e,
                Err(Failure::Transient(_)) => {
                    // Exponential backoff: base, 2×base, 4×base...
                    let factor = 1u32.checked_shl(attempts - 1).unwrap_or(u32::MAX);
                    worker::Delay::from(self.settings.backoff_base.saturating_mul(factor)).await;
                }
            }
        };
        dead_letter(&body, record, &error, attempts, dlq).await;
    }

    async fn send(&self, body: &str) -> Result<(), Failure> {
        let ts = u64::try_from(crate::now_ms().div_euclid(1000)).unwrap_or(0);
        let signature = sign(self.settings.secret.as_bytes(), ts, body.as_bytes());
        let request = (|| {
            let headers = worker::Headers::new();
            headers.set("content-type", "application/json")?;
            headers.set(TIMESTAMP_HEADER, &ts.to_string())?;
            headers.set(SIGNATURE_HEADER, &signature)?;
            let mut init = worker::RequestInit::new();
            init.with_method(worker::Method::Post)
                .with_headers(headers)
                .with_body(Some(wasm_bindgen::JsValue::from_str(body)));
            worker::Request::new_with_init(&self.settings.url, &init)
        })()
        .map_err(|e| Failure::Permanent(format!("cannot build the webhook request: {e}")))?;
        let controller = worker::AbortController::default();
        let signal = controller.signal();
        let fetch = worker::Fetch::Request(request);
        let send = std::pin::pin!(fetch.send_with_signal(&signal));
        let timeout = std::pin::pin!(worker::Delay::from(self.settings.timeout));
        match futures_util::future::select(send, timeout).await {
            futures_util::future::Either::Left((Ok(resp), _)) => match resp.status_code() {
                200..=299 => Ok(()),
                s @ (429 | 500..=599) => Err(Failure::Transient(format!("webhook answered {s}"))),
                s => Err(Failure::Permanent(format!("webhook answered {s}"))),
            },
            futures_util::future::Either::Left((Err(e), _)) => {
                Err(Failure::Transient(format!("webhook unreachable: {e}")))
            }
            futures_util::future::Either::Right(((), _)) => {
                controller.abort();
                Err(Failure::Transient(format!("webhook timed out after {:?}", self.settings.timeout)))
            }
        }
    }
}

/// Keeps an undeliverable event: in the DLQ namespace (key `dlq:<unix ms>:<idempotency key>`)
/// when bound, and always on the error log.
async fn dead_letter(
    body: &str,
    record: &DecisionRecord,
    error: &str,
    attempts: u32,
    dlq: Option<&worker::kv::KvStore>,
) {
    let now = crate::now_ms();
    let entry = serde_json::json!({
        "failedAt": warden_service::events::iso8601_utc_ms(now),
        "attempts": attempts,
        "error": error,
        "event": serde_json::from_str::<serde_json::Value>(body).unwrap_or(serde_json::Value::Null),
    })
    .to_string();
    let key = format!("dlq:{now}:{}", warden_service::events::idempotency_key(record));
    let stored = match dlq {
        Some(kv) => match kv.put(&key, entry.as_str()) {
            Ok(put) => put.execute().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        None => Err(String::from("no WARDEN_DLQ binding")),
    };
    match stored {
        Ok(()) => worker::console_error!(
            "{}",
            serde_json::json!({"level": "error", "msg": "event dead-lettered", "key": key, "error": error})
        ),
        // Last resort: the event itself on the error log, which Workers Logs keep.
        Err(why) => worker::console_error!(
            "{}",
            serde_json::json!({"level": "error", "msg": "event undeliverable", "dlq": why, "error": error, "dlq_line": entry})
        ),
    }
}
