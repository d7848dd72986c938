//! Retries with backoff, and the background [`Dispatcher`] that keeps delivery off the
//! request path.

use super::delivery::{deliver, DeliveryOutcome, DispatcherConfig, RetryPolicy, Timer};
use super::dlq::DeadLetterQueue;
use super::sink::EventSink;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::{self, JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;

/// Delivery counters, shared (cheap clones of atomics) between the dispatcher, the DLQ and
/// [`Metrics`](crate::metrics::Metrics), which exports them as `webhook_events_total` and
/// `dlq_size`. `Default` gives standalone counters.
#[derive(Clone, Debug, Default)]
pub struct DeliveryStats {
    /// Events the sink accepted.
    pub delivered: Counter,
    /// Events whose every attempt failed (each then goes to the DLQ).
    pub failed: Counter,
    /// Lines committed to the DLQ, for any reason (failed, `queue_full`, shutdown).
    pub dead_lettered: Counter,
    /// Lines in the DLQ file: its record after each commit, replay and readiness check.
    pub dlq_size: Gauge,
}

/// What [`Dispatcher::try_enqueue`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued for background delivery.
    Queued,
    /// The queue was full (or shut down): handed to the DLQ instead (on disk once
    /// [`try_enqueue`](Dispatcher::try_enqueue) returns; after the next group commit for
    /// [`enqueue`](Dispatcher::enqueue)).
    DeadLettered,
}

/// Counters and queue state, for metrics and readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatcherSnapshot {
    /// Events delivered.
    pub delivered: u64,
    /// Events that exhausted their retries.
    pub failed: u64,
    /// Lines appended to the DLQ.
    pub dead_lettered: u64,
    /// Lines in the DLQ file.
    pub dlq_size: i64,
    /// Events waiting in the queue (not counting deliveries in flight).
    pub queue_depth: usize,
    /// The queue's capacity.
    pub queue_capacity: usize,
    /// Bytes of event JSON waiting in the queue.
    pub queued_bytes: usize,
}

