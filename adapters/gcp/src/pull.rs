//! `warden-gcp pull`: a streaming-pull worker for batch governance. Flow control bounds what
//! the client leases; a semaphore bounds how many messages are governed at once. A message is
//! acknowledged only after its result is published, failed (nack) on a transient error so that
//! Pub/Sub redelivers it (and dead-letters it after the subscription's max delivery attempts),
//! and acknowledged with an error result when malformed. On SIGTERM the worker stops taking
//! messages, lets the ones in flight finish within the grace period and flushes its acks;
//! whatever was leased but not started is redelivered to another worker.

use crate::logging::log;
use crate::process::{Processor, Verdict};
use crate::push::{Incoming, Shape};
use google_cloud_pubsub::client::Subscriber;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::handler::Handler;
use google_cloud_pubsub::subscriber::ShutdownBehavior;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The longest wait for the stream reader to end after shutdown.
const HANDBACK_LIMIT: Duration = Duration::from_secs(1);

/// The longest wait for the final acks and nacks to be sent.
const ACK_FLUSH_LIMIT: Duration = Duration::from_secs(3);

/// How the worker runs.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// `projects/P/subscriptions/S`.
    pub subscription: String,
    /// Messages governed at once.
    pub concurrency: usize,
    /// How long in-flight messages get on shutdown (then up to 4.5 s more for handing back
    /// unstarted messages and flushing acks).
    pub grace: Duration,
    /// How often progress is logged.
    pub progress_every: Duration,
}

/// Runs until `shutdown` completes or the stream fails for good; returns the final counters
/// as log fields.
pub async fn run(
    processor: Arc<Processor>,
    subscriber: &Subscriber,
    options: &PullOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<Map<String, Value>, String> {
    let concurrency = options.concurrency.max(1);
    let outstanding = i64::try_from(concurrency.saturating_mul(2)).unwrap_or(i64::MAX);
    let mut stream = subscriber
        .subscribe(options.subscription.clone())
        .set_max_outstanding_messages(outstanding)
        // The handlers in flight are finished (and acked) before shutdown is signalled; what
        // the client leased but never handed out is nacked then, for immediate redelivery.
        .set_shutdown_behavior(ShutdownBehavior::NackImmediately)
        // Leases are extended 20 s at a time, so the messages of a killed worker come back
        // within seconds, not a minute.
        .set_max_lease_extension(Duration::from_secs(20))
        .build();
    let token = stream.shutdown_token();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let reporter = {
        let processor = Arc::clone(&processor);
        let every = options.progress_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                report(&processor, started, "pull progress");
            }
        })
    };
    tokio::pin!(shutdown);
    log(
        "INFO",
        "pull worker started",
        None,
        Map::from_iter([
            ("subscription".to_owned(), Value::from(options.subscription.as_str())),
            ("concurrency".to_owned(), Value::from(concurrency)),
        ]),
    );
    // The stream is read by its own task and never dropped mid-read (`next()` is not
    // cancel-safe: a response it was reading would be lost, leased to nobody); the main loop
    // only ever waits on the channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel(concurrency);
    let reader = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            match item {
                Ok((message, handler)) => {
                    if let Err(refused) = tx.send((message, handler)).await {
                        // Shutting down: give it back for immediate redelivery.
                        refused.0 .1.nack();
                    }
                }
                Err(e) => return Some(e.to_string()),
            }
        }
        None
    });
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let next = tokio::select! {
            () = &mut shutdown => break,
            n = rx.recv() => n,
        };
        // `None`: the reader ended (stream failure, reported below).
        let Some((message, handler)) = next else { break };
        let processor = Arc::clone(&processor);
        tasks.spawn(async move {
            let incoming = incoming(message, &handler);
            match processor.process(Ok(incoming), None).await {
                Verdict::Ack => handler.ack(),
                Verdict::Nack(_) => handler.nack(),
            }
            drop(permit);
        });
    }
    // Messages received but not started go back at once.
    rx.close();
    let mut handed_back = 0u64;
    while let Ok((_, handler)) = rx.try_recv() {
        handler.nack();
        handed_back += 1;
    }
    log(
        "INFO",
        "pull worker draining",
        None,
        Map::from_iter([
            ("in_flight".to_owned(), Value::from(tasks.len())),
            ("handed_back".to_owned(), Value::from(handed_back)),
        ]),
    );
    processor.counters.received.fetch_add(handed_back, Ordering::Relaxed);
    processor.counters.nacked.fetch_add(handed_back, Ordering::Relaxed);
    let drained = tokio::time::timeout(options.grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        // Their messages are neither acked nor nacked: shutdown nacks them below.
        log("WARNING", "pull worker: in-flight messages did not finish in time", None, Map::new());
        tasks.abort_all();
    }
    // Stops the stream (the reader then ends), sends the pending acks and nacks, and nacks
    // whatever else the client holds.
    if tokio::time::timeout(ACK_FLUSH_LIMIT, token.shutdown()).await.is_err() {
        log("WARNING", "pull worker: acknowledgements not confirmed in time", None, Map::new());
    }
    let failure = match tokio::time::timeout(HANDBACK_LIMIT, reader).await {
        Ok(Ok(Some(e))) => Some(format!("streaming pull from {} failed: {e}", options.subscription)),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => Some(format!("streaming pull reader failed: {e}")),
        Err(_) => None,
    };
    reporter.abort();
    let fields = report(&processor, started, "pull worker stopped");
    match failure {
        Some(f) => Err(f),
        None => Ok(fields),
    }
}

fn incoming(message: Message, handler: &Handler) -> Incoming {
    Incoming {
        data: message.data.to_vec(),
        message_id: Some(message.message_id).filter(|id| !id.is_empty()),
        attributes: message.attributes.into_iter().collect(),
        subscription: None,
        shape: Shape::Pulled,
        attempt: handler.delivery_attempt().and_then(|a| u32::try_from(a).ok()),
    }
}

/// Logs the counters with the rate since start.
fn report(processor: &Processor, started: Instant, message: &str) -> Map<String, Value> {
    let mut fields = processor.counters.fields();
    let secs = started.elapsed().as_secs_f64();
    let done = processor.counters.acked.load(Ordering::Relaxed);
    fields.insert("seconds".into(), Value::from((secs * 1000.0).round() / 1000.0));
    #[allow(clippy::cast_precision_loss)] // a message count fits an f64 exactly far beyond any run
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    fields.insert("acked_per_second".into(), Value::from(rate.round()));
    log("INFO", message, None, fields.clone());
    fields
}
