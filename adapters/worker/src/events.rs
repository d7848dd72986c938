//! Decision events and audit lines on Workers: the core's [`Outbox`](warden_service::events::Outbox)
//! with a `fetch` sink, a KV dead-letter namespace and `setTimeout` sleeps. The fetch handler
//! flushes the outbox inside `ctx.wait_until`, after the response: delivery never delays it.
//!
//! Workers run one thread per isolate and JavaScript futures are not `Send`; the core's traits
//! want `Send` futures, so they are wrapped in workers-rs' documented `SendFuture`.

use core::time::Duration;
use warden_service::budget::StoreError;
use warden_service::events::{
    sign, BoxFuture, DeadLetter, EventSink, SendError, Timer, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use warden_service::record::DecisionRecord;
use warden_service::service::Observer;
use worker::send::SendFuture;

/// One audit line per decision on the Worker's log (`console.log`: Workers Logs and
/// `wrangler tail` collect it), identifiers scrubbed and the input hashed with `scrubber`.
#[derive(Debug, Default)]
pub struct ConsoleAudit {
    /// Scrubs identifiers and keys the payload hash (`EventsConfig::scrubber()`).
    pub scrubber: warden_service::events::Scrubber,
}

impl Observer for ConsoleAudit {
    fn observe(&self, record: &DecisionRecord) {
        worker::console_log!("{}", warden_service::audit::audit_line(record, &self.scrubber));
    }

    fn error(&self, code: &str, message: &str) {
        worker::console_error!("{}", serde_json::json!({"level": "error", "code": code, "msg": message}));
    }
}

/// `setTimeout` sleeps and `Math.random` jitter.
#[derive(Debug, Default)]
pub struct JsTimer;

impl Timer for JsTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        Box::pin(SendFuture::new(worker::Delay::from(d)))
    }

    fn unit_random(&self) -> f64 {
        js_sys::Math::random()
    }
}

/// POSTs signed events with `fetch`, giving up on an attempt after `timeout`.
pub struct FetchSink {
    url: String,
    secret: Vec<u8>,
    timeout: Duration,
}

impl core::fmt::Debug for FetchSink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FetchSink").finish_non_exhaustive()
    }
}

impl FetchSink {
    /// A sink for `url`, signing with `secret`.
    pub fn new(url: String, secret: &str, timeout: Duration) -> FetchSink {
        FetchSink { url, secret: secret.as_bytes().to_vec(), timeout }
    }

    async fn attempt(&self, body: &str) -> Result<(), SendError> {
        let ts = u64::try_from(js_sys::Date::now() as i64 / 1000).unwrap_or(0);
        let signature = sign(&self.secret, ts, body.as_bytes());
        let request = (|| {
            let headers = worker::Headers::new();
            headers.set("content-type", "application/json")?;
            headers.set(TIMESTAMP_HEADER, &ts.to_string())?;
            headers.set(SIGNATURE_HEADER, &signature)?;
            let mut init = worker::RequestInit::new();
            init.with_method(worker::Method::Post)
                .with_headers(headers)
                .with_body(Some(wasm_bindgen::JsValue::from_str(body)));
            worker::Request::new_with_init(&self.url, &init)
        })()
        .map_err(|e| SendError::Other(format!("cannot build the webhook request: {e}")))?;
        let controller = worker::AbortController::default();
        let signal = controller.signal();
        let fetch = worker::Fetch::Request(request);
        let send = std::pin::pin!(fetch.send_with_signal(&signal));
        let timeout = std::pin::pin!(worker::Delay::from(self.timeout));
        match futures_util::future::select(send, timeout).await {
            futures_util::future::Either::Left((Ok(resp), _)) => match resp.status_code() {
                200..=299 => Ok(()),
                s => Err(SendError::Status(s)),
            },
            futures_util::future::Either::Left((Err(e), _)) => Err(SendError::Connect(e.to_string())),
            futures_util::future::Either::Right(((), _)) => {
                controller.abort();
                Err(SendError::Timeout)
            }
        }
    }
}

#[async_trait::async_trait]
impl EventSink for FetchSink {
    async fn send(&self, event_json: &str) -> Result<(), SendError> {
        SendFuture::new(self.attempt(event_json)).await
    }
}

/// Undeliverable events in a KV namespace, key `dlq:<unix ms>:<random>`.
pub struct KvDeadLetter(pub worker::send::SendWrapper<worker::kv::KvStore>);

impl core::fmt::Debug for KvDeadLetter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KvDeadLetter")
    }
}

#[async_trait::async_trait]
impl DeadLetter for KvDeadLetter {
    async fn put(&self, event_json: &str, error: &str, attempts: u32) -> Result<(), StoreError> {
        let now = js_sys::Date::now() as i64;
        let line = warden_service::events::dlq_line(event_json, error, attempts, now);
        let key = format!("dlq:{now}:{:08x}", (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
        let put = self.0 .0.put(&key, line.as_str()).map_err(|e| StoreError::new("kv", e.to_string()))?;
        SendFuture::new(put.execute()).await.map_err(|e| StoreError::new("kv", e.to_string()))?;
        worker::console_error!(
            "{}",
            serde_json::json!({"level": "error", "msg": "event dead-lettered", "key": key, "error": error})
        );
        Ok(())
    }
}
