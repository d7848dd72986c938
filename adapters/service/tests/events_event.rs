//! The `decision.v1` event, timestamps, signatures, gateway URLs and configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod events_support;

use events_support::record;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use warden_engine::{Decision, PolicyId};
use warden_service::events::{
    idempotency_key, iso8601_utc_ms, payload_hash, redact_url, sign, verify, EventBuilder, EventOptions, EventsConfig,
    GatewayUrl, HashKey, VerifyError,
};

fn decision_event(record: &warden_service::record::DecisionRecord, options: &EventOptions) -> Value {
    EventBuilder::new(options.clone()).event(record)
}

fn decision_event_json(record: &warden_service::record::DecisionRecord, options: &EventOptions) -> String {
    EventBuilder::new(options.clone()).json(record)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The payload hash as SPEC §7 defines it, computed independently of the crate:
/// `hmac-sha256:` + hex HMAC-SHA256(HMAC-SHA256(secret, "warden/decision-hash/v1"), text).
fn expected_payload_hash(secret: &str, text: &str) -> String {
    let key = hmac(secret.as_bytes(), b"warden/decision-hash/v1");
    format!("hmac-sha256:{}", hex(&hmac(&key, text.as_bytes())))
}

#[test]
fn iso8601_from_unix_millis() {
    let cases = [
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
        (1_795_321_920_123, "2026-11-22T04:32:00.123Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
    ];
    for (ms, expected) in cases {
        assert_eq!(iso8601_utc_ms(ms), expected, "{ms}");
    }
    // Extremes do not panic.
    iso8601_utc_ms(i64::MAX);
    iso8601_utc_ms(i64::MIN);
}

#[test]
fn event_has_the_ingest_shape() {
    let rec = record("req-123");
    let event = decision_event(&rec, &EventOptions::default());
    assert_eq!(event["type"], "INGEST");
    assert_eq!(event["channel"], "org:acme:decisions");
    assert_eq!(event["schema"], "decision.v1");
    assert_eq!(event["idempotencyKey"].as_str().unwrap().len(), 64);

    let data = &event["data"];
    assert_eq!(data["orgId"], "acme");
    assert_eq!(data["direction"], "ingress");
    assert_eq!(data["decision"], "transform");
    assert_eq!(data["tool"], "verify_identity");
    assert_eq!(data["scope"], "net.external");
    assert!(data.get("rawTextOut").is_none(), "output text only with EVENTS_INCLUDE_RAW_TEXT");
    assert_eq!(data["reasons"], serde_json::json!(["pii.redacted:PII:us_ssn"]));
    assert_eq!(
        data["detectorSummary"],
        serde_json::json!({
            "reasons": ["pii.redacted:PII:us_ssn"],
            "confidence": 1.0,
            "piiDetected": ["us_ssn"],
        })
    );
    let expected_hash = expected_payload_hash(warden_service::settings::DEFAULT_SALT, &rec.raw_text);
    assert_eq!(data["payloadHash"], expected_hash.as_str());
    assert_eq!(payload_hash(&HashKey::default(), &rec.raw_text), expected_hash);
    let unkeyed = hex(&Sha256::digest(rec.raw_text.as_bytes()));
    assert!(!event.to_string().contains(&unkeyed), "no unkeyed hash of the input");
    assert_eq!(data["latencyMs"], 1.25);
    assert_eq!(data["correlationId"], "req-123");
    assert_eq!(data["tags"], serde_json::json!(["test"]));
    assert_eq!(data["ts"], "2026-11-22T04:32:00.123Z");
    assert_eq!(data["authentication"], serde_json::json!({"userId": "u1"}));
    assert_eq!(data["policyId"], "tool-access");
}

#[test]
fn raw_text_only_when_enabled() {
    let rec = record("req-raw");
    let without = decision_event_json(&rec, &EventOptions::default());
    assert!(!without.contains("rawText\""), "{without}");
    assert!(!without.contains("123-45-6789"), "raw PII leaked: {without}");
    let parsed: Value = serde_json::from_str(&without).unwrap();
    assert!(parsed["data"].get("rawText").is_none());

    let options = EventOptions { include_raw_text: true, ..EventOptions::default() };
    let with = decision_event(&rec, &options);
    assert_eq!(with["data"]["rawText"], "my ssn is 123-45-6789");
    assert_eq!(with["data"]["rawTextOut"], "my ssn is <USER_SSN>");
    // One line, ready for JSONL and text frames.
    assert!(!decision_event_json(&rec, &options).contains('\n'));
}

#[test]
fn deny_has_null_output_and_missing_fields_are_null() {
    let mut rec = record("x");
    rec.decision = Decision::Deny;
    rec.policy_id = PolicyId::DenyExec;
    rec.raw_text_out = None;
    rec.corr_id = None;
    rec.user_id = None;
    rec.org_id = None;
    let event = decision_event(&rec, &EventOptions::default());
    let data = &event["data"];
    assert!(data.get("rawTextOut").is_none());
    let raw = decision_event(&rec, &EventOptions { include_raw_text: true, ..EventOptions::default() });
    assert_eq!(raw["data"]["rawTextOut"], Value::Null, "a deny has no output");
    assert_eq!(data["correlationId"], Value::Null);
    assert_eq!(data["authentication"]["userId"], Value::Null);
    assert_eq!(data["orgId"], "default");
    assert_eq!(event["channel"], "org:default:decisions");
    assert_eq!(data["policyId"], "deny-exec");
}

#[test]
fn org_and_channel_fall_back_to_options() {
    let mut rec = record("x");
    rec.org_id = None;
    let options = EventOptions {
        include_raw_text: false,
        org_id: Some("org-from-url".to_owned()),
        channel: Some("org:org-from-url:decisions".to_owned()),
        ..EventOptions::default()
    };
    let event = decision_event(&rec, &options);
    assert_eq!(event["data"]["orgId"], "org-from-url");
    assert_eq!(event["channel"], "org:org-from-url:decisions");
    // The record's own org wins over the URL's.
    let event = decision_event(&record("x"), &options);
    assert_eq!(event["data"]["orgId"], "acme");
}

#[test]
fn idempotency_key_is_stable_and_distinguishes_requests() {
    let rec = record("req-1");
    let hash_key = HashKey::default();
    let key = idempotency_key(&rec, &hash_key);
    assert_eq!(key, idempotency_key(&rec.clone(), &hash_key));
    assert_ne!(key, idempotency_key(&rec, &HashKey::from_secret("another secret")), "keyed");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    // Building the event twice (a retry or a replay) keeps the key.
    let first = decision_event(&rec, &EventOptions::default());
    let again = decision_event(&rec, &EventOptions::default());
    assert_eq!(first["idempotencyKey"], again["idempotencyKey"]);
    assert_eq!(first["idempotencyKey"], key.as_str());

    let mut other_op = rec.clone();
    other_op.operation = "postcheck";
    let mut other_ts = rec.clone();
    other_ts.ts_unix_ms += 1;
    let mut other_corr = rec.clone();
    other_corr.corr_id = Some("req-2".to_owned());
    let mut other_text = rec.clone();
    other_text.raw_text.push('!');
    let mut no_corr = rec.clone();
    no_corr.corr_id = None;
    let mut no_corr_other_text = no_corr.clone();
    no_corr_other_text.raw_text.push('?');
    let keys: Vec<String> = [&rec, &other_op, &other_ts, &other_corr, &other_text, &no_corr, &no_corr_other_text]
        .iter()
        .map(|r| idempotency_key(r, &hash_key))
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
}

#[test]
fn api_keys_never_reach_events() {
    // Whatever the policy did with it, a provider key in the output is masked in events.
    let secret_key = "sk-proj-4fJ8kQ2mZx9LpR7tV3nB6cW1yH5dE0aG";
    let mut rec = record("req-key");
    rec.raw_text = format!("use {secret_key} please");
    rec.raw_text_out = Some(format!("use {secret_key} please"));
    let found = warden_engine::Detector::new().detect(&rec.raw_text);
    assert!(
        found.iter().any(|f| f.kind == warden_engine::PiiKind::ApiKey),
        "the detector must recognise the sample key: {found:?}"
    );
    let options = EventOptions { include_raw_text: true, ..EventOptions::default() };
    let json = decision_event_json(&rec, &options);
    assert!(!json.contains(secret_key), "{json}");
    let event: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(event["data"]["rawText"], "use <API_KEY> please");
    assert_eq!(event["data"]["rawTextOut"], "use <API_KEY> please");
}

#[test]
fn signature_is_hmac_sha256_of_timestamp_dot_body() {
    let body = br#"{"type":"INGEST","n":1}"#;
    // Key lengths around the SHA-256 block size (64): short keys are padded, long ones hashed.
    for key_len in [0usize, 5, 63, 64, 65, 131] {
        let secret: Vec<u8> = (0..key_len).map(|i| i as u8 ^ 0xaa).collect();
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(b"1700000000.");
        mac.update(body);
        let expected = format!("sha256={}", hex(&mac.finalize().into_bytes()));
        assert_eq!(sign(&secret, 1_700_000_000, body), expected, "key length {key_len}");
    }
}

#[test]
fn verify_accepts_fresh_and_rejects_tampered_stale_or_malformed() {
    let secret = b"s3cret";
    let body = br#"{"a":1}"#;
    let ts = 1_700_000_000u64;
    let signature = sign(secret, ts, body);
    let now = ts + 10;

    assert_eq!(verify(secret, "1700000000", &signature, body, now, 300), Ok(()));
    assert_eq!(verify(secret, " 1700000000 ", &format!(" {signature} "), body, now, 300), Ok(()));
    assert_eq!(verify(secret, "1700000000", &signature, br#"{"a":2}"#, now, 300), Err(VerifyError::SignatureMismatch));
    assert_eq!(verify(b"other", "1700000000", &signature, body, now, 300), Err(VerifyError::SignatureMismatch));
    // The timestamp is signed: moving it breaks the signature.
    assert_eq!(verify(secret, "1700000001", &signature, body, now, 300), Err(VerifyError::SignatureMismatch));
    assert_eq!(
        verify(secret, "1700000000", &signature, body, ts + 301, 300),
        Err(VerifyError::StaleTimestamp { age_secs: 301 })
    );
    assert_eq!(
        verify(secret, "1700000000", &signature, body, ts - 301, 300),
        Err(VerifyError::StaleTimestamp { age_secs: -301 })
    );
    assert_eq!(verify(secret, "yesterday", &signature, body, now, 300), Err(VerifyError::MalformedTimestamp));
    let bare = signature.trim_start_matches("sha256=");
    assert_eq!(verify(secret, "1700000000", bare, body, now, 300), Err(VerifyError::MalformedSignature));
    assert_eq!(verify(secret, "1700000000", "sha256=zz", body, now, 300), Err(VerifyError::MalformedSignature));
    let upper = format!("sha256={}", bare.to_uppercase());
    assert_eq!(verify(secret, "1700000000", &upper, body, now, 300), Ok(()));
}

#[test]
fn gateway_url_parsing_and_redaction() {
    let url =
        "wss://gw.example.com/ws?key=gai%2Bkey%3D1&org=acme&channels=org%3Aacme%3Adecisions%2C+org:acme:usage#frag";
    let gateway = GatewayUrl::parse(url);
    assert_eq!(gateway.key(), Some("gai+key=1"));
    assert_eq!(gateway.org(), Some("acme"));
    assert_eq!(gateway.channels(), ["org:acme:decisions", "org:acme:usage"]);
    assert_eq!(gateway.decisions_channel(), Some("org:acme:decisions"));
    assert_eq!(gateway.connect_url(), url);
    let shown = format!("{gateway:?} {gateway}");
    assert!(!shown.contains("gai%2Bkey") && !shown.contains("gai+key"), "{shown}");

    let none = GatewayUrl::parse("ws://localhost:8080/ws");
    assert_eq!((none.key(), none.org(), none.decisions_channel()), (None, None, None));

    assert_eq!(
        redact_url("https://user:pw@hooks.example.com/h?Token=abc&x=1&api_key=zz"),
        "https://user:***@hooks.example.com/h?Token=***&x=1&api_key=***"
    );
    assert_eq!(redact_url("http://h/p"), "http://h/p");
}

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn config_defaults_match_the_spec() {
    let config = EventsConfig::from_lookup(lookup(&[])).unwrap();
    assert_eq!(config.webhook_url, None);
    assert_eq!(config.webhook_secret, "dev-secret");
    assert!(config.uses_default_secret());
    assert_eq!(config.timeout, Duration::from_millis(2_500));
    assert_eq!(config.dispatcher.retry.max_retries, 3);
    assert_eq!(config.dispatcher.retry.backoff_base, Duration::from_millis(150));
    assert!((config.dispatcher.retry.jitter - 0.2).abs() < f64::EPSILON);
    assert_eq!(config.dispatcher.queue_capacity, 10_000);
    assert_eq!(config.dispatcher.concurrency, 32);
    assert_eq!(config.dispatcher.queue_bytes, 64 * 1024 * 1024);
    assert_eq!(config.hash_key, HashKey::default());
    assert_eq!(config.dlq_path, std::path::Path::new("./data/dlq.jsonl"));
    assert!(!config.include_raw_text);
    assert!(config.sink().unwrap().is_none(), "no URL: events are off");
}

#[test]
fn config_reads_every_variable() {
    let config = EventsConfig::from_lookup(lookup(&[
        ("WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        ("WEBHOOK_SECRET", "real-secret"),
        ("WEBHOOK_TIMEOUT_S", "0.75"),
        ("WEBHOOK_MAX_RETRIES", "5"),
        ("WEBHOOK_BACKOFF_BASE_MS", "20"),
        ("PRECHECK_DLQ", "/var/lib/warden/dead.jsonl"),
        ("EVENTS_INCLUDE_RAW_TEXT", "TRUE"),
        ("WARDEN_EVENTS_QUEUE_CAPACITY", "64"),
        ("WARDEN_EVENTS_CONCURRENCY", "4"),
        ("WARDEN_EVENTS_QUEUE_BYTES", "65536"),
        ("PII_TOKEN_SALT", "operator-salt"),
    ]))
    .unwrap();
    assert_eq!(config.dispatcher.queue_bytes, 65_536);
    assert_eq!(config.hash_key, HashKey::from_secret("operator-salt"));
    assert_eq!(config.event_options().hash_key, config.hash_key);
    assert_eq!(config.webhook_url.as_deref(), Some("http://127.0.0.1:9/hook"));
    assert!(!config.uses_default_secret());
    assert_eq!(config.timeout, Duration::from_millis(750));
    assert_eq!(config.dispatcher.retry.max_retries, 5);
    assert_eq!(config.dispatcher.retry.backoff_base, Duration::from_millis(20));
    assert_eq!(config.dlq_path, std::path::Path::new("/var/lib/warden/dead.jsonl"));
    assert!(config.include_raw_text);
    assert!(config.event_options().include_raw_text);
    assert_eq!(config.dispatcher.queue_capacity, 64);
    assert_eq!(config.dispatcher.concurrency, 4);
    assert!(config.sink().unwrap().is_some());

    let data_dir = EventsConfig::from_lookup(lookup(&[("WARDEN_DATA_DIR", "/srv/data")])).unwrap();
    assert_eq!(data_dir.dlq_path, std::path::Path::new("/srv/data/dlq.jsonl"));
}

#[test]
fn config_errors_name_the_variable_and_never_echo_values() {
    for (var, value) in [
        ("WEBHOOK_URL", "ftp://x?key=leak-me"),
        ("WEBHOOK_TIMEOUT_S", "-1"),
        ("WEBHOOK_TIMEOUT_S", "soon"),
        ("WEBHOOK_MAX_RETRIES", "-2"),
        ("WEBHOOK_BACKOFF_BASE_MS", "1.5"),
        ("EVENTS_INCLUDE_RAW_TEXT", "maybe"),
        ("WARDEN_EVENTS_QUEUE_CAPACITY", "0"),
        ("WARDEN_EVENTS_CONCURRENCY", "0"),
        ("WARDEN_EVENTS_QUEUE_BYTES", "0"),
    ] {
        let error = EventsConfig::from_lookup(lookup(&[(var, value)])).unwrap_err();
        assert_eq!(error.variable, var);
        assert!(!error.to_string().contains("leak-me"), "{error}");
    }
}

#[test]
fn config_debug_hides_secrets() {
    let config = EventsConfig::from_lookup(lookup(&[
        ("WEBHOOK_URL", "ws://gw:1/ws?key=gai-secret-key&org=acme"),
        ("WEBHOOK_SECRET", "hmac-secret"),
        ("PII_TOKEN_SALT", "salt-secret"),
    ]))
    .unwrap();
    let debug = format!("{config:?} {:?}", config.event_options());
    assert!(!debug.contains("salt-secret"), "{debug}");
    let key_bytes = hmac(b"salt-secret", b"warden/decision-hash/v1");
    assert!(!debug.contains(&hex(&key_bytes)), "{debug}");
    assert!(!debug.contains("gai-secret-key"), "{debug}");
    assert!(!debug.contains("hmac-secret"), "{debug}");
    assert!(debug.contains("org=acme"), "{debug}");
}

/// Identifiers the caller chose, with PII in them, as seen in the hardening report.
fn leaky_record() -> warden_service::record::DecisionRecord {
    let mut rec = record("ssn 123-45-6789");
    rec.user_id = Some("bob@corp.example".to_owned());
    rec.tool = "mail.send bob@corp.example".to_owned();
    rec.scope = "card 4111 1111 1111 1111".to_owned();
    rec.tags = vec!["ok".to_owned(), "call +1 415 555 0100".to_owned()];
    // Passed unchanged (pass_through, on_error: pass): the output is the raw input.
    rec.raw_text = "ssn 123-45-6789 for bob@corp.example".to_owned();
    rec.raw_text_out = Some(rec.raw_text.clone());
    rec
}

const LEAKS: [&str; 6] =
    ["123-45-6789", "bob@corp.example", "4111 1111 1111 1111", "+1 415 555 0100", "415 555 0100", "ssn 123"];

#[test]
fn no_detected_pii_in_any_event_field_without_the_opt_in() {
    let rec = leaky_record();
    let json = decision_event_json(&rec, &EventOptions::default());
    for leak in LEAKS {
        assert!(!json.contains(leak), "{leak} leaked: {json}");
    }
    let event: Value = serde_json::from_str(&json).unwrap();
    let data = &event["data"];
    assert!(data.get("rawText").is_none() && data.get("rawTextOut").is_none(), "{data}");
    assert_eq!(data["authentication"]["userId"], "<USER_EMAIL>");
    assert_eq!(data["correlationId"], "ssn <USER_SSN>");
    assert_eq!(data["tool"], "mail.send <USER_EMAIL>");
    assert_eq!(data["scope"], "card <CREDIT_CARD>");
    assert_eq!(data["tags"], serde_json::json!(["ok", "call <USER_PHONE>"]));
    assert!(data["payloadHash"].as_str().unwrap().starts_with("hmac-sha256:"));

    // The operator's opt-in brings raw data back, API keys excepted.
    let raw = decision_event(&rec, &EventOptions { include_raw_text: true, ..EventOptions::default() });
    assert_eq!(raw["data"]["authentication"]["userId"], "bob@corp.example");
    assert_eq!(raw["data"]["correlationId"], "ssn 123-45-6789");
    assert_eq!(raw["data"]["rawTextOut"], rec.raw_text.as_str());
}

#[test]
fn payload_hashes_are_keyed_by_the_operator_secret() {
    let ssn = "123-45-6789";
    let key = HashKey::from_secret("operator-salt");
    let hash = payload_hash(&key, ssn);
    assert_eq!(hash, expected_payload_hash("operator-salt", ssn));
    // Without the key, a guess cannot be confirmed: the plain SHA-256 of the guess and the
    // hash under any other key differ.
    assert_ne!(hash, format!("hmac-sha256:{}", hex(&Sha256::digest(ssn.as_bytes()))));
    assert_ne!(hash, payload_hash(&HashKey::from_secret("guessed-salt"), ssn));
    assert_ne!(hash, payload_hash(&HashKey::default(), ssn));
    let options = EventOptions { hash_key: key.clone(), ..EventOptions::default() };
    let mut rec = record("x");
    rec.raw_text = ssn.to_owned();
    assert_eq!(decision_event(&rec, &options)["data"]["payloadHash"], hash.as_str());
    assert_eq!(format!("{key:?}"), "HashKey(***)");
}
