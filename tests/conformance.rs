//! Every conformance case through the engine directly and through the HTTP router over
//! loopback (a real TCP listener), comparing decision, raw_text_out, reasons and policy_id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;
use warden_engine::policy_file::parse_policy;
use warden_engine::{CheckRequest, CheckResponse, Detector, Direction, Gate, OnError, TokenKey};
use warden_service::clock::SystemClock;
use warden_service::native::load_policy;
use warden_service::router::{router, AppState};
use warden_service::service::ServiceBuilder;
use warden_service::settings::Settings;
use warden_tests::{compare, corpus_dir, load_all, shared_dir, Case};

#[test]
fn shared_corpus_copy_is_current() {
    let shared = shared_dir();
    if !shared.exists() {
        return;
    }
    for entry in std::fs::read_dir(&shared).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let ours = corpus_dir().join(name);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&ours).unwrap_or_default(),
            "tests/conformance/{} differs from ../shared/conformance: copy it again",
            name.to_string_lossy()
        );
    }
}

#[test]
fn corpus_is_not_empty() {
    let cases = load_all().unwrap();
    assert!(cases.iter().filter(|(f, _)| f == "cases.json").count() >= 20);
    assert!(cases.iter().filter(|(f, _)| f != "cases.json").count() >= 20);
}

fn direction(endpoint: &str) -> Direction {
    match endpoint {
        "postcheck" => Direction::Egress,
        _ => Direction::Ingress,
    }
}

#[test]
fn engine_passes_every_case() {
    let mut failures = Vec::new();
    let detector = Detector::new();
    for (file, case) in load_all().unwrap() {
        let policy_file =
            corpus_dir().join(case.env.get("POLICY_FILE").map_or("policy.tool_access.yaml", String::as_str));
        let text = std::fs::read_to_string(&policy_file).unwrap();
        let policy = parse_policy(&policy_file.display().to_string(), &text).unwrap();
        let key = TokenKey::new(case.env.get("PII_TOKEN_SALT").map_or("", String::as_str));
        let on_error = case.env.get("ON_ERROR").and_then(|v| OnError::from_name(v)).unwrap_or_default();
        let gate = Gate::new(&policy, &key, &detector).with_on_error(on_error);
        let req: CheckRequest = serde_json::from_value(case.request.clone()).unwrap();
        let resp = CheckResponse::from_verdict(gate.check(&req, direction(&case.endpoint)), 0);
        if let Err(e) = compare(&case, &serde_json::to_value(resp).unwrap()) {
            failures.push(format!("[{file}] {e}"));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

/// Starts the router on 127.0.0.1:0 with `env` as the whole environment.
async fn start(env: &BTreeMap<String, String>) -> String {
    let mut env = env.clone();
    if let Some(p) = env.get("POLICY_FILE").cloned() {
        env.insert("POLICY_FILE".into(), corpus_dir().join(p).display().to_string());
    }
    let lookup = move |k: &str| env.get(k).cloned();
    let settings = Settings::from_lookup(lookup).unwrap();
    let source = load_policy(settings.policy_file.as_deref()).unwrap();
    let service =
        ServiceBuilder::from_settings(&settings, Arc::new(source)).clock(Arc::new(SystemClock::new())).build().unwrap();
    let service = Arc::new(service);
    let app = router(AppState { service, api_keys: None, metrics: None });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn http_server_passes_every_case() {
    let client = reqwest::Client::new();
    let mut servers: BTreeMap<String, String> = BTreeMap::new();
    let mut failures = Vec::new();
    for (file, case) in load_all().unwrap() {
        let env_key = serde_json::to_string(&case.env).unwrap();
        if !servers.contains_key(&env_key) {
            let base = start(&case.env).await;
            servers.insert(env_key.clone(), base);
        }
        let base = &servers[&env_key];
        let got = post(&client, &format!("{base}/api/v1/{}", case.endpoint), &case.request).await;
        if let Err(e) = compare(&case, &got) {
            failures.push(format!("[{file}] route: {e}"));
        }
        // The same case through the invoke envelope.
        let mut envelope = case.request.clone();
        envelope["action"] = serde_json::json!(case.endpoint);
        let got = post(&client, &format!("{base}/"), &envelope).await;
        if let Err(e) = compare(&case, &got) {
            failures.push(format!("[{file}] envelope: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

async fn post(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> serde_json::Value {
    let resp = client.post(url).json(body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn http_batch_matches_single_requests() {
    let cases: Vec<Case> =
        load_all().unwrap().into_iter().map(|(_, c)| c).filter(|c| !c.env.contains_key("ON_ERROR")).collect();
    let base = start(&cases[0].env).await;
    let requests: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let mut r = c.request.clone();
            r["action"] = serde_json::json!(c.endpoint);
            r
        })
        .collect();
    let client = reqwest::Client::new();
    let got = post(&client, &format!("{base}/api/v1/batch"), &serde_json::json!({ "requests": requests })).await;
    assert_eq!(got["processed"], cases.len());
    for (i, c) in cases.iter().enumerate() {
        if c.env.get("POLICY_FILE") != cases[0].env.get("POLICY_FILE") {
            continue;
        }
        compare(c, &got["results"][i]["result"]).unwrap();
    }
}