/// A queue bounded in events and bytes, with a background worker that delivers events with
/// limited concurrency, so enqueueing never waits for the network. An event that cannot be
/// delivered (retries exhausted, queue full, shutdown deadline) is handed to the DLQ's
/// group-committing writer: nothing is dropped silently, and a decision waits for the disk
/// only when both the queue and the DLQ's pending buffer are full.
#[derive(Debug)]
pub struct Dispatcher {
    queue: mpsc::Sender<String>,
    queued_bytes: Arc<AtomicUsize>,
    queue_bytes: usize,
    dlq: Arc<DeadLetterQueue>,
    shutdown: watch::Sender<Option<Instant>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Dispatcher {
    /// Starts the worker on the current tokio runtime; fails outside one.
    pub fn start(
        sink: Arc<dyn EventSink>,
        dlq: Arc<DeadLetterQueue>,
        config: DispatcherConfig,
    ) -> io::Result<Dispatcher> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let (shutdown, shutdown_rx) = watch::channel(None);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            queue: receiver,
            queued_bytes: Arc::clone(&queued_bytes),
            sink,
            dlq: Arc::clone(&dlq),
            retry: config.retry,
            concurrency: config.concurrency.max(1),
            shutdown: shutdown_rx,
        };
        let handle = runtime.spawn(worker.run());
        let queue_bytes = config.queue_bytes;
        Ok(Dispatcher { queue, queued_bytes, queue_bytes, dlq, shutdown, worker: Mutex::new(Some(handle)) })
    }

    /// Queues `event_json` without waiting for delivery. When the queue is full or shut
    /// down the event is appended to the DLQ instead (error `queue_full` / `shutdown`,
    /// 0 attempts) and this waits for that append's group commit, so on `DeadLettered` the
    /// line is on disk; an `Err` means even that failed, and the event was written to stderr.
    pub async fn try_enqueue(&self, event_json: String) -> io::Result<Enqueued> {
        let Some((event, reason)) = self.offer(event_json) else {
            return Ok(Enqueued::Queued);
        };
        self.dlq.append(&event, reason, 0).await?;
        Ok(Enqueued::DeadLettered)
    }

    /// Queues `event_json` for synchronous callers such as an
    /// [`Observer`](crate::service::Observer) on the request path. Never waits for delivery
    /// or for the disk: when the queue is full the event goes to the DLQ writer's pending
    /// buffer, to be written by its next group commit. Only when that buffer is full too does
    /// this wait, for the commit in progress, so memory stays bounded and nothing is lost.
    pub fn enqueue(&self, event_json: String) -> io::Result<Enqueued> {
        let Some((event, reason)) = self.offer(event_json) else {
            return Ok(Enqueued::Queued);
        };
        self.dlq.submit(&event, reason, 0)?;
        Ok(Enqueued::DeadLettered)
    }

    /// Queues the event, or hands it back with the DLQ reason when it cannot be queued
    /// (too many events or bytes waiting, or shut down).
    fn offer(&self, event_json: String) -> Option<(String, &'static str)> {
        let len = event_json.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        // One event is always accepted into an empty queue, however large.
        if before > 0 && before.saturating_add(len) > self.queue_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Some((event_json, if self.queue.is_closed() { "shutdown" } else { "queue_full" }));
        }
        let refused = match self.queue.try_send(event_json) {
            Ok(()) => return None,
            Err(TrySendError::Full(event)) => (event, "queue_full"),
            Err(TrySendError::Closed(event)) => (event, "shutdown"),
        };
        self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
        Some(refused)
    }

    /// Events waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity().saturating_sub(self.queue.capacity())
    }

    /// The dead-letter queue this dispatcher writes to.
    pub fn dlq(&self) -> &Arc<DeadLetterQueue> {
        &self.dlq
    }

    /// Counters and queue state.
    pub fn snapshot(&self) -> DispatcherSnapshot {
        let stats = self.dlq.stats();
        DispatcherSnapshot {
            delivered: stats.delivered.get(),
            failed: stats.failed.get(),
            dead_lettered: stats.dead_lettered.get(),
            dlq_size: stats.dlq_size.get(),
            queue_depth: self.queue_depth(),
            queue_capacity: self.queue.max_capacity(),
            queued_bytes: self.queued_bytes.load(Ordering::Acquire),
        }
    }

    /// Stops accepting events and keeps delivering what is queued or in flight for at most
    /// `grace`; whatever is still undelivered then goes to the DLQ (error
    /// `shutdown: delivery interrupted` or `shutdown`), and this waits until the DLQ has
    /// committed every line. Later calls return at once, and later
    /// [`try_enqueue`](Self::try_enqueue) calls dead-letter.
    pub async fn shutdown(&self, grace: Duration) {
        let now = Instant::now();
        let deadline = now.checked_add(grace).or_else(|| now.checked_add(Duration::from_secs(86_400))).unwrap_or(now);
        self.shutdown.send_replace(Some(deadline));
        let worker = self.worker.lock().await.take();
        if let Some(worker) = worker {
            if let Err(error) = worker.await {
                eprintln!("warden events: delivery worker ended abnormally: {error}");
            }
        }
        // A failed commit already printed its lines to stderr, the last place left.
        let _ = self.dlq.flush().await;
    }
}

/// An event being delivered, kept so it can be dead-lettered if its task is cancelled.
struct InFlight {
    event: Arc<str>,
    attempts: Arc<AtomicU32>,
}

struct Worker {
    queue: mpsc::Receiver<String>,
    queued_bytes: Arc<AtomicUsize>,
    sink: Arc<dyn EventSink>,
    dlq: Arc<DeadLetterQueue>,
    retry: RetryPolicy,
    concurrency: usize,
    shutdown: watch::Receiver<Option<Instant>>,
}

