//! `POST /api/v1/postcheck/stream` against the real `warden serve` over loopback (issue 16), with
//! a client that streams its body in chunked encoding over a raw socket: governed bytes come back
//! before the body ends, the output equals the one-shot postcheck, and one audit line records
//! the stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{serve, wait_for};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends the request head of a chunked POST to `path`.
fn open(base: &str, path: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
        .unwrap();
    s
}

fn send_chunk(s: &mut TcpStream, data: &[u8]) {
    write!(s, "{:x}\r\n", data.len()).unwrap();
    s.write_all(data).unwrap();
    s.write_all(b"\r\n").unwrap();
    s.flush().unwrap();
}

/// Reads what has arrived (until the read times out).
fn read_available(s: &mut TcpStream, into: &mut Vec<u8>) {
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

/// The status, the headers and the de-chunked body of a complete response (`None` while the
/// final chunk has not arrived).
fn parse(raw: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    let mut rest = &raw[head_end + 4..];
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let len = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        if len == 0 {
            return Some((status, head, body));
        }
        let data = rest.get(line_end + 2..line_end + 2 + len)?;
        body.extend_from_slice(data);
        rest = rest.get(line_end + 4 + len..)?;
    }
}

fn one_shot(base: &str, tool: &str, text: &str) -> Value {
    reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/postcheck"))
        .json(&json!({"tool": tool, "raw_text": text}))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn streamed_text_is_released_early_and_equals_one_shot() {
    let server = serve(&[("WARDEN_AUDIT", "stdout".into())], &[]);
    let line = "Reach alice@example.com or +44 20 7946 0958; card 4111 1111 1111 1111. Grüße 👋\n";
    let text = line.repeat(200);
    let mut s = open(&server.base, "/api/v1/postcheck/stream?tool=web.chat&format=text&corr_id=c-1");
    let bytes = text.as_bytes();
    let mut raw = Vec::new();
    let half = bytes.len() / 2;
    // Chunks of 7 bytes (split inside values and characters) up to half of the text.
    for piece in bytes[..half].chunks(7) {
        send_chunk(&mut s, piece);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let early = loop {
        read_available(&mut s, &mut raw);
        let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n");
        if head_end.is_some_and(|h| raw.len() > h + 4 + 100) {
            break raw.clone();
        }
        assert!(
            Instant::now() < deadline,
            "nothing released before the body ended: {:?}",
            String::from_utf8_lossy(&raw)
        );
    };
    for piece in bytes[half..].chunks(7) {
        send_chunk(&mut s, piece);
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, head, body) = loop {
        read_available(&mut s, &mut raw);
        if let Some(done) = parse(&raw) {
            break done;
        }
        assert!(Instant::now() < deadline, "response did not end: {:?}", String::from_utf8_lossy(&raw));
    };
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: application/x-ndjson"), "{head}");
    assert!(early.len() < raw.len());
    let lines: Vec<Value> =
        std::str::from_utf8(&body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (record, pieces) = lines.split_last().unwrap();
    let governed: String = pieces.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let want = one_shot(&server.base, "web.chat", &text);
    assert_eq!(governed, want["raw_text_out"].as_str().unwrap());
    assert_eq!(record["warden"]["decision"], want["decision"]);
    assert_eq!(record["warden"]["reasons"], want["reasons"]);
    assert_eq!(record["warden"]["pii_counts"]["email_address"], 200);
    // One audit line for the stream (and one for the one-shot check), no raw PII.
    wait_for(|| server.stdout.lock().unwrap().len() >= 2);
    let lines = server.stdout.lock().unwrap().clone();
    let streamed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["operation"] == "postcheck_stream")
        .collect();
    assert_eq!(streamed.len(), 1, "{lines:?}");
    assert_eq!(streamed[0]["corr_id"], "c-1");
    assert!(lines.iter().all(|l| !l.contains("alice@example.com")));
}

#[test]
fn openai_events_stream_through_with_a_final_warden_event() {
    let server = serve(&[], &[]);
    let answer = "Sure. Her email is alice@example.com and her SSN is 123-45-6789. ".repeat(20);
    let mut input = String::new();
    for piece in answer.as_bytes().chunks(5).map(|c| String::from_utf8_lossy(c).into_owned()) {
        input += &format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": piece}}]}));
    }
    input += "data: [DONE]\n\n";
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/postcheck/stream?tool=web.chat&format=openai", server.base))
        .body(input)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let mut text = String::new();
    let mut record = Value::Null;
    for event in body.trim_end().split("\n\n") {
        if let Some(data) = event.strip_prefix("event: warden\ndata: ") {
            record = serde_json::from_str(data).unwrap();
        } else if let Some(data) = event.strip_prefix("data: ").filter(|d| *d != "[DONE]") {
            let v: Value = serde_json::from_str(data).unwrap();
            text += v["choices"][0]["delta"]["content"].as_str().unwrap();
        }
    }
    let want = one_shot(&server.base, "web.chat", &answer);
    assert_eq!(text, want["raw_text_out"].as_str().unwrap());
    assert_eq!(record["decision"], "transform");
}

#[test]
fn stream_errors_before_streaming_are_plain_json() {
    let server = serve(&[("WARDEN_API_KEYS", "k1".into()), ("PII_TOKEN_SALT", "s".into())], &[]);
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/api/v1/postcheck/stream?tool=t", server.base);
    let r = client.post(&url).body("hi").send().unwrap();
    assert_eq!(r.status(), 401);
    let r = client.post(format!("{url}&format=xml")).header("x-governs-key", "k1").body("hi").send().unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "format");
    let r = client.post(format!("{url}&nope=1")).header("x-governs-key", "k1").body("hi").send().unwrap();
    assert_eq!(r.status(), 422);
}

#[test]
fn a_deny_mid_stream_ends_with_the_record_and_one_audit_line() {
    // A policy whose chat tool denies SSNs.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let rule = "version: v1\ntool_access:\n  crm.chat:\n    direction: egress\n    action: redact\n    allow_pii:\n      PII:us_ssn: deny\n";
    std::fs::write(&policy, rule).unwrap();
    let server = serve(&[("WARDEN_AUDIT", "stdout".into()), ("POLICY_FILE", policy.display().to_string())], &[]);
    let text = format!("{}SSN: 123-45-6789 {}", "All fine here. ".repeat(100), "more ".repeat(200));
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/postcheck/stream?tool=crm.chat", server.base))
        .body(text)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().unwrap();
    assert!(!body.contains("123-45-6789"), "{body}");
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Sent in one piece, the whole text is one window: nothing of it is released.
    let (record, pieces) = lines.split_last().unwrap();
    assert!(pieces.is_empty(), "{body}");
    assert_eq!(record["warden"]["decision"], "deny");
    assert_eq!(record["warden"]["reasons"], json!(["pii.denied:PII:us_ssn"]));
    wait_for(|| !server.stdout.lock().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let lines = server.stdout.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let audit: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!((audit["operation"].clone(), audit["decision"].clone()), (json!("postcheck_stream"), json!("deny")));
}

/// Streams `text` (format `text`) to `query`'s stream route in one body; the governed text and
/// the final record.
fn stream_text(base: &str, query: &[(&str, &str)], text: &str) -> (u16, String, Value) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/postcheck/stream"))
        .query(query)
        .body(text.to_owned())
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().unwrap();
    if status != 200 {
        return (status, String::new(), serde_json::from_str(&body).unwrap());
    }
    let mut out = String::new();
    let mut record = Value::Null;
    for line in body.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match (v["text"].as_str(), v.get("warden")) {
            (Some(piece), _) => out += piece,
            (None, Some(r)) => record = r.clone(),
            _ => panic!("unexpected line {line}"),
        }
    }
    (status, out, record)
}

