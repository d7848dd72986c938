//! The service with every way in: the invoke envelope on the request and message channels
//! (`Service::invoke`), the message seam on raw bytes (`Service::handle_message`), each
//! `Operation` on a JSON body (`Service::run`), and the HTTP router on raw bytes for every
//! route and method. The first byte picks the way, the rest is the body. Every error must be
//! a 4xx naming the problem; every HTTP answer must be JSON.
#![no_main]

use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::ServiceExt;
use warden_service::router::{router, AppState};
use warden_service::service::{Channel, MessageMeta, MessageOutcome, Operation, RequestMeta};

const ROUTES: [&str; 10] = [
    "/",
    "/api/v1/precheck",
    "/api/v1/postcheck",
    "/api/v1/redact",
    "/api/v1/evaluate",
    "/api/v1/batch",
    "/api/v1/health",
    "/api/v1/ready",
    "/api/openapi.json",
    "/api/v1/nope",
];
const METHODS: [&str; 4] = ["POST", "GET", "PUT", "OPTIONS"];
const CONTENT_TYPES: [Option<&str>; 4] =
    [Some("application/json"), None, Some("text/plain"), Some("application/json; charset=latin1")];

static MESSAGE_IDS: AtomicU64 = AtomicU64::new(0);

fn request_error(e: &warden_service::error::ApiError) {
    assert!(e.status() < 500, "no 5xx from a request with memory stores: {e:?}");
    warden_fuzz::assert_error_body(e.status(), &e.body());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let (runtime, service) = warden_fuzz::service();
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    runtime.block_on(async {
        match selector % 12 {
            0 | 1 => {
                let Some(json) = json else { return };
                let channel = if selector % 12 == 0 { Channel::Request } else { Channel::Message };
                let meta = RequestMeta { channel, ..Default::default() };
                if let Err(e) = service.invoke(json, &meta).await {
                    request_error(&e);
                }
            }
            2 => {
                let id = MESSAGE_IDS.fetch_add(1, Ordering::Relaxed) % 64;
                let meta = MessageMeta {
                    id: Some(format!("m-{id}")),
                    attempt: 1,
                    default_agent_id: "fuzz-queue".into(),
                    request_id: None,
                };
                match service.handle_message(body, &meta).await {
                    MessageOutcome::Done(_) | MessageOutcome::Duplicate(_) => {}
                    MessageOutcome::Reject(e) => request_error(&e),
                    MessageOutcome::Retry(e) => panic!("retry without a store that can fail: {e:?}"),
                }
            }
            n @ 3..=9 => {
                let Some(json) = json else { return };
                let op = Operation::ALL[usize::from(n - 3)];
                if let Err(e) = service.run(op, json, &RequestMeta::default()).await {
                    request_error(&e);
                }
            }
            _ => {
                let route = ROUTES[usize::from(selector >> 4) % ROUTES.len()];
                let method = METHODS[usize::from(selector >> 2) % METHODS.len()];
                let mut req = http::Request::builder().method(method).uri(route);
                if let Some(ct) = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()] {
                    req = req.header("content-type", ct);
                }
                let Ok(req) = req.body(Body::from(body.to_vec())) else { return };
                let app = router(AppState { service: std::sync::Arc::clone(service), api_keys: None, metrics: None });
                let Ok(resp) = app.oneshot(req).await;
                let status = resp.status().as_u16();
                assert!(status < 500, "no 5xx over HTTP: {status} for {method} {route}");
                let Ok(bytes) = axum::body::to_bytes(resp.into_body(), 1 << 24).await else { panic!("body readable") };
                if method == "OPTIONS" && bytes.is_empty() {
                    return;
                }
                let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    panic!("{method} {route} answered {status} with non-JSON: {:?}", String::from_utf8_lossy(&bytes))
                };
                if status >= 400 {
                    warden_fuzz::assert_error_body(status, &answer);
                }
            }
        }
    });
});
