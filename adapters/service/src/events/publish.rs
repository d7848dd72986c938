//! Plugging events into the [`Service`](crate::service::Service): an observer that enqueues
//! one event per decision, and the `dlq` readiness probe.

use super::dispatch::Dispatcher;
use super::event::EventBuilder;
use crate::record::DecisionRecord;
use crate::service::{Check, CheckStatus, Observer, Probe};
use async_trait::async_trait;
use std::sync::Arc;

/// Turns every decision into a `decision.v1` event and queues it on a [`Dispatcher`];
/// register it with `Service::with_observer` and `Service::with_probe`.
#[derive(Debug)]
pub struct EventPublisher {
    builder: EventBuilder,
    dispatcher: Arc<Dispatcher>,
}

impl EventPublisher {
    /// A publisher building events with `builder` and delivering through `dispatcher`.
    pub fn new(builder: EventBuilder, dispatcher: Arc<Dispatcher>) -> EventPublisher {
        EventPublisher { builder, dispatcher }
    }

    /// The dispatcher, e.g. for `shutdown` when the server stops.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }
}

impl Observer for EventPublisher {
    fn observe(&self, record: &DecisionRecord) {
        // On failure the DLQ has already printed the event to stderr; a decision must
        // never fail because its event could not be stored.
        let _ = self.dispatcher.enqueue(self.builder.json(record));
    }
}

#[async_trait]
impl Probe for EventPublisher {
    fn name(&self) -> &'static str {
        "dlq"
    }

    /// `error` when the DLQ cannot be written (or its last append failed), `warning` while
    /// it holds undelivered events (replay them with `warden dlq replay`), else `ok`. Cheap
    /// whatever the DLQ's size: a `stat`, the line count recorded in its lock file and an
    /// open for appending; the file itself is never read.
    async fn check(&self) -> Check {
        let dlq = Arc::clone(self.dispatcher.dlq());
        let shown = dlq.path().display().to_string();
        let status = match tokio::task::spawn_blocking(move || dlq.status()).await {
            Ok(status) => status,
            Err(error) => return Check::new(CheckStatus::Error, Some(format!("{shown}: {error}"))),
        };
        let snapshot = self.dispatcher.snapshot();
        let queue = format!("queue {}/{}", snapshot.queue_depth, snapshot.queue_capacity);
        if !status.writable {
            let error = status.error.unwrap_or_else(|| "not writable".to_owned());
            return Check::new(CheckStatus::Error, Some(format!("{error}; {queue}")));
        }
        if status.bytes > 0 {
            let held = match status.lines {
                Some(lines) => format!("{lines} undelivered event(s)"),
                None => format!("{} bytes of undelivered events", status.bytes),
            };
            return Check::new(
                CheckStatus::Warning,
                Some(format!("{shown}: {held}, replay with `warden dlq replay`; {queue}")),
            );
        }
        Check::new(CheckStatus::Ok, Some(format!("{shown}: empty; {queue}")))
    }
}
