//! The Tork serverless guide's envelopes (`tests/envelope/tork-guide.json`): each case through
//! the HTTP router's `POST /` (what `warden serve`, the Worker and the wasm package serve) or
//! through the message seam (what queue, Pub/Sub and direct-invoke adapters call).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use axum::body::Body;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;
use warden_service::clock::SystemClock;
use warden_service::policy_source::PolicySource;
use warden_service::router::{router, AppState};
use warden_service::service::{MemoryDedupe, MessageMeta, MessageOutcome, Service, ServiceBuilder};
use warden_service::settings::Settings;

#[derive(Deserialize)]
struct Case {
    name: String,
    channel: String,
    body: Value,
    status: u16,
    expect: serde_json::Map<String, Value>,
    #[serde(default)]
    present: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
}

fn service(default_agent: &str) -> Arc<Service> {
    let settings = Settings::from_lookup(|_| None).unwrap();
    let mut config = settings.service_config();
    config.default_agent_id = Some(default_agent.to_owned());
    let service = ServiceBuilder::new(Arc::new(PolicySource::bundled().unwrap()), settings.token_key(), config)
        .clock(Arc::new(SystemClock::new()))
        .dedupe(Arc::new(MemoryDedupe::new(1000)))
        .build()
        .unwrap();
    Arc::new(service)
}

async fn via_http(service: &Arc<Service>, body: &Value) -> (u16, Value) {
    let app = router(AppState { service: Arc::clone(service), api_keys: None, metrics: None });
    let req = http::Request::post("/").body(Body::from(body.to_string())).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn via_message(service: &Arc<Service>, body: &Value, id: &str) -> (u16, Value) {
    let meta = MessageMeta {
        id: Some(id.to_owned()),
        attempt: 1,
        default_agent_id: "pubsub-default".into(),
        request_id: None,
    };
    match service.handle_message(body.to_string().as_bytes(), &meta).await {
        MessageOutcome::Done(v) | MessageOutcome::Duplicate(v) => (200, v),
        MessageOutcome::Reject(e) | MessageOutcome::Retry(e) => (e.status(), e.body()),
    }
}

#[tokio::test]
async fn every_guide_envelope_is_answered_as_documented() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/envelope/tork-guide.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 10);
    let service = service("warden-default");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let (status, got) = match case.channel.as_str() {
            "http" => via_http(&service, &case.body).await,
            "message" => via_message(&service, &case.body, &format!("m-{i}")).await,
            other => panic!("{}: unknown channel {other}", case.name),
        };
        if status != case.status {
            failures.push(format!("{}: status {status}, want {}: {got}", case.name, case.status));
            continue;
        }
        for (pointer, want) in &case.expect {
            if got.pointer(pointer) != Some(want) {
                failures.push(format!("{}: {pointer} = {:?}, want {want}", case.name, got.pointer(pointer)));
            }
        }
        for pointer in &case.present {
            if got.pointer(pointer).is_none() {
                failures.push(format!("{}: {pointer} missing in {got}", case.name));
            }
        }
        for pointer in &case.absent {
            if got.pointer(pointer).is_some() {
                failures.push(format!("{}: {pointer} must not be there", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn agent_id_defaults_come_from_the_adapter() {
    // The default reaches the audit record's user (evaluate without user_id records the agent).
    let service = service("lambda-default");
    let (status, got) = via_http(&service, &serde_json::json!({"payload": {"a": "b"}})).await;
    assert_eq!(status, 200, "{got}");
    let app = router(AppState { service: Arc::clone(&service), api_keys: None, metrics: None });
    let req = http::Request::post("/api/v1/evaluate").body(Body::from(r#"{"payload":{"a":"b"}}"#)).unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), 200, "POST /api/v1/evaluate takes the same default");
    // A platform request id is echoed; otherwise ids are generated and distinct.
    let (_, a) = via_http(&service, &serde_json::json!({"action": "health"})).await;
    let (_, b) = via_http(&service, &serde_json::json!({"action": "health"})).await;
    assert_ne!(a["request_id"], b["request_id"]);
    let (_, m) = via_message(&service, &serde_json::json!({"action": "health"}), "msg-77").await;
    assert_eq!(m["request_id"], "msg-77");
}
