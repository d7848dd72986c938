//! Every event parser under mutated input: each fixture of every event shape, with random
//! nodes replaced, removed or retyped, goes through the whole handler. Nothing may panic, and
//! every answer is either a JSON object or (authorizers only) `Unauthorized`. A deterministic,
//! bounded stand-in for a fuzzer that runs in the normal test suite; the same generator drives
//! the parsers directly (attribute values, S3 keys, HTTP origins).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use serde_json::{json, Map, Value};
use warden_aws::{App, Invocation};

/// Seeded, so failures reproduce.
type Rng = fastrand::Rng;

fn random_leaf(rng: &mut Rng) -> Value {
    match rng.usize(..10) {
        0 => Value::Null,
        1 => json!(rng.u64(..) % 2 == 0),
        2 => json!(rng.u64(..) as i64),
        3 => json!(-1.5e308),
        4 => json!(""),
        5 => json!("%ZZ+%C3%28/\u{0}\u{202e}"),
        6 => json!("x".repeat(rng.usize(..5000))),
        7 => json!([]),
        8 => json!({"S": 1, "N": "1e99999", "B": "!!", "L": {"M": []}}),
        _ => json!({"": {"": [null]}}),
    }
}

/// Replaces, removes or retypes about one node in `rate`.
fn mutate(v: &mut Value, rng: &mut Rng, rate: usize, depth: usize) {
    if depth > 0 && rng.usize(..rate) == 0 {
        *v = random_leaf(rng);
        return;
    }
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if rng.usize(..rate * 2) == 0 {
                    m.remove(&k);
                } else if let Some(child) = m.get_mut(&k) {
                    mutate(child, rng, rate, depth + 1);
                }
            }
        }
        Value::Array(a) => {
            for child in a.iter_mut() {
                mutate(child, rng, rate, depth + 1);
            }
        }
        _ => {}
    }
}

fn fixtures() -> Vec<Value> {
    let body = json!({"tool": "t", "raw_text": "SSN 123-45-6789"});
    let mut out: Vec<Value> =
        ORIGINS.iter().map(|o| http_event(*o, "POST", "/api/v1/precheck", Some(&body), &[])).collect();
    out.push(sqs_event(&[("m", r#"{"action":"evaluate","payload":{"message":"hi"}}"#)]));
    out.push(s3_event(&[("bucket", "a+b%20c.txt")]));
    out.push(stream_event(&[("e", "INSERT", json!({"id": {"S": "1"}, "n": {"N": "1"}, "b": {"B": "AA=="}}))]));
    out.push(fixture("example-dynamodb-event.json"));
    out.push(fixture("example-apigw-custom-auth-request.json"));
    out.push(fixture("example-apigw-custom-auth-request-type-request.json"));
    out.push(fixture("example-apigw-v2-custom-authorizer-v2-request.json"));
    out.push(json!({"action": "evaluate", "payload": {"message": "m"}}));
    out.push(json!({"requests": [{"tool": "t", "raw_text": "a"}]}));
    out
}

#[tokio::test]
async fn mutated_events_never_panic() {
    let env = [("WARDEN_EMF", "false"), ("WARDEN_AUDIT", "off"), ("WARDEN_API_KEYS", "k"), ("PII_TOKEN_SALT", "s")];
    let app: App = warden_aws::config::build(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
        .await
        .unwrap();
    let inv = Invocation { request_id: "r".into(), deadline_ms: 0 };
    let mut rng = Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let mut answered = 0;
    for base in fixtures() {
        for round in 0..60 {
            let mut event = base.clone();
            mutate(&mut event, &mut rng, 2 + round % 8, 0);
            match app.handle(event.clone(), &inv).await {
                Ok(v) => {
                    assert!(v.is_object(), "{event} → {v}");
                    answered += 1;
                }
                Err(e) => assert_eq!(e, "Unauthorized", "only authorizers fail an invocation: {event}"),
            }
        }
    }
    assert!(answered > 500, "{answered}");
}

#[test]
fn parsers_take_any_input() {
    let mut rng = Rng::with_seed(42);
    for _ in 0..3000 {
        let mut v = json!({"a": {"S": "x"}, "b": {"L": [{"N": "1"}, {"M": {"c": {"BS": ["AA=="]}}}]}});
        mutate(&mut v, &mut rng, 3, 0);
        if let Value::Object(m) = &v {
            let _ = warden_aws::attr::item_to_json(m);
        }
        let _ = warden_aws::classify(&v);
        let _ = warden_aws::http::origin(&v);
        let bytes: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u64(..) as u8).collect();
        let key = String::from_utf8_lossy(&bytes);
        if let Ok(k) = warden_aws::s3::decode_key(&key) {
            assert!(!k.is_empty() && k.len() <= 1024);
        }
    }
    let mut deep = json!({"S": "x"});
    for _ in 0..200 {
        deep = json!({"M": {"k": deep}});
    }
    let item: Map<String, Value> = [("k".to_owned(), deep)].into_iter().collect();
    assert!(warden_aws::attr::item_to_json(&item).is_err());
}
