//! Regressions of the hostile-client findings (docs/security.md): a request must not crash,
//! stall or bypass Warden. Each test failed on the code before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use axum::body::Body;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tower::ServiceExt;
use warden_engine::budget::{Money, PriceTable};
use warden_service::budget::{BudgetStore, MemoryBudgetStore, SpendRequest, SqliteBudgetStore};
use warden_service::clock::FixedClock;
use warden_service::policy_source::PolicySource;
use warden_service::ratelimit::MemoryRateLimiter;
use warden_service::router::{router, AppState, ClientAddr};
use warden_service::service::{Budgets, Service, ServiceBuilder};
use warden_service::settings::Settings;

fn settings(pairs: &[(&str, &str)]) -> Settings {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::from_lookup(move |k| map.get(k).cloned()).unwrap()
}

fn service(pairs: &[(&str, &str)]) -> ServiceBuilder {
    ServiceBuilder::from_settings(&settings(pairs), Arc::new(PolicySource::bundled().unwrap()))
        .clock(Arc::new(FixedClock::new(1_700_000_000_000)))
}

async fn post(app: &axum::Router, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = http::Request::post(path);
    if let Some(k) = key {
        req = req.header("x-governs-key", k);
    }
    let mut req = req.body(Body::from(body.to_string())).unwrap();
    req.extensions_mut().insert(ClientAddr("198.51.100.20".parse::<IpAddr>().unwrap()));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn app(service: Service, keys: Option<&str>) -> axum::Router {
    let api_keys = keys.map(|k| Arc::new(warden_service::auth::ApiKeys::from_env_value(k).unwrap()));
    router(AppState { service: Arc::new(service), api_keys, metrics: None })
}

/// Finding 1: one request could exhaust memory through `policy_config.custom_pii`.
#[tokio::test]
async fn custom_recognizers_are_capped_and_refused_with_422() {
    let app = app(service(&[]).build().unwrap(), None);
    let many: Vec<Value> = (0..120).map(|i| json!({"type": format!("t{i}"), "pattern": "."})).collect();
    let text = "x".repeat(300_000);
    let (status, body) = post(
        &app,
        "/api/v1/precheck",
        &json!({"tool": "t", "raw_text": text, "policy_config": {"custom_pii": many}}),
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "policy_config.custom_pii");
    // At the cap, the worst pattern over a large text answers, with memory bounded by the
    // selection (one match per character at most), not by recognizers × matches.
    let cap: Vec<Value> = (0..32).map(|i| json!({"type": format!("t{i}"), "pattern": "."})).collect();
    let (status, body) = post(
        &app,
        "/api/v1/precheck",
        &json!({"tool": "t", "raw_text": "y".repeat(20_000),
            "policy_config": {"custom_pii": cap, "defaults": {"ingress": {"action": "redact"}}}}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "transform");
    assert_eq!(body["raw_text_out"].as_str().map(|t| t.matches("<T0>").count()), Some(20_000));
}

/// Finding 3: a caller could switch governance off with its own `policy_config`.
#[tokio::test]
async fn request_policies_are_the_operators_choice() {
    let bypass = json!({"tool": "python.exec", "raw_text": "ssn 123-45-6789",
        "policy_config": {"deny_tools": [], "defaults": {"ingress": {"action": "pass_through"}}}});
    // replace (the default, SPEC §3): today's behaviour.
    let replace = app(service(&[]).build().unwrap(), None);
    let (_, body) = post(&replace, "/api/v1/precheck", &bypass, None).await;
    assert_eq!(body["decision"], "allow", "{body}");
    // tighten: never less strict than the server policy.
    let tighten = app(service(&[("WARDEN_REQUEST_POLICY", "tighten")]).build().unwrap(), None);
    let (_, body) = post(&tighten, "/api/v1/precheck", &bypass, None).await;
    assert_eq!(body["decision"], "deny", "{body}");
    assert!(body["raw_text_out"].is_null());
    let laxer = json!({"tool": "t", "raw_text": "ssn 123-45-6789",
        "policy_config": {"defaults": {"ingress": {"action": "pass_through"}}}});
    let (_, body) = post(&tighten, "/api/v1/precheck", &laxer, None).await;
    assert_eq!(body["raw_text_out"], "ssn <USER_SSN>", "{body}");
    // A stricter request policy still applies.
    let stricter = json!({"tool": "t", "raw_text": "mail a@b.io",
        "policy_config": {"defaults": {"ingress": {"action": "deny"}}}});
    let (_, body) = post(&tighten, "/api/v1/precheck", &stricter, None).await;
    assert_eq!(body["decision"], "deny", "{body}");
    // An invalid request policy cannot weaken the server's ON_ERROR=block.
    let invalid = json!({"tool": "t", "raw_text": "ssn 123-45-6789", "policy_config": {"on_error": "pass", "x": 1}});
    let (_, body) = post(&tighten, "/api/v1/precheck", &invalid, None).await;
    assert_eq!(body["decision"], "deny", "{body}");
    let (_, body) = post(&replace, "/api/v1/precheck", &invalid, None).await;
    assert_eq!(body["decision"], "allow", "replace keeps GovernsAI's on_error: {body}");
    // off: refused.
    let off = app(service(&[("WARDEN_REQUEST_POLICY", "off")]).build().unwrap(), None);
    let (status, body) = post(&off, "/api/v1/precheck", &bypass, None).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "policy_config_disabled");
    let (status, _) =
        post(&off, "/api/v1/evaluate", &json!({"agent_id": "a", "payload": {}, "policy_config": {}}), None).await;
    assert_eq!(status, 422);
}

/// Finding 4: identifiers are bounded and scoped by the caller.
#[tokio::test]
async fn identifiers_are_bounded() {
    let app = app(service(&[]).build().unwrap(), None);
    for (field, value) in [
        ("user_id", json!("u".repeat(1_000_000))),
        ("corr_id", json!("c".repeat(300))),
        ("tool", json!("t\u{0}x")),
        ("tags", json!((0..40).map(|i| format!("t{i}")).collect::<Vec<_>>())),
    ] {
        let mut req = json!({"tool": "t", "raw_text": "x"});
        req[field] = value;
        let (status, body) = post(&app, "/api/v1/precheck", &req, None).await;
        assert_eq!(status, 422, "{field}: {body}");
        assert_eq!(body["error"]["field"], field);
    }
}

#[tokio::test]
async fn budgets_and_limits_are_scoped_by_the_callers_key() {
    let store = Arc::new(MemoryBudgetStore::new(Money::from_dollars(1.0)));
    let s = service(&[("PII_TOKEN_SALT", "s"), ("WARDEN_API_KEYS", "key-a,key-b")])
        .budgets(Budgets { store: store.clone(), prices: PriceTable::builtin() })
        .build()
        .unwrap();
    let app = app(s, Some("key-a,key-b"));
    let req = json!({"tool": "t", "raw_text": "hello ".repeat(2000), "user_id": "alice"});
    let (_, a) = post(&app, "/api/v1/precheck", &req, Some("key-a")).await;
    let (_, b) = post(&app, "/api/v1/precheck", &req, Some("key-b")).await;
    let spent = |v: &Value| v["budget_status"]["currentSpend"].as_f64().unwrap();
    assert!(spent(&a) > 0.0);
    assert_eq!(spent(&b), spent(&a), "key B's alice is not key A's alice: {a} {b}");
}

#[tokio::test]
async fn rotating_user_ids_does_not_escape_the_per_caller_limit() {
    let per_caller = Arc::new(MemoryRateLimiter::new(std::num::NonZeroU32::new(3).unwrap()));
    let s = service(&[]).caller_rate_limiter(per_caller).build().unwrap();
    let app = app(s, None);
    let mut statuses = Vec::new();
    for i in 0..5 {
        let req = json!({"tool": "t", "raw_text": "x", "user_id": format!("rotating-{i}")});
        statuses.push(post(&app, "/api/v1/precheck", &req, None).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn no_budget_row_for_a_user_who_spent_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budgets.sqlite3");
    let store = SqliteBudgetStore::open(&path, Money::from_dollars(1.0)).unwrap();
    for i in 0..50 {
        let req = SpendRequest {
            user: format!("ghost-{i}"),
            llm: Money::from_dollars(0.01),
            purchase: Money::from_dollars(0.0),
            tool: String::from("t"),
            corr_id: None,
            record: false,
        };
        store.check_and_spend(req, 1_700_000_000).await.unwrap();
        store.status(&format!("other-{i}"), 1_700_000_000).await.unwrap();
    }
    // The store owns its file while open: read it as after a shutdown.
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM budgets", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0);
}

/// Finding 11: with auth on, readiness tells an anonymous caller only ready or not.
#[tokio::test]
async fn readiness_details_need_a_key_when_auth_is_on() {
    let app = app(service(&[("PII_TOKEN_SALT", "s"), ("WARDEN_API_KEYS", "k1")]).build().unwrap(), Some("k1"));
    let get = |key: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut req = http::Request::get("/api/v1/ready");
            if let Some(k) = key {
                req = req.header("x-governs-key", k);
            }
            let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    assert_eq!(get(None).await, json!({"ready": true}));
    assert!(get(Some("k1")).await["checks"]["environment"].is_object());
}

/// Finding 2 (serving side): large bodies are governed on the blocking pool; the answer is
/// the same as inline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_governed_off_the_async_workers_with_the_same_answer() {
    let app = app(service(&[]).build().unwrap(), None);
    let big = format!("{} ssn 123-45-6789", "lorem ipsum ".repeat(10_000));
    assert!(big.len() > warden_service::router::HEAVY_BYTES);
    let (status, body) = post(&app, "/api/v1/precheck", &json!({"tool": "t", "raw_text": big}), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["raw_text_out"].as_str().unwrap().ends_with("ssn <USER_SSN>"));
    let (status, health) = post(&app, "/", &json!({"action": "health"}), None).await;
    assert_eq!((status, &health["status"]), (200, &json!("healthy")));
}

/// A key repeated inside `policy_config` or `tool_config` is as ambiguous as one at the top
/// level: the typed fast path must refuse it like the strict reader does.
#[tokio::test]
async fn a_key_repeated_inside_a_request_policy_is_refused() {
    let app = app(service(&[]).build().unwrap(), None);
    for (body, key) in [
        (r#"{"tool":"t","raw_text":"x","policy_config":{"version":"v1","version":"v1"}}"#, "version"),
        (r#"{"tool":"t","raw_text":"x","tool_config":{"a":{"b":1,"b":2}}}"#, "b"),
    ] {
        for path in ["/api/v1/precheck", "/api/v1/postcheck"] {
            let mut req = http::Request::post(path).body(Body::from(body)).unwrap();
            req.extensions_mut().insert(ClientAddr("198.51.100.20".parse::<IpAddr>().unwrap()));
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status().as_u16(), 400, "{path} {body}");
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            let answer: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(answer["error"]["code"], "invalid_json", "{answer}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(key), "{message}");
        }
    }
}
