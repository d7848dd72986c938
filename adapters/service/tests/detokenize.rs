//! Reversible tokens through the core: settings, the `encrypt` action in checks, refusals
//! without keys, `POST /api/v1/detokenize` and the envelope action, audit lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use axum::body::Body;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;
use warden_engine::{Keyring, PiiKind, PiiType};
use warden_service::audit::audit_line;
use warden_service::clock::FixedClock;
use warden_service::events::{HashKey, Scrubber};
use warden_service::policy_source::{Offered, PolicySource};
use warden_service::record::DecisionRecord;
use warden_service::router::{router, AppState};
use warden_service::service::{BuildError, Observer, ServiceBuilder};
use warden_service::settings::Settings;

/// 32 bytes 0..32 and 64 bytes 0..64, base64.
const K32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-Pw";
const EMAIL: &str = "alice@example.com";

const POLICY: &str = r#"
version: v1
tool_access:
  crm.lookup:
    action: redact
    allow_pii:
      PII:email_address: encrypt
"#;

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::from_lookup(move |k| map.get(k).cloned()).map_err(|e| e.to_string())
}

fn secured() -> Settings {
    settings(&[
        ("WARDEN_API_KEYS", "reader,writer"),
        ("PII_TOKEN_SALT", "s"),
        ("WARDEN_ENCRYPT_KEYS", &format!("k2:{K32}, k1:{K64}")),
        ("WARDEN_DETOKENIZE_KEYS", "reader"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("RATE_LIMIT_PER_KEY_PER_MINUTE", "0"),
    ])
    .unwrap()
}

/// Audit lines as the audit writer would print them.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Observer for Lines {
    fn observe(&self, record: &DecisionRecord) {
        let line = audit_line(record, &Scrubber::new(HashKey::from_secret("k")));
        self.0.lock().unwrap().push(line);
    }
}

fn app(settings: &Settings, policy: &str) -> (axum::Router, Arc<Lines>) {
    let lines = Arc::new(Lines::default());
    let source = Arc::new(PolicySource::parse(policy, "test.yaml").unwrap());
    let service = ServiceBuilder::from_settings(settings, source)
        .clock(Arc::new(FixedClock::new(1_700_000_000_000)))
        .observer(Arc::clone(&lines) as Arc<dyn Observer>)
        .build()
        .unwrap();
    let api_keys = Some(Arc::new(settings.api_keys.clone()));
    (router(AppState { service: Arc::new(service), api_keys, metrics: None }), lines)
}

