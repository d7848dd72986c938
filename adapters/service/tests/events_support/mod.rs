//! Shared by the `events_*` tests: a real HTTP receiver on 127.0.0.1 serving an axum
//! `Router`, and a sample `DecisionRecord`.
//!
//! The crate's axum dependency is built without its `tokio`/`http1` server features, so
//! `axum::serve` is not available here; this module does the HTTP/1.1 framing over a real
//! TCP socket (one request per connection, `Connection: close`) and hands each request to
//! the axum router.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use warden_engine::Direction;
use warden_engine::{Decision, PolicyId};
use warden_service::record::DecisionRecord;

/// Serves `router` on a fresh 127.0.0.1 port until the test ends; returns its address.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let router = router.clone();
            tokio::spawn(async move {
                // A client that hangs up mid-request is not the receiver's problem.
                let _ = handle(stream, router).await;
            });
        }
    });
    address
}

async fn handle(mut stream: TcpStream, router: Router) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or("GET").to_owned();
    let target = request_line.next().unwrap_or("/").to_owned();
    let mut builder = http::Request::builder().method(method.as_str()).uri(target);
    let mut content_length = 0usize;
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().unwrap_or(0);
            }
            builder = builder.header(name.trim(), value);
        }
    }
    while buffer.len() < head_end + content_length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[head_end..head_end + content_length].to_vec();
    let request = builder.body(Body::from(body)).unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        bytes.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&bytes).await?;
    stream.shutdown().await
}

/// A transform decision on a text with an SSN, at 2026-11-22T04:32:00.123Z.
pub fn record(corr_id: &str) -> DecisionRecord {
    DecisionRecord {
        operation: "precheck",
        org_id: Some("acme".to_owned()),
        direction: Direction::Ingress,
        decision: Decision::Transform,
        policy_id: PolicyId::ToolAccess,
        tool: "verify_identity".to_owned(),
        scope: "net.external".to_owned(),
        raw_text: "my ssn is 123-45-6789".to_owned(),
        raw_text_out: Some("my ssn is <USER_SSN>".to_owned()),
        reasons: vec!["pii.redacted:PII:us_ssn".parse().unwrap()],
        pii_counts: vec![("us_ssn".to_owned(), 1)],
        latency_ms: 1.25,
        corr_id: Some(corr_id.to_owned()),
        tags: vec!["test".to_owned()],
        ts_unix_ms: 1_795_321_920_123,
        user_id: Some("u1".to_owned()),
        context: None,
    }
}

/// The decision event of `record(corr_id)`.
pub fn event(corr_id: &str) -> String {
    use warden_service::events::{EventBuilder, EventOptions};
    EventBuilder::new(EventOptions::default()).json(&record(corr_id))
}

/// Every line of a JSONL file, parsed.
pub fn read_jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}
