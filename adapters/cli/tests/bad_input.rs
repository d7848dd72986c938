//! The bad-input corpus (`tests/bad-input/cases.json`) against the real `warden serve` over
//! loopback with default settings: never a 5xx, every answer JSON, every malformed input the
//! 4xx the corpus names (code, message, field), and the server still up afterwards. The same
//! file drives the wasm package and the Worker (tests/edge/bad-input.mjs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::serve;
use serde_json::Value;
use std::time::Duration;

/// The request body a case describes: `json`, `text`, `hex` or `repeat`.
fn body_of(case: &Value) -> Option<Vec<u8>> {
    if let Some(v) = case.get("json") {
        return Some(serde_json::to_vec(v).unwrap());
    }
    if let Some(t) = case.get("text").and_then(Value::as_str) {
        return Some(t.as_bytes().to_vec());
    }
    if let Some(h) = case.get("hex").and_then(Value::as_str) {
        let bytes = (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect();
        return Some(bytes);
    }
    let r = case.get("repeat")?;
    let text = |k: &str| r[k].as_str().unwrap().to_owned();
    let times = usize::try_from(r["times"].as_u64().unwrap()).unwrap();
    Some(format!("{}{}{}", text("prefix"), text("unit").repeat(times), text("suffix")).into_bytes())
}

/// Whether `status` is what the case expects (a number or a class such as "4xx").
fn status_matches(want: &Value, status: u16) -> bool {
    match want {
        Value::Number(n) => n.as_u64() == Some(u64::from(status)),
        Value::String(class) => class.len() == 3 && class.ends_with("xx") && class[..1] == status.to_string()[..1],
        _ => false,
    }
}

#[test]
fn serve_survives_the_bad_input_corpus() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/bad-input/cases.json");
    let corpus: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let cases = corpus["cases"].as_array().unwrap();
    assert!(cases.len() >= 100, "the corpus covers every route and kind of bad input");
    let mut server = serve(&[], &[]);
    // A fresh connection per case: an early 413 closes its connection, which a pooled client
    // would otherwise reuse for the next case.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let method = reqwest::Method::from_bytes(case["method"].as_str().unwrap().as_bytes()).unwrap();
        let mut req = client.request(method, format!("{}{}", server.base, case["path"].as_str().unwrap()));
        match case.get("content_type") {
            Some(Value::Null) => {}
            Some(ct) => req = req.header("content-type", ct.as_str().unwrap()),
            None => req = req.header("content-type", "application/json"),
        }
        if let Some(body) = body_of(case) {
            req = req.body(body);
        }
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: no answer: {e}"));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let short: String = text.chars().take(200).collect();
        let Ok(answer) = serde_json::from_str::<Value>(&text) else {
            failures.push(format!("{name}: {status} answer is not JSON: {short:?}"));
            continue;
        };
        if status >= 500 || !status_matches(&case["status"], status) {
            failures.push(format!("{name}: status {status}, want {}: {short}", case["status"]));
            continue;
        }
        if status >= 400 {
            let message = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("");
            if answer.pointer("/error/code").and_then(Value::as_str).is_none() || message.is_empty() {
                failures.push(format!("{name}: error without code and message: {short}"));
            }
            for key in ["code", "field"] {
                if let Some(want) = case.get(key) {
                    if answer["error"].get(key) != Some(want) {
                        failures.push(format!("{name}: error.{key} = {}, want {want}", answer["error"][key]));
                    }
                }
            }
        }
    }
    assert!(server.child.try_wait().unwrap().is_none(), "warden serve exited");
    let health = client.get(format!("{}/api/v1/health", server.base)).send().unwrap();
    assert_eq!(health.status(), 200, "the server still answers");
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
