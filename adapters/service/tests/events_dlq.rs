//! The DLQ under concurrency: `warden dlq replay` rewriting the file while another process
//! appends to it loses nothing, and readiness never reads the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod events_support;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use events_support::serve;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_service::events::{dlq_status, replay, DeadLetterQueue, DeliveryStats, EventSink, WebhookSink};

const CHILD_PATH: &str = "WARDEN_TEST_DLQ_CHILD_PATH";
const CHILD_LINES: usize = 4_000;
const PREFILLED: usize = 500;

fn event(id: &str) -> String {
    format!("{{\"id\":\"{id}\",\"pad\":\"{}\"}}", "x".repeat(200))
}

/// Run by `replay_and_a_concurrent_appender_process_lose_nothing` in a child process (the
/// same test binary): appends `CHILD_LINES` events through a `DeadLetterQueue`, in small
/// bursts so its group commits interleave with the replays. A no-op in a normal test run.
#[test]
fn appender_child() {
    let Ok(path) = std::env::var(CHILD_PATH) else { return };
    let dlq = DeadLetterQueue::new(&path, DeliveryStats::default()).unwrap();
    for i in 0..CHILD_LINES {
        dlq.submit(&event(&format!("c{i}")), "http status 503", 4).unwrap();
        if i % 10 == 9 {
            dlq.flush_blocking().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    dlq.flush_blocking().unwrap();
}

/// A real webhook receiver on loopback counting each event id it accepts.
async fn receiver() -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let got: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let store = Arc::clone(&got);
    let router = Router::new().route(
        "/hook",
        post(move |body: String| {
            let store = Arc::clone(&store);
            async move {
                let event: serde_json::Value = serde_json::from_str(&body).unwrap();
                *store.lock().unwrap().entry(event["id"].as_str().unwrap().to_owned()).or_default() += 1;
                StatusCode::OK
            }
        }),
    );
    (format!("http://{}/hook", serve(router).await), got)
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap_or_default().lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_a_concurrent_appender_process_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    {
        let dlq = DeadLetterQueue::new(&path, DeliveryStats::default()).unwrap();
        for i in 0..PREFILLED {
            dlq.submit(&event(&format!("p{i}")), "timeout", 4).unwrap();
        }
        dlq.flush().await.unwrap();
    }
    assert_eq!(lines(&path), PREFILLED);
    let (url, got) = receiver().await;
    let sink: Arc<dyn EventSink> = Arc::new(WebhookSink::new(url, b"s", Duration::from_secs(10)).unwrap());

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "appender_child", "--test-threads=1"])
        .env(CHILD_PATH, &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (mut delivered, mut replays, mut concurrent) = (0usize, 0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let running = child.try_wait().unwrap().is_none();
        let report = replay(&path, sink.as_ref()).await.unwrap();
        assert_eq!(report.remaining, 0, "{report:?}");
        delivered += report.delivered;
        replays += 1;
        if running && report.delivered > 0 {
            concurrent += 1;
        }
        if !running && report.total == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "replays did not catch up");
    }
    assert!(child.wait().unwrap().success());

    // Every line appended was delivered exactly once, and none is left behind.
    let got = got.lock().unwrap();
    let appended = PREFILLED + CHILD_LINES;
    assert_eq!(got.len(), appended, "lost {} line(s)", appended - got.len());
    assert!(got.values().all(|&n| n == 1), "a line was delivered twice");
    assert_eq!(delivered, appended);
    assert_eq!(lines(&path), 0);
    assert_eq!(dlq_status(&path).lines, Some(0));
    assert!(concurrent >= 3, "replays must overlap the appends ({concurrent} of {replays})");
}

#[tokio::test]
async fn a_second_replay_of_the_same_file_is_refused_while_one_runs() {
    // A receiver that holds each request until released, so the first replay stays busy.
    let release = Arc::new(tokio::sync::Notify::new());
    let wait = Arc::clone(&release);
    let router = Router::new().route(
        "/hook",
        post(move || {
            let wait = Arc::clone(&wait);
            async move {
                wait.notified().await;
                StatusCode::OK
            }
        }),
    );
    let url = format!("http://{}/hook", serve(router).await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    let dlq = DeadLetterQueue::new(&path, DeliveryStats::default()).unwrap();
    dlq.append(&event("only"), "timeout", 1).await.unwrap();
    let sink: Arc<dyn EventSink> = Arc::new(WebhookSink::new(url, b"s", Duration::from_secs(10)).unwrap());
    let first = {
        let (path, sink) = (path.clone(), Arc::clone(&sink));
        tokio::spawn(async move { replay(&path, sink.as_ref()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = replay(&path, sink.as_ref()).await.unwrap_err();
    assert!(second.to_string().contains("another `warden dlq replay`"), "{second}");
    release.notify_one();
    assert_eq!(first.await.unwrap().unwrap().delivered, 1);
    assert_eq!(lines(&path), 0);
}

#[test]
fn readiness_of_a_300_mb_dlq_does_not_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    // A sparse 300 MB file: reading it would take a while, a stat does not.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(300 * 1024 * 1024).unwrap();
    let started = Instant::now();
    for _ in 0..200 {
        let status = dlq_status(&path);
        assert!(status.writable);
        assert_eq!((status.bytes, status.lines), (300 * 1024 * 1024, None));
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "200 readiness checks took {elapsed:?}");
}