impl Worker {
    async fn run(mut self) {
        let mut deliveries: JoinSet<DeliveryOutcome> = JoinSet::new();
        let mut in_flight: HashMap<task::Id, InFlight> = HashMap::new();
        let mut deadline: Option<Instant> = None;
        let mut watching = true;
        let mut queue_open = true;
        loop {
            if !queue_open && deliveries.is_empty() {
                break;
            }
            let accepting = queue_open && deliveries.len() < self.concurrency;
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => break,
                changed = self.shutdown.changed(), if watching => {
                    watching = false;
                    // An error means the Dispatcher was dropped without shutdown(); its
                    // queue sender is gone too, so the queue drains and closes by itself.
                    if changed.is_ok() {
                        deadline = Some((*self.shutdown.borrow()).unwrap_or_else(Instant::now));
                        self.queue.close();
                    }
                }
                Some(joined) = deliveries.join_next_with_id(), if !deliveries.is_empty() => {
                    self.finish(joined, &mut in_flight).await;
                }
                received = self.queue.recv(), if accepting => match received {
                    Some(event) => {
                        self.queued_bytes.fetch_sub(event.len(), Ordering::AcqRel);
                        let flight = InFlight {
                            event: Arc::from(event),
                            attempts: Arc::new(AtomicU32::new(0)),
                        };
                        let sink = Arc::clone(&self.sink);
                        let retry = self.retry.clone();
                        let event = Arc::clone(&flight.event);
                        let attempts = Arc::clone(&flight.attempts);
                        let handle = deliveries.spawn(async move {
                            deliver(sink.as_ref(), &event, &retry, &TokioTimer, || {
                                attempts.fetch_add(1, Ordering::Relaxed);
                            })
                            .await
                        });
                        in_flight.insert(handle.id(), flight);
                    }
                    None => queue_open = false,
                },
                else => break,
            }
        }
        // Deadline passed (or nothing left): interrupt what is still in flight. Aborted
        // tasks come back as cancelled join errors and are dead-lettered in `finish`;
        // a delivery may have reached the receiver just before, which the event's
        // idempotency key makes harmless on replay.
        deliveries.abort_all();
        while let Some(joined) = deliveries.join_next_with_id().await {
            self.finish(joined, &mut in_flight).await;
        }
        for (_, flight) in in_flight.drain() {
            let attempts = flight.attempts.load(Ordering::Relaxed);
            self.dead_letter(&flight.event, "shutdown: delivery interrupted", attempts).await;
        }
        while let Ok(event) = self.queue.try_recv() {
            self.queued_bytes.fetch_sub(event.len(), Ordering::AcqRel);
            self.dead_letter(&event, "shutdown", 0).await;
        }
    }

    async fn finish(
        &self,
        joined: Result<(task::Id, DeliveryOutcome), JoinError>,
        in_flight: &mut HashMap<task::Id, InFlight>,
    ) {
        match joined {
            Ok((id, DeliveryOutcome::Delivered { .. })) => {
                in_flight.remove(&id);
                self.dlq.stats().delivered.inc();
            }
            Ok((id, DeliveryOutcome::Failed { attempts, error })) => {
                self.dlq.stats().failed.inc();
                if let Some(flight) = in_flight.remove(&id) {
                    self.dead_letter(&flight.event, &error.to_string(), attempts).await;
                }
            }
            Err(join_error) => {
                if let Some(flight) = in_flight.remove(&join_error.id()) {
                    let reason = if join_error.is_cancelled() {
                        "shutdown: delivery interrupted"
                    } else {
                        "delivery task panicked"
                    };
                    let attempts = flight.attempts.load(Ordering::Relaxed);
                    self.dead_letter(&flight.event, reason, attempts).await;
                }
            }
        }
    }

    async fn dead_letter(&self, event: &str, reason: &str, attempts: u32) {
        // Handed to the DLQ writer without waiting for its commit, so delivery goes on. A
        // failed commit prints its lines to stderr, the last place left.
        let _ = self.dlq.submit_async(event, reason, attempts).await;
    }
}

/// Tokio's sleeps and `rand`'s jitter, for [`deliver`] on native runtimes.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> super::delivery::BoxFuture<()> {
        Box::pin(tokio::time::sleep(d))
    }

    fn unit_random(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// [`deliver`] with tokio's timer: a bounded send with retries, without the DLQ.
pub async fn deliver_with_retries(sink: &dyn EventSink, event_json: &str, policy: &RetryPolicy) -> DeliveryOutcome {
    deliver(sink, event_json, policy, &TokioTimer, || {}).await
}
