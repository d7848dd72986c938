//! Webhook delivery against a real HTTP receiver on 127.0.0.1: signatures verified by the
//! receiver, retries, the DLQ, and replay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod events_support;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use events_support::{event, read_jsonl, serve};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warden_service::events::{
    deliver_with_retries, replay, verify, DeadLetterQueue, DeliveryOutcome, DeliveryStats, Dispatcher,
    DispatcherConfig, EventSink, RetryPolicy, SendError, WebhookSink, DEFAULT_TOLERANCE_SECS, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};

const SECRET: &str = "test-webhook-secret";

/// What the receiver saw, and how it should answer.
#[derive(Default)]
struct Receiver {
    /// Requests received (verified or not).
    hits: AtomicUsize,
    /// Bodies of requests answered 200.
    accepted: Mutex<Vec<String>>,
    /// Answer 500 to this many requests first.
    fail_first: usize,
    /// Answer 500 to bodies containing this.
    fail_containing: Option<String>,
}

/// A receiver that verifies the signature with `verify` (401 when it does not hold) and then
/// answers per its `Receiver` settings.
async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let hit = receiver.hits.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    if verify(
        SECRET.as_bytes(),
        &header(TIMESTAMP_HEADER),
        &header(SIGNATURE_HEADER),
        body.as_bytes(),
        now,
        DEFAULT_TOLERANCE_SECS,
    )
    .is_err()
    {
        return StatusCode::UNAUTHORIZED;
    }
    if header("content-type") != "application/json" {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    if hit < receiver.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if let Some(marker) = &receiver.fail_containing {
        if body.contains(marker.as_str()) {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    receiver.accepted.lock().unwrap().push(body);
    StatusCode::OK
}

async fn start(receiver: Receiver) -> (Arc<Receiver>, String) {
    let receiver = Arc::new(receiver);
    let router = Router::new().route("/hook", post(receive)).with_state(Arc::clone(&receiver));
    let address = serve(router).await;
    (receiver, format!("http://{address}/hook"))
}

fn sink(url: &str, secret: &str) -> Arc<dyn EventSink> {
    Arc::new(WebhookSink::new(url, secret.as_bytes(), Duration::from_secs(5)).unwrap())
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy { max_retries: 3, backoff_base: Duration::from_millis(5), ..RetryPolicy::default() }
}

fn dispatcher(sink: Arc<dyn EventSink>, dlq: &std::path::Path) -> Dispatcher {
    let dlq = Arc::new(DeadLetterQueue::new(dlq, DeliveryStats::default()).unwrap());
    let config = DispatcherConfig { retry: fast_retries(), ..DispatcherConfig::default() };
    Dispatcher::start(sink, dlq, config).unwrap()
}

#[tokio::test]
async fn receiver_verifies_signature_and_timestamp() {
    let (receiver, url) = start(Receiver::default()).await;
    let body = event("req-signed");

    sink(&url, SECRET).send(&body).await.unwrap();
    assert_eq!(*receiver.accepted.lock().unwrap(), vec![body.clone()]);

    // Signed with another secret: the receiver's `verify` rejects it.
    let rejected = sink(&url, "some-other-secret").send(&body).await;
    assert_eq!(rejected, Err(SendError::Status(401)));
    assert_eq!(receiver.accepted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn debug_output_hides_secret_and_url_keys() {
    let sink = WebhookSink::new("http://127.0.0.1:9/hook?token=tok-123&x=1", SECRET.as_bytes(), Duration::from_secs(1))
        .unwrap();
    let debug = format!("{sink:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains("tok-123"), "{debug}");
    assert!(debug.contains("x=1"), "{debug}");
}

#[tokio::test]
async fn flaky_receiver_gets_the_event_after_retries() {
    let (receiver, url) = start(Receiver { fail_first: 2, ..Receiver::default() }).await;
    let outcome = deliver_with_retries(sink(&url, SECRET).as_ref(), &event("req-1"), &fast_retries()).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered { attempts: 3 });
    assert_eq!(receiver.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn dispatcher_delivers_in_background_after_retries() {
    let (receiver, url) = start(Receiver { fail_first: 2, ..Receiver::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let dlq_path = dir.path().join("dlq.jsonl");
    let dispatcher = dispatcher(sink(&url, SECRET), &dlq_path);

    let body = event("req-bg");
    dispatcher.try_enqueue(body.clone()).await.unwrap();
    dispatcher.shutdown(Duration::from_secs(10)).await;

    let snapshot = dispatcher.snapshot();
    assert_eq!((snapshot.delivered, snapshot.failed, snapshot.dead_lettered), (1, 0, 0));
    assert_eq!(receiver.hits.load(Ordering::SeqCst), 3);
    assert_eq!(*receiver.accepted.lock().unwrap(), vec![body]);
    assert!(!dlq_path.exists(), "nothing should be dead-lettered");
}

#[tokio::test]
async fn always_failing_receiver_puts_the_event_in_the_dlq_once() {
    let (receiver, url) = start(Receiver { fail_first: usize::MAX, ..Receiver::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    // A nested path: the DLQ writer creates the directories.
    let dlq_path = dir.path().join("nested").join("dir").join("dlq.jsonl");
    let dispatcher = dispatcher(sink(&url, SECRET), &dlq_path);

    let body = event("req-dead");
    dispatcher.try_enqueue(body.clone()).await.unwrap();
    dispatcher.shutdown(Duration::from_secs(10)).await;

    assert_eq!(receiver.hits.load(Ordering::SeqCst), 4, "1 attempt + 3 retries");
    let lines = read_jsonl(&dlq_path);
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["event"], serde_json::from_str::<serde_json::Value>(&body).unwrap());
    assert_eq!(line["attempts"], 4);
    assert_eq!(line["error"], "http status 500");
    let failed_at = line["failedAt"].as_str().unwrap();
    assert!(failed_at.len() == 24 && failed_at.ends_with('Z'), "{failed_at}");
    // The event is stored verbatim, so replay re-sends the same bytes.
    let raw = std::fs::read_to_string(&dlq_path).unwrap();
    assert!(raw.starts_with(&format!("{{\"event\":{body},")), "{raw}");

    let snapshot = dispatcher.snapshot();
    assert_eq!((snapshot.delivered, snapshot.failed, snapshot.dead_lettered), (0, 1, 1));
    assert_eq!(snapshot.dlq_size, 1);
}

#[tokio::test]
async fn replay_to_a_healthy_receiver_empties_the_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let dlq_path = dir.path().join("dlq.jsonl");
    let dlq = DeadLetterQueue::new(&dlq_path, DeliveryStats::default()).unwrap();
    let events: Vec<String> = (0..3).map(|i| event(&format!("req-{i}"))).collect();
    for body in &events {
        dlq.append(body, "http status 500", 4).await.unwrap();
    }
    assert_eq!(dlq.stats().dlq_size.get(), 3);

    let (receiver, url) = start(Receiver::default()).await;
    let report = dlq.replay(sink(&url, SECRET).as_ref()).await.unwrap();

    assert_eq!((report.total, report.delivered, report.remaining), (3, 3, 0));
    assert_eq!(std::fs::read_to_string(&dlq_path).unwrap(), "");
    assert_eq!(*receiver.accepted.lock().unwrap(), events);
    assert_eq!(dlq.stats().dlq_size.get(), 0);

    // Replaying an empty (or missing) DLQ is a no-op.
    let again = replay(&dlq_path, sink(&url, SECRET).as_ref()).await.unwrap();
    assert_eq!((again.total, again.delivered, again.remaining), (0, 0, 0));
    let missing = replay(dir.path().join("none.jsonl"), sink(&url, SECRET).as_ref()).await.unwrap();
    assert_eq!(missing.total, 0);
}

#[tokio::test]
async fn replay_keeps_only_the_lines_that_failed_again() {
    let dir = tempfile::tempdir().unwrap();
    let dlq_path = dir.path().join("dlq.jsonl");
    let dlq = DeadLetterQueue::new(&dlq_path, DeliveryStats::default()).unwrap();
    for corr in ["ok-1", "fail-1", "ok-2", "fail-2"] {
        dlq.append(&event(corr), "timeout", 4).await.unwrap();
    }
    // A line that is not a DLQ entry must survive untouched.
    let mut raw = std::fs::read_to_string(&dlq_path).unwrap();
    raw.push_str("not json at all\n");
    std::fs::write(&dlq_path, &raw).unwrap();
    let original: Vec<&str> = raw.lines().collect();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dlq_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }

    let (receiver, url) =
        start(Receiver { fail_containing: Some("\"correlationId\":\"fail-".to_owned()), ..Receiver::default() }).await;
    let report = replay(&dlq_path, sink(&url, SECRET).as_ref()).await.unwrap();

    assert_eq!(report.total, 5);
    assert_eq!(report.delivered, 2);
    assert_eq!(report.remaining, 3);
    assert_eq!(report.unparsable, 1);
    let left = std::fs::read_to_string(&dlq_path).unwrap();
    let left: Vec<&str> = left.lines().collect();
    assert_eq!(left, vec![original[1], original[3], original[4]]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dlq_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "the rewrite keeps the file's permissions");
    }
    assert_eq!(*receiver.accepted.lock().unwrap(), vec![event("ok-1"), event("ok-2")]);
}

#[tokio::test]
async fn replay_resends_the_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let dlq_path = dir.path().join("dlq.jsonl");
    // Unusual key order and spacing, and a non-JSON event stored as a string: both come
    // back exactly as they were handed to the DLQ.
    let odd = r#"{"z": 1,  "a": [ 2 ]}"#;
    let dlq = DeadLetterQueue::new(&dlq_path, DeliveryStats::default()).unwrap();
    dlq.append(odd, "timeout", 1).await.unwrap();
    dlq.append("plain text event", "timeout", 1).await.unwrap();

    let (receiver, url) = start(Receiver::default()).await;
    let report = replay(&dlq_path, sink(&url, SECRET).as_ref()).await.unwrap();
    assert_eq!(report.delivered, 2);
    assert_eq!(*receiver.accepted.lock().unwrap(), vec![odd.to_owned(), "plain text event".to_owned()]);
}

#[tokio::test]
async fn slow_receiver_times_out() {
    let router = Router::new().route(
        "/hook",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK
        }),
    );
    let address = serve(router).await;
    let sink =
        WebhookSink::new(format!("http://{address}/hook"), SECRET.as_bytes(), Duration::from_millis(200)).unwrap();
    assert_eq!(sink.send(&event("req-slow")).await, Err(SendError::Timeout));
}

#[tokio::test]
async fn unreachable_receiver_is_a_connect_error_without_the_url() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sink = WebhookSink::new(
        format!("http://127.0.0.1:{port}/hook?token=tok-secret"),
        SECRET.as_bytes(),
        Duration::from_secs(2),
    )
    .unwrap();
    match sink.send(&event("req-down")).await {
        Err(SendError::Connect(message)) => assert!(!message.contains("tok-secret"), "{message}"),
        other => panic!("expected a connect error, got {other:?}"),
    }
}
