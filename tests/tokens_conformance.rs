//! Conformance of reversible tokens (SPEC §5a), both directions: `tests/conformance/tokens/`
//! holds cases whose expected tokens were computed by an independent AES-SIV implementation
//! from the fixed keys in each case's `env`, so they pin the token format byte for byte.
//!
//! A case is `{name, endpoint, env, api_key, request, status, expect}`: `endpoint` is an
//! operation (`precheck`, `postcheck`, `detokenize`), `env` the server's whole environment
//! (`POLICY_FILE` relative to the folder), `api_key` the `X-Governs-Key` sent (or null),
//! `status` the HTTP status and `expect` a subset of the response body (objects match key by
//! key, everything else exactly). Every case runs over loopback HTTP on its route and through
//! the invoke envelope; the check cases with status 200 also run through the engine directly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use warden_engine::{CheckRequest, CheckResponse, Detector, Direction, Gate, PolicyMode};
use warden_service::clock::SystemClock;
use warden_service::native::load_policy;
use warden_service::router::{router, AppState};
use warden_service::service::ServiceBuilder;
use warden_service::settings::{RequestPolicyMode, Settings};

#[derive(Debug, Deserialize)]
struct TokenCase {
    name: String,
    endpoint: String,
    env: BTreeMap<String, String>,
    api_key: Option<String>,
    request: Value,
    status: u16,
    expect: Value,
}

fn dir() -> PathBuf {
    warden_tests::corpus_dir().join("tokens")
}

fn cases() -> Vec<TokenCase> {
    let text = std::fs::read_to_string(dir().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn settings(env: &BTreeMap<String, String>) -> Settings {
    let mut env = env.clone();
    if let Some(p) = env.get("POLICY_FILE").cloned() {
        env.insert("POLICY_FILE".into(), dir().join(p).display().to_string());
    }
    Settings::from_lookup(move |k| env.get(k).cloned()).unwrap()
}

/// `Err` names every place where `got` does not contain `want`.
fn contains(path: &str, want: &Value, got: &Value, diffs: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                contains(&format!("{path}.{k}"), v, g.get(k).unwrap_or(&Value::Null), diffs);
            }
        }
        _ if want == got => {}
        _ => diffs.push(format!("{path}: want {want}, got {got}")),
    }
}

fn check(case: &TokenCase, via: &str, status: u16, body: &Value) -> Option<String> {
    let mut diffs = Vec::new();
    if status != case.status {
        diffs.push(format!("status: want {}, got {status}", case.status));
    }
    contains("", &case.expect, body, &mut diffs);
    (!diffs.is_empty()).then(|| format!("{} ({via}): {}\n  body: {body}", case.name, diffs.join("; ")))
}

async fn start(env: &BTreeMap<String, String>) -> String {
    let settings = settings(env);
    let source = load_policy(settings.policy_file.as_deref()).unwrap();
    let service =
        ServiceBuilder::from_settings(&settings, Arc::new(source)).clock(Arc::new(SystemClock::new())).build().unwrap();
    let app = router(AppState {
        service: Arc::new(service),
        api_keys: Some(Arc::new(settings.api_keys.clone())),
        metrics: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn post(client: &reqwest::Client, url: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client.post(url).json(body);
    if let Some(k) = key {
        req = req.header("x-governs-key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[test]
fn corpus_covers_both_directions() {
    let cases = cases();
    let count = |f: &dyn Fn(&TokenCase) -> bool| cases.iter().filter(|c| f(c)).count();
    assert!(count(&|c| c.endpoint != "detokenize") >= 4);
    assert!(count(&|c| c.endpoint == "detokenize" && c.status == 200) >= 6);
    assert!(count(&|c| c.status == 403) >= 2);
    for reason in ["token.kept:tampered", "token.kept:unknown_key_id"] {
        assert!(cases.iter().any(|c| c.expect["reasons"].as_array().is_some_and(|r| r.contains(&json!(reason)))));
    }
}

#[tokio::test]
async fn http_server_passes_every_token_case() {
    let client = reqwest::Client::new();
    let mut servers: BTreeMap<String, String> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in cases() {
        let env_key = serde_json::to_string(&case.env).unwrap();
        if !servers.contains_key(&env_key) {
            let base = start(&case.env).await;
            servers.insert(env_key.clone(), base);
        }
        let base = &servers[&env_key];
        let key = case.api_key.as_deref();
        let (status, body) = post(&client, &format!("{base}/api/v1/{}", case.endpoint), key, &case.request).await;
        failures.extend(check(&case, "route", status, &body));
        let mut envelope = case.request.clone();
        envelope["action"] = json!(case.endpoint);
        let (status, body) = post(&client, &format!("{base}/"), key, &envelope).await;
        failures.extend(check(&case, "envelope", status, &body));
    }
    assert!(failures.is_empty(), "{} failing:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn engine_passes_every_check_case() {
    let detector = Detector::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases().into_iter().filter(|c| c.endpoint != "detokenize" && c.status == 200) {
        let settings = settings(&case.env);
        let source = load_policy(settings.policy_file.as_deref()).unwrap();
        let policy = source.get();
        let key = settings.token_key();
        let keyring = settings.encrypt_keys.clone().unwrap();
        let mode = if settings.request_policy == RequestPolicyMode::Tighten {
            PolicyMode::Tighten
        } else {
            PolicyMode::Replace
        };
        let gate = Gate::new(&policy, &key, &detector).with_keyring(&keyring).with_mode(mode);
        let req: CheckRequest = serde_json::from_value(case.request.clone()).unwrap();
        let direction = if case.endpoint == "postcheck" { Direction::Egress } else { Direction::Ingress };
        let resp = serde_json::to_value(CheckResponse::from_verdict(gate.check(&req, direction), 0)).unwrap();
        failures.extend(check(&case, "engine", 200, &resp));
        ran += 1;
    }
    assert!(ran >= 4);
    assert!(failures.is_empty(), "{} failing:\n{}", failures.len(), failures.join("\n"));
}