fn postcheck(base: &str, request: &Value) -> Value {
    reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/postcheck"))
        .json(request)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// A request policy: `crm.chat` tokenizes e-mail addresses and denies SSNs.
fn crm_policy() -> Value {
    json!({"version": "v1", "defaults": {"egress": {"action": "redact"}}, "tool_access": {"crm.chat": {
        "direction": "egress", "action": "redact",
        "allow_pii": {"PII:email_address": "tokenize", "PII:us_ssn": "deny"}}}})
}

#[test]
fn a_request_policy_governs_the_stream_as_it_governs_postcheck() {
    let server = serve(&[], &[]);
    let policy = crm_policy().to_string();
    let text = "Write to alice@example.com or bob@example.org, call +44 20 7946 0958. ".repeat(40);
    let (status, out, record) =
        stream_text(&server.base, &[("tool", "crm.chat"), ("policy_config", &policy), ("format", "text")], &text);
    assert_eq!(status, 200, "{record}");
    let want = postcheck(&server.base, &json!({"tool": "crm.chat", "raw_text": text, "policy_config": crm_policy()}));
    assert_eq!(out, want["raw_text_out"].as_str().unwrap());
    assert!(out.contains("pii_"), "the request policy tokenizes: {out}");
    assert_eq!((&record["decision"], &record["reasons"]), (&want["decision"], &want["reasons"]));
    assert_eq!(record["policy_id"], want["policy_id"]);
    // Without it, the server policy redacts: the request policy made the difference.
    let (_, plain, _) = stream_text(&server.base, &[("tool", "crm.chat")], &text);
    assert!(!plain.contains("pii_") && plain.contains("<USER_EMAIL>"), "{plain}");

    // Its deny ends the stream with the record, as postcheck denies.
    let denied = format!("{}SSN 123-45-6789 {}", "fine words here ".repeat(50), "more ".repeat(100));
    let (_, out, record) = stream_text(&server.base, &[("tool", "crm.chat"), ("policy_config", &policy)], &denied);
    let want = postcheck(&server.base, &json!({"tool": "crm.chat", "raw_text": denied, "policy_config": crm_policy()}));
    assert_eq!((want["decision"].as_str(), record["decision"].as_str()), (Some("deny"), Some("deny")));
    assert_eq!(record["reasons"], want["reasons"]);
    assert!(!out.contains("123-45-6789"));
}

#[test]
fn request_policies_on_streams_follow_the_operator_switch_and_the_limits() {
    let policy = crm_policy().to_string();
    let q = |p: &str| vec![("tool", "crm.chat".to_owned()), ("policy_config", p.to_owned())];
    let send = |base: &str, query: Vec<(&str, String)>| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{base}/api/v1/postcheck/stream"))
            .query(&query)
            .body("hello")
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{status} {e}: {text}")))
    };
    // Off: refused exactly as postcheck refuses it.
    let off = serve(&[("WARDEN_REQUEST_POLICY", "off".into())], &[]);
    let (status, body) = send(&off.base, q(&policy));
    let want = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/postcheck", off.base))
        .json(&json!({"tool": "crm.chat", "raw_text": "hello", "policy_config": crm_policy()}))
        .send()
        .unwrap();
    assert_eq!((status, want.status().as_u16()), (422, 422));
    assert_eq!(body["error"]["code"], "policy_config_disabled");
    assert_eq!(body["error"]["code"], want.json::<Value>().unwrap()["error"]["code"]);
    // Tighten needs both policies' verdicts on the whole text: refused for streams.
    let tighten = serve(&[("WARDEN_REQUEST_POLICY", "tighten".into())], &[]);
    let (status, body) = send(&tighten.base, q(&policy));
    assert_eq!(status, 422);
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (Some("policy_config_disabled"), Some("policy_config"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("/api/v1/postcheck"), "{body}");
    // Replace (the default): malformed, invalid (postcheck would apply `on_error` to the whole
    // text), duplicate-key and oversized documents are 422s naming the field.
    let server = serve(&[], &[]);
    let huge = json!({"version": "v1", "deny_tools": vec!["x".repeat(64); 300]}).to_string();
    let invalid = r#"{"version": "v1", "defaults": {"egress": {"action": "explode"}}}"#;
    for bad in ["{not json", invalid, r#"{"version": "v1", "version": "v1"}"#, huge.as_str()] {
        let (status, body) = send(&server.base, q(bad));
        assert_eq!(status, 422, "{bad:.60}: {body}");
        assert!(body["error"]["field"].as_str().unwrap().starts_with("policy_config"), "{body}");
    }
    let (status, body) = send(&server.base, vec![("tool", "t".into()), ("tool_config", "[".into())]);
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("tool_config")));
}

