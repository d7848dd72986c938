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