async fn post(app: &axum::Router, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = http::Request::post(path);
    if let Some(k) = key {
        req = req.header("x-governs-key", k);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn email() -> PiiType {
    PiiType::Builtin(PiiKind::EmailAddress)
}

#[tokio::test]
async fn encrypt_then_detokenize_with_rotation_and_audit() {
    let (app, lines) = app(&secured(), POLICY);
    let text = format!("Customer {EMAIL} asked for a refund");
    let (status, body) =
        post(&app, "/api/v1/postcheck", &json!({"tool": "crm.lookup", "raw_text": text}), Some("writer")).await;
    assert_eq!(status, 200, "{body}");
    let out = body["raw_text_out"].as_str().unwrap().to_owned();
    assert!(out.starts_with("Customer encpii.k2.email_address.") && !out.contains(EMAIL), "{out}");
    assert_eq!(body["reasons"], json!(["pii.encrypted:PII:email_address"]));

    // Rotation: a token of the old key k1 still restores; one of a foreign key is kept.
    let old = Keyring::new("k1", &(0..64).collect::<Vec<u8>>()).unwrap().encrypt(&email(), "bob@corp.io").unwrap();
    let foreign = Keyring::new("k0", &[9u8; 32]).unwrap().encrypt(&email(), "eve@corp.io").unwrap();
    let token = out.split(' ').nth(1).unwrap();
    let mut tampered = token.to_owned();
    tampered.pop();
    tampered.push(if token.ends_with('a') { 'b' } else { 'a' });
    let message = format!("{out} | {old} | {foreign} | {tampered}");
    let (status, body) = post(&app, "/api/v1/detokenize", &json!({"raw_text": message}), Some("reader")).await;
    assert_eq!(status, 200, "{body}");
    let restored = body["raw_text"].as_str().unwrap();
    assert!(restored.starts_with(&format!("{text} | bob@corp.io | {foreign} | encpii.k2.")), "{restored}");
    assert_eq!(body["restored"], 2);
    assert_eq!(body["kept"], 2);
    assert_eq!(body["key_ids"], json!({"k2": 1, "k1": 1}));
    assert_eq!(
        body["reasons"],
        json!(["token.restored:PII:email_address", "token.kept:unknown_key_id", "token.kept:tampered"])
    );
    assert_eq!(body["kept_tokens"][0], json!({"token": foreign, "reason": "unknown_key_id"}));

    // JSON payloads: every string is restored, through the envelope too.
    let (status, body) =
        post(&app, "/", &json!({"action": "detokenize", "payload": {"to": out, "n": 1}}), Some("reader")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"], json!({"to": text, "n": 1}));
    assert!(body["request_id"].is_string());

    // Audit: one line per call, restored values nowhere, counts and key ids present.
    let lines = lines.0.lock().unwrap().clone();
    let detok: Vec<&String> = lines.iter().filter(|l| l.contains("\"operation\":\"detokenize\"")).collect();
    assert_eq!(detok.len(), 2, "{lines:?}");
    for line in &lines {
        for value in [EMAIL, "bob@corp.io"] {
            assert!(!line.contains(value), "{line}");
        }
    }
    let first: Value = serde_json::from_str(detok[0]).unwrap();
    assert_eq!(first["policy_id"], "detokenize");
    assert_eq!(first["pii"], json!({"email_address": 2}));
    let context: Value = serde_json::from_str(first["context"].as_str().unwrap()).unwrap();
    assert_eq!((context["restored"].clone(), context["kept"].clone()), (json!(2), json!(2)));
    assert_eq!(context["key_ids"], json!({"k2": 1, "k1": 1}));
}

#[tokio::test]
async fn only_listed_keys_may_detokenize() {
    let (app, lines) = app(&secured(), POLICY);
    let body = json!({"raw_text": "x"});
    assert_eq!(post(&app, "/api/v1/detokenize", &body, Some("writer")).await.0, 403);
    assert_eq!(post(&app, "/api/v1/detokenize", &body, None).await.0, 401);
    assert_eq!(post(&app, "/api/v1/detokenize", &body, Some("nope")).await.0, 401);
    // Refusals are audited as denied calls.
    let lines = lines.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("\"decision\":\"deny\"") && lines[0].contains("error:forbidden"), "{}", lines[0]);

    // Auth off: nobody may restore, even with token keys configured.
    let open = settings(&[("WARDEN_ENCRYPT_KEYS", &format!("k1:{K32}"))]).unwrap();
    let (app, _) = self::app(&open, POLICY);
    let (status, body) = post(&app, "/api/v1/detokenize", &json!({"raw_text": "x"}), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_field() {
    let (app, _) = app(&secured(), POLICY);
    for (body, field) in [
        (json!({}), "raw_text"),
        (json!({"raw_text": "a", "payload": {}}), "payload"),
        (json!({"raw_text": "a", "types": ["Email"]}), "types[0]"),
        (json!({"raw_text": "a", "types": vec!["t"; 65]}), "types"),
    ] {
        let (status, resp) = post(&app, "/api/v1/detokenize", &body, Some("reader")).await;
        assert_eq!((status, resp["error"]["field"].as_str()), (422, Some(field)), "{resp}");
    }
    let (status, resp) = post(&app, "/api/v1/detokenize", &json!({"raw_text": 3}), Some("reader")).await;
    assert_eq!(status, 422, "{resp}");
}

#[tokio::test]
async fn encrypt_without_keys_is_a_configuration_error() {
    let plain = settings(&[]).unwrap();
    // At start-up: the server policy encrypts.
    let source = Arc::new(PolicySource::parse(POLICY, "test.yaml").unwrap());
    let err = ServiceBuilder::from_settings(&plain, source).clock(Arc::new(FixedClock::new(0))).build().unwrap_err();
    assert_eq!(err, BuildError::NoEncryptKeys("tool_access.crm.lookup.allow_pii.PII:email_address".into()));
    assert!(err.to_string().contains("WARDEN_ENCRYPT_KEYS"));

    // For a request: 422 naming the field.
    let (app, _) = app(&plain, "version: v1\n");
    let req =
        json!({"tool": "t", "raw_text": EMAIL, "policy_config": {"defaults": {"ingress": {"action": "encrypt"}}}});
    let (status, body) = post(&app, "/api/v1/precheck", &req, None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "policy_config.defaults.ingress.action");

    // On reload: rejected, the last good policy stays.
    let source = Arc::new(PolicySource::parse("version: v1\n", "p.yaml").unwrap());
    let built = ServiceBuilder::from_settings(&plain, Arc::clone(&source)).clock(Arc::new(FixedClock::new(0))).build();
    assert!(built.is_ok());
    match source.offer(POLICY) {
        Offered::Rejected(e) => assert!(e.contains("tool_access.crm.lookup.allow_pii.PII:email_address"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(source.get().encrypt_field().is_none());
}

#[test]
fn settings_validate_keys_without_echoing_them() {
    for (pairs, variable) in [
        (vec![("WARDEN_ENCRYPT_KEYS", "k1:c2hvcnQ=")], "WARDEN_ENCRYPT_KEYS"),
        (vec![("WARDEN_ENCRYPT_KEYS", K32)], "WARDEN_ENCRYPT_KEYS"),
        (
            vec![("WARDEN_API_KEYS", "a"), ("WARDEN_DEV", "1"), ("WARDEN_DETOKENIZE_KEYS", "a")],
            "WARDEN_DETOKENIZE_KEYS",
        ),
    ] {
        let e = settings(&pairs).unwrap_err();
        assert!(e.starts_with(variable), "{e}");
        assert!(!e.contains("AAEC") && !e.contains("c2hvcnQ"), "{e}");
    }
    let printed = format!("{:?}", secured());
    assert!(printed.contains("key_ids: [\"k2\", \"k1\"]") && !printed.contains("AAEC"), "{printed}");
}

#[tokio::test]
async fn openapi_names_the_route() {
    let (app, _) = app(&secured(), POLICY);
    let resp = app.oneshot(http::Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(doc["paths"]["/api/v1/detokenize"]["post"]["responses"]["403"].is_object());
    assert!(doc["components"]["schemas"]["Invoke"]["properties"]["action"]["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("detokenize")));
}