#[test]
fn streams_check_budgets_before_the_first_byte_and_spend_at_the_end() {
    let server = serve(&[("BUDGET_DEFAULT_LIMIT", "10".into())], &[]);
    let tool_config = json!({"metadata": {"purchase_amount": 6}}).to_string();
    let text = "A short answer for alice@example.com. ".repeat(10);
    let query = [("tool", "shop.chat"), ("user_id", "u-stream"), ("tool_config", tool_config.as_str())];
    // First stream: under budget; spends the purchase and the text's estimated LLM cost.
    let (status, out, record) = stream_text(&server.base, &query, &text);
    assert_eq!(status, 200);
    assert!(out.contains("<USER_EMAIL>"), "{out}");
    assert_eq!(record["decision"], "transform", "{record}");
    assert!(record["reasons"].as_array().unwrap().contains(&json!("budget_check_passed")), "{record}");
    let spent = record["budget_info"]["projectedSpend"].as_f64().unwrap();
    // The same text through postcheck for another user is estimated the same (chars alike).
    let twin = postcheck(
        &server.base,
        &json!({"tool": "shop.chat", "raw_text": text, "user_id": "u-twin", "tool_config": {"metadata": {"purchase_amount": 6}}}),
    );
    assert_eq!(twin["budget_info"], record["budget_info"], "stream {record} vs postcheck {twin}");
    assert!(spent > 6.0, "{record}");
    // Second stream: 6 + 6 > 10 before any text: a deny record, and no text at all.
    let (status, out, record) = stream_text(&server.base, &query, &text);
    assert_eq!(status, 200);
    assert_eq!(out, "");
    assert_eq!(record["decision"], "deny", "{record}");
    assert!(record["reasons"].as_array().unwrap().contains(&json!("budget_exceeded")), "{record}");
    // Postcheck sees the same spend (its own over-budget check records nothing): the first
    // stream's spend was recorded, the refused one's was not.
    let after = postcheck(
        &server.base,
        &json!({"tool": "shop.chat", "raw_text": "hi", "user_id": "u-stream", "tool_config": {"metadata": {"purchase_amount": 6}}}),
    );
    assert_eq!(after["decision"], "deny", "{after}");
    assert_eq!(after["budget_status"]["currentSpend"].as_f64(), Some(spent), "{after}");
}
