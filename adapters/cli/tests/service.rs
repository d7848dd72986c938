//! The service layer inside `warden serve`, end to end over loopback: budgets under
//! concurrency (SQLite and a real redis-server), rate limits, API keys, signed webhook events
//! with DLQ and replay, audit lines and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{serve, wait_for, Server, BIN};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Fires 200 concurrent purchases of $0.01 (+ 1 token of gpt-4) at one user with a $1.00
/// limit: spend may only be recorded while the projection stays under 90 %, so exactly 89 pass
/// (89 × $0.01003 = $0.89267), the rest need confirmation, and nothing ever overspends.
async fn fire_budget(server: &Server) {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/precheck", server.base);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"tool": "shop.buy", "raw_text": "buy", "user_id": "buyer", "corr_id": format!("c{i}"),
                "tool_config": {"metadata": {"purchase_amount": 0.01}}});
            let resp = client.post(&url).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }));
    }
    let (mut allowed, mut confirm, mut max_spend) = (0, 0, 0.0f64);
    for t in tasks {
        let v = t.await.unwrap();
        match v["decision"].as_str().unwrap() {
            "allow" => allowed += 1,
            "confirm" => confirm += 1,
            other => panic!("unexpected decision {other}: {v}"),
        }
        max_spend = max_spend.max(v["budget_status"]["currentSpend"].as_f64().unwrap());
    }
    assert_eq!((allowed, confirm), (89, 111));
    assert!(max_spend <= 1.0, "overspent: {max_spend}");
    // The stored total is exactly the 89 recorded spends.
    assert_spend(&server.base, 0.89267).await;
}

