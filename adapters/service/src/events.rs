//! Decision events (SPEC §7): the `decision.v1` event JSON, its HMAC signature, and (with the
//! `native` feature) delivery to an HTTP webhook or a WebSocket gateway with retries, a bounded
//! background queue and a file dead-letter queue (DLQ).
//!
//! The event builder ([`EventBuilder`]), the signature ([`sign`], [`verify`]) and the
//! gateway URL parser ([`GatewayUrl`]) compile without `native`, so the wasm worker can
//! reuse them and send with its own `fetch`.
//!
//! Native wiring, in short:
//!
//! ```no_run
//! # #[cfg(feature = "native")]
//! # async fn wire(record: warden_service::record::DecisionRecord) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use warden_service::events::{DeliveryStats, EventBuilder, EventPublisher, EventsConfig};
//!
//! let config = EventsConfig::from_env()?;
//! // `None` when WEBHOOK_URL is unset: events are off.
//! if let Some(dispatcher) = config.start(DeliveryStats::default())? {
//!     let publisher = EventPublisher::new(EventBuilder::new(config.event_options()), Arc::new(dispatcher));
//!     // Register `publisher` as a service observer and readiness probe; per decision it
//!     // queues one event and never waits for delivery. On SIGTERM:
//!     publisher.dispatcher().shutdown(Duration::from_secs(5)).await;
//! }
//! # Ok(())
//! # }
//! ```

mod config;
mod delivery;
mod event;
mod gateway;
mod privacy;
mod signing;

#[cfg(feature = "native")]
mod dispatch;
#[cfg(feature = "native")]
mod dlq;
#[cfg(feature = "native")]
mod publish;
#[cfg(feature = "native")]
mod sink;
#[cfg(feature = "native")]
mod webhook;
#[cfg(feature = "native")]
mod ws;

pub use event::{
    idempotency_key, iso8601_utc_ms, payload_hash, EventBuilder, EventOptions, DECISION_SCHEMA, DEFAULT_ORG_ID,
    DETECTOR_CONFIDENCE,
};
pub use gateway::{redact_url, GatewayUrl};
pub use privacy::{HashKey, Scrubber, PAYLOAD_HASH_PREFIX};
pub use signing::{sign, verify, VerifyError, DEFAULT_TOLERANCE_SECS, SIGNATURE_HEADER, TIMESTAMP_HEADER};

pub use config::{
    EventsConfig, DEFAULT_BACKOFF_BASE_MS, DEFAULT_CONCURRENCY, DEFAULT_DLQ_FILE, DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_CAPACITY, DEFAULT_TIMEOUT_S, DEFAULT_WEBHOOK_SECRET,
};
pub use delivery::{
    deliver, dlq_line, BoxFuture, DeadLetter, DeliveryOutcome, DispatcherConfig, EventSink, FlushReport, Outbox,
    RetryPolicy, SendError, Timer,
};

#[cfg(feature = "native")]
pub use dispatch::{deliver_with_retries, DeliveryStats, Dispatcher, DispatcherSnapshot, Enqueued, TokioTimer};
#[cfg(feature = "native")]
pub use dlq::{dlq_status, replay, DeadLetterQueue, DlqStatus, ReplayReport, DEFAULT_DLQ_PENDING_BYTES};
#[cfg(feature = "native")]
pub use publish::EventPublisher;
#[cfg(feature = "native")]
pub use webhook::WebhookSink;
#[cfg(feature = "native")]
pub use ws::WebSocketSink;