/// POSTs `body` to `base` + `path` and returns the JSON answer (status 200 required).
async fn post_json(base: &str, path: &str, body: &Value) -> Value {
    let resp = reqwest::Client::new().post(format!("{base}{path}")).json(body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// Asks the server for the buyer's current spend (a request that costs nothing).
async fn assert_spend(base: &str, want: f64) {
    let v = post_json(base, "/api/v1/precheck", &json!({"tool": "shop.buy", "raw_text": "", "user_id": "buyer"})).await;
    assert!((v["budget_status"]["currentSpend"].as_f64().unwrap() - want).abs() < 1e-9, "{v}");
}

fn budget_env() -> Vec<(&'static str, String)> {
    vec![("BUDGET_DEFAULT_LIMIT", "1.00".into()), ("RATE_LIMIT_PER_MINUTE", "0".into())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_never_overspend_sqlite() {
    let server = serve(&budget_env(), &[]);
    fire_budget(&server).await;
}

/// A redis-server child on a free port, killed on drop.
struct Redis(std::process::Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn();
    let Ok(child) = child else {
        assert!(std::env::var_os("CI").is_none(), "redis-server is not installed (scripts/test installs it)");
        eprintln!("SKIPPED: redis-server is not installed");
        return None;
    };
    let redis = Redis(child, port);
    wait_for(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    Some(redis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_never_overspend_redis_across_two_instances() {
    let Some(redis) = start_redis() else { return };
    let mut env = budget_env();
    env.push(("REDIS_URL", format!("redis://127.0.0.1:{}", redis.1)));
    let server = serve(&env, &[]);
    let ready: Value = reqwest::get(format!("{}/api/v1/ready", server.base)).await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["stores"]["detail"], "budgets: redis");
    fire_budget(&server).await;
    // A second instance sees the same spend: the store is shared.
    let other = serve(&env, &[]);
    assert_spend(&other.base, 0.89267).await;
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let server = serve(&[("RATE_LIMIT_PER_MINUTE", "3".into())], &[]);
    let client = reqwest::blocking::Client::new();
    let body = json!({"tool": "t", "raw_text": "x", "user_id": "busy"});
    // A fixed window may roll over once between requests, so allow for two windows' worth.
    let limited = (0..7).find_map(|_| {
        let resp = client.post(format!("{}/api/v1/precheck", server.base)).json(&body).send().unwrap();
        (resp.status() == StatusCode::TOO_MANY_REQUESTS).then_some(resp)
    });
    let resp = limited.expect("no 429 within 7 requests at 3/min");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Another user is not affected.
    let other = client
        .post(format!("{}/api/v1/precheck", server.base))
        .json(&json!({"tool": "t", "raw_text": "x", "user_id": "calm"}))
        .send()
        .unwrap();
    assert_eq!(other.status(), 200);
    let metrics = client.get(format!("{}/api/metrics", server.base)).send().unwrap().text().unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("rate_limited_total") && !l.ends_with(" 0")), "{metrics}");
}

#[test]
fn api_keys_guard_every_route_but_probes() {
    let server = serve(&[("WARDEN_API_KEYS", "k-one,k-two".into()), ("PII_TOKEN_SALT", "s".into())], &[]);
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/api/v1/precheck", server.base);
    let body = json!({"tool": "t", "raw_text": "x"});
    let r = client.post(&url).json(&body).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "unauthorized");
    assert_eq!(client.post(&url).header("X-Governs-Key", "k-three").json(&body).send().unwrap().status(), 401);
    assert_eq!(client.post(&url).header("X-Governs-Key", "k-two").json(&body).send().unwrap().status(), 200);
    assert_eq!(client.get(format!("{}/api/v1/health", server.base)).send().unwrap().status(), 200);
    assert_eq!(client.get(format!("{}/api/v1/ready", server.base)).send().unwrap().status(), 200);
    assert_eq!(client.get(format!("{}/api/metrics", server.base)).send().unwrap().status(), 401);
    let m = client.get(format!("{}/api/metrics", server.base)).header("X-Governs-Key", "k-one").send().unwrap();
    assert_eq!(m.status(), 200);
    assert!(!m.text().unwrap().contains("k-one"));
}

/// A real webhook receiver on loopback: verifies signatures, answers `status`, keeps bodies.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

async fn receiver(secret: &'static str, status: StatusCode) -> Receiver {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = Arc::clone(&store);
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let body = String::from_utf8(body.to_vec()).unwrap();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                if warden_service::events::verify(
                    secret.as_bytes(),
                    &h("x-warden-timestamp"),
                    &h("x-warden-signature"),
                    body.as_bytes(),
                    now,
                    300,
                )
                .is_err()
                {
                    return StatusCode::UNAUTHORIZED;
                }
                if status.is_success() {
                    store.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                }
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url: format!("http://{addr}/hook"), got }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_reach_the_webhook_without_raw_pii() {
    let rx = receiver("s3cret", StatusCode::OK).await;
    let server = serve(
        &[("WEBHOOK_URL", rx.url.clone()), ("WEBHOOK_SECRET", "s3cret".into()), ("WARDEN_ORG_ID", "acme".into())],
        &[],
    );
    let body = json!({"tool": "verify_identity", "raw_text": "SSN: 123-45-6789", "corr_id": "ev-1", "user_id": "u9", "tags": ["t1"]});
    let resp = post_json(&server.base, "/api/v1/precheck", &body).await;
    assert_eq!(resp["decision"], "transform");
    let got = Arc::clone(&rx.got);
    tokio::task::spawn_blocking(move || wait_for(|| !got.lock().unwrap().is_empty())).await.unwrap();
    let event = rx.got.lock().unwrap()[0].clone();
    assert_eq!(event["type"], "INGEST");
    assert_eq!(event["schema"], "decision.v1");
    assert_eq!(event["channel"], "org:acme:decisions");
    let data = &event["data"];
    assert_eq!(data["correlationId"], "ev-1");
    assert_eq!(data["decision"], "transform");
    assert_eq!(data["authentication"]["userId"], "u9");
    assert!(data["payloadHash"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert!(data.get("rawText").is_none());
    assert!(!event.to_string().contains("123-45-6789"));
}

/// Issue 10, finding 5: identifiers with PII (as a hostile or careless caller sends them) and
/// a text that passed unchanged reach neither the event nor the audit line; hashes are keyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_with_pii_reach_neither_events_nor_audit_lines() {
    let rx = receiver("s3cret", StatusCode::OK).await;
    let server = serve(
        &[
            ("WEBHOOK_URL", rx.url.clone()),
            ("WEBHOOK_SECRET", "s3cret".into()),
            ("WARDEN_AUDIT", "stdout".into()),
            ("PII_TOKEN_SALT", "operator-salt".into()),
        ],
        &[],
    );
    let body = json!({"tool": "t", "raw_text": "note xyz-private-note", "user_id": "bob@corp.example",
        "corr_id": "ssn:123-45-6789", "tags": ["+14155550100"]});
    let resp = post_json(&server.base, "/api/v1/precheck", &body).await;
    assert_eq!(resp["decision"], "allow", "{resp}");
    let got = Arc::clone(&rx.got);
    tokio::task::spawn_blocking(move || wait_for(|| !got.lock().unwrap().is_empty())).await.unwrap();
    let audit = Arc::clone(&server.stdout);
    tokio::task::spawn_blocking(move || wait_for(|| !audit.lock().unwrap().is_empty())).await.unwrap();
    let event = rx.got.lock().unwrap()[0].to_string();
    let audit = server.stdout.lock().unwrap()[0].clone();
    for written in [&event, &audit] {
        for leak in ["bob@corp.example", "123-45-6789", "4155550100", "xyz-private-note"] {
            assert!(!written.contains(leak), "{leak} leaked: {written}");
        }
        assert!(written.contains("hmac-sha256:"), "{written}");
    }
    let event: Value = serde_json::from_str(&event).unwrap();
    assert!(event["data"].get("rawTextOut").is_none(), "{event}");
    assert_eq!(event["data"]["authentication"]["userId"], "<USER_EMAIL>");
    let audit: Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit["corr_id"], "ssn:<USER_SSN>");
    assert_eq!(audit["payload_hash"], event["data"]["payloadHash"], "one key for both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_land_in_the_dlq_and_replay_delivers_them() {
    let failing = receiver("s3cret", StatusCode::INTERNAL_SERVER_ERROR).await;
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.jsonl");
    let env = vec![
        ("WEBHOOK_URL", failing.url.clone()),
        ("WEBHOOK_SECRET", "s3cret".to_string()),
        ("WEBHOOK_MAX_RETRIES", "1".to_string()),
        ("WEBHOOK_BACKOFF_BASE_MS", "10".to_string()),
        ("PRECHECK_DLQ", dlq.display().to_string()),
    ];
    let server = serve(&env, &[]);
    let client = reqwest::Client::new();
    for i in 0..3 {
        let r = client
            .post(format!("{}/api/v1/postcheck", server.base))
            .json(&json!({"tool": "t", "raw_text": format!("row {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let path = dlq.clone();
    let count = move || std::fs::read_to_string(&path).map(|s| s.lines().count()).unwrap_or(0);
    let c = count.clone();
    tokio::task::spawn_blocking(move || wait_for(|| c() == 3)).await.unwrap();
    let line: Value = serde_json::from_str(std::fs::read_to_string(&dlq).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["attempts"], 2);
    let ready: Value = client.get(format!("{}/api/v1/ready", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["dlq"]["status"], "warning");
    drop(server);

    let healthy = receiver("s3cret", StatusCode::OK).await;
    let out = tokio::process::Command::new(BIN)
        .args(["dlq", "replay", "--file", dlq.to_str().unwrap()])
        .env("WEBHOOK_URL", &healthy.url)
        .env("WEBHOOK_SECRET", "s3cret")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 events, 3 delivered, 0 remaining"));
    assert_eq!(count(), 0);
    assert_eq!(healthy.got.lock().unwrap().len(), 3);
}

#[test]
fn audit_lines_one_per_request_without_raw_pii() {
    let server = serve(&[("WARDEN_AUDIT", "stdout".into())], &[]);
    let client = reqwest::blocking::Client::new();
    for text in ["SSN: 123-45-6789", "mail bob@corp.io", "nothing"] {
        let r = client
            .post(format!("{}/api/v1/precheck", server.base))
            .json(&json!({"tool": "t", "raw_text": text}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    wait_for(|| server.stdout.lock().unwrap().len() >= 3);
    let lines = server.stdout.lock().unwrap().clone();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert!(!l.contains("123-45-6789") && !l.contains("bob@corp.io"), "{l}");
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["operation"], "precheck");
    }
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["pii"]["us_ssn"], 1);
    let metrics = client.get(format!("{}/api/metrics", server.base)).send().unwrap().text().unwrap();
    assert!(metrics.contains("precheck_requests_total{"), "{metrics}");
    assert!(metrics.contains("pii_detections_total{"), "{metrics}");
}

#[test]
fn ready_is_503_when_a_store_is_down() {
    let Some(mut redis) = start_redis() else { return };
    let server = serve(&[("REDIS_URL", format!("redis://127.0.0.1:{}", redis.1))], &[]);
    let client = reqwest::blocking::Client::new();
    let ready = || client.get(format!("{}/api/v1/ready", server.base)).send().unwrap();
    assert_eq!(ready().status(), 200);
    let _ = redis.0.kill();
    let _ = redis.0.wait();
    wait_for(|| ready().status() == 503);
    let v: Value = ready().json().unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"]["stores"]["status"], "error");
    // Decisions still answer: the budget failure follows on_error (block → deny, on-error).
    let r: Value = client
        .post(format!("{}/api/v1/precheck", server.base))
        .json(&json!({"tool": "t", "raw_text": "x", "user_id": "u"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["decision"], "deny");
    assert_eq!(r["policy_id"], "on-error");
    assert_eq!(r["reasons"].as_array().unwrap().last().unwrap(), "error:budget_unavailable");
}

/// Group commit's guarantee: every spend that was answered is durable. The server is killed
/// with SIGKILL while requests are in flight; after a restart on the same data directory the
/// stored spend covers every acknowledged request (and at most the ones sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_spend_survives_kill_9() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let data = tempfile::tempdir().unwrap();
    let env = vec![
        ("BUDGET_DEFAULT_LIMIT", "1000".to_string()),
        ("RATE_LIMIT_PER_MINUTE", "0".to_string()),
        ("WARDEN_DATA_DIR", data.path().display().to_string()),
    ];
    let mut server = serve(&env, &[]);
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/precheck", server.base);
    let acked = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // 16 clients sending one request after another, so the kill lands mid-stream.
    for w in 0..16 {
        let (client, url, acked, sent) = (client.clone(), url.clone(), Arc::clone(&acked), Arc::clone(&sent));
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let body = json!({"tool": "shop.buy", "raw_text": "buy", "user_id": "buyer",
                    "corr_id": format!("k{w}-{i}"), "tool_config": {"metadata": {"purchase_amount": 0.01}}});
                sent.fetch_add(1, Ordering::SeqCst);
                let Ok(resp) = client.post(&url).json(&body).send().await else { return };
                match resp.json::<Value>().await {
                    Ok(v) if v["decision"] == "allow" => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        }));
    }
    wait_for(|| acked.load(Ordering::SeqCst) >= 300);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let (acked, sent) = (acked.load(Ordering::SeqCst), sent.load(Ordering::SeqCst));
    assert!(acked < 16 * 200, "the kill came after the last request");
    let restarted = serve(&env, &[]);
    let v = post_json(
        &restarted.base,
        "/api/v1/precheck",
        &json!({"tool": "shop.buy", "raw_text": "", "user_id": "buyer"}),
    )
    .await;
    let stored = v["budget_status"]["currentSpend"].as_f64().unwrap();
    let each = 0.01003;
    assert!(stored + 1e-9 >= acked as f64 * each, "lost acknowledged spend: {acked} acked, {stored} stored");
    assert!(stored <= sent as f64 * each + 1e-9, "{stored} stored for {sent} sent");
}
