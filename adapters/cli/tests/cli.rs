//! The `warden` binary end to end: `serve` over loopback (conformance, errors, hot reload)
//! and the `check`, `redact`, `detect` and `eval` commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{serve, wait_for, BIN};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use warden_tests::{compare, corpus_dir, load_all};

fn conformance_env() -> Vec<(&'static str, String)> {
    vec![
        ("PII_TOKEN_SALT", "conformance-salt".to_string()),
        ("POLICY_FILE", corpus_dir().join("policy.tool_access.yaml").display().to_string()),
    ]
}

#[test]
fn serve_passes_conformance_over_loopback() {
    let server = serve(&conformance_env(), &[]);
    let client = reqwest::blocking::Client::new();
    let mut failures = Vec::new();
    for (file, case) in load_all().unwrap() {
        if case.env.contains_key("ON_ERROR") {
            continue; // needs a differently configured server; covered by tests/conformance.rs
        }
        let resp = client.post(format!("{}/api/v1/{}", server.base, case.endpoint)).json(&case.request).send().unwrap();
        assert_eq!(resp.status(), 200);
        if let Err(e) = compare(&case, &resp.json().unwrap()) {
            failures.push(format!("[{file}] {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn serve_answers_bad_input_with_json_errors() {
    let server = serve(&conformance_env(), &[]);
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/api/v1/precheck", server.base);
    let check = |resp: reqwest::blocking::Response, status: u16, code: &str| {
        assert_eq!(resp.status().as_u16(), status);
        let body: serde_json::Value = resp.json().unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        body
    };
    check(client.post(&url).body("{not json").send().unwrap(), 400, "invalid_json");
    let body = check(client.post(&url).body(r#"{"tool":"t"}"#).send().unwrap(), 422, "invalid_request");
    assert_eq!(body["error"]["field"], "raw_text");
    let body = check(client.post(&url).body(r#"{"tool":"t","raw_text":5}"#).send().unwrap(), 422, "invalid_request");
    assert_eq!(body["error"]["field"], "raw_text");
    let big = format!(r#"{{"tool":"t","raw_text":"{}"}}"#, "a".repeat(1024 * 1024 + 10));
    check(client.post(&url).body(big).send().unwrap(), 413, "payload_too_large");
    check(client.get(&url).send().unwrap(), 405, "method_not_allowed");
    check(client.get(format!("{}/nope", server.base)).send().unwrap(), 404, "not_found");
    let body = check(
        client.post(format!("{}/", server.base)).body(r#"{"action":"explode"}"#).send().unwrap(),
        422,
        "invalid_request",
    );
    assert_eq!(body["error"]["field"], "action");
    // A batch with bad items still answers 200 with per-item errors.
    let batch = r#"{"requests":[{"action":"precheck","tool":"t","raw_text":"a@b.io"},{"action":"precheck"},7]}"#;
    let resp = client.post(format!("{}/api/v1/batch", server.base)).body(batch).send().unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["processed"], 3);
    assert_eq!(body["summary"]["error"], 2);
    assert_eq!(body["summary"]["transform"], 1);
    assert_eq!(body["results"][1]["error"]["field"], "tool");
}

#[test]
fn serve_health_ready_openapi() {
    let server = serve(&[], &[]);
    let client = reqwest::blocking::Client::new();
    let health: serde_json::Value =
        client.get(format!("{}/api/v1/health", server.base)).send().unwrap().json().unwrap();
    assert_eq!(health["ok"], true);
    assert_eq!(health["service"], "warden");
    let resp = client.get(format!("{}/api/v1/ready", server.base)).send().unwrap();
    assert_eq!(resp.status(), 200);
    let ready: serde_json::Value = resp.json().unwrap();
    // No PII_TOKEN_SALT: the default salt is a warning, not an error.
    assert_eq!(ready["checks"]["environment"]["status"], "warning");
    assert_eq!(ready["checks"]["detectors"]["status"], "ok");
    assert!(ready["checks"]["policy_file"]["detail"].as_str().unwrap().contains("policy.tool_access.yaml"));
    let doc: serde_json::Value =
        client.get(format!("{}/api/openapi.json", server.base)).send().unwrap().json().unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for p in [
        "/api/v1/precheck",
        "/api/v1/postcheck",
        "/api/v1/redact",
        "/api/v1/evaluate",
        "/api/v1/batch",
        "/api/v1/health",
        "/api/v1/ready",
        "/api/metrics",
        "/",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p}");
    }
}

#[test]
fn serve_reloads_policy_and_keeps_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, "version: v1\ndefaults:\n  ingress:\n    action: redact\n").unwrap();
    let server = serve(&[("WARDEN_POLICY_POLL_MS", "100".to_string())], &["--policy", file.to_str().unwrap()]);
    let client = reqwest::blocking::Client::new();
    let precheck = || -> serde_json::Value {
        client
            .post(format!("{}/api/v1/precheck", server.base))
            .json(&serde_json::json!({"tool": "t", "raw_text": "hi"}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(precheck()["reasons"][0], "default.ingress.redact");
    std::fs::write(&file, "version: v1\ndefaults:\n  ingress:\n    action: deny\n").unwrap();
    wait_for(|| precheck()["decision"] == "deny");
    std::fs::write(&file, "version: v1\ndefaults:\n  ingress:\n    action: explode\n").unwrap();
    wait_for(|| {
        let ready: serde_json::Value =
            client.get(format!("{}/api/v1/ready", server.base)).send().unwrap().json().unwrap();
        ready["checks"]["policy_file"]["status"] == "warning"
            && ready["checks"]["policy_file"]["detail"].as_str().unwrap().contains("policy.yaml:4")
    });
    assert_eq!(precheck()["decision"], "deny", "the last good policy stays");
}

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("PII_TOKEN_SALT", "conformance-salt")
        .env("WARDEN_AUDIT", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn check_reports_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: v1\ntool_access:\n  x:\n    direction: sideways\n").unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/policy.tool_access.yaml");
    let (code, out, err) = run(&["check", good.to_str().unwrap(), bad.to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert!(out.contains(": ok"), "{out}");
    let want = format!("{}:4:", bad.display());
    assert!(err.contains(&want) && err.contains("field `tool_access.x.direction`"), "{err}");
}

#[test]
fn redact_reads_stdin() {
    let (code, out, _) = run(&["redact"], "mail bob@corp.io, ssn 123-45-6789\n");
    assert_eq!(code, 0);
    assert_eq!(out, "mail <USER_EMAIL>, ssn <USER_SSN>\n");
}

#[test]
fn detect_is_jsonl_with_char_offsets_and_per_line_errors() {
    let input = "{\"id\":1,\"text\":\"Grüße bob@corp.io\"}\nnot json\n{\"id\":\"x\",\"text\":7}\n{\"id\":2,\"text\":\"nothing\"}\n";
    let (code, out, _) = run(&["detect"], input);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], serde_json::json!({"id": 1, "entities": [{"type": "email_address", "start": 6, "end": 17}]}));
    assert!(lines[1]["error"].as_str().unwrap().contains("line 2"));
    assert_eq!(lines[2]["id"], "x");
    assert!(lines[2]["error"].as_str().unwrap().contains("text"));
    assert_eq!(lines[3]["entities"], serde_json::json!([]));
}

#[test]
fn detect_reports_the_opt_in_types_and_types_narrows() {
    let input = "{\"id\":1,\"text\":\"Dear Mr. Smith, ship to 742 Evergreen Terrace. bob@corp.io\"}\n";
    let (code, out, _) = run(&["detect"], input);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let types: Vec<&str> = v["entities"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["person", "street_address", "email_address"], "{v}");
    let (code, out, _) = run(&["detect", "--types", "person"], input);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["entities"], serde_json::json!([{"type": "person", "start": 9, "end": 14}]));
    let (code, _, err) = run(&["detect", "--types", "nobody"], input);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nobody"), "{err}");
}

#[test]
fn eval_runs_one_request() {
    let req = r#"{"tool":"verify_identity","scope":"net.external","raw_text":"SSN: 123-45-6789"}"#;
    let (code, out, _) = run(&["eval"], req);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["raw_text_out"], "SSN: pii_cd6e3b04");
    let (code, out, _) = run(&["eval"], r#"{"action":"redact","text":"a@b.io"}"#);
    assert_eq!(code, 0);
    assert!(out.contains("<USER_EMAIL>"));
    let (code, _, err) = run(&["eval", "--op", "postcheck"], r#"{"tool":1}"#);
    assert_eq!(code, 1);
    assert!(err.contains("invalid_request"), "{err}");
}

#[test]
fn shipped_policies_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    assert!(files.len() >= 2);
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let (code, out, err) = run(&args, "");
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn json_policy_with_custom_types_applies() {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/policy.finance.json");
    let req =
        r#"{"tool":"payments.send","raw_text":"pay ACCT-12345678 from DE89 3704 0044 0532 0130 00, ssn 123-45-6789"}"#;
    let (code, out, _) = run(&["eval", "--policy", policy.to_str().unwrap()], req);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "confirm");
    assert_eq!(v["raw_text_out"], "pay ACCT-12345678 from DE89 3704 0044 0532 0130 00, ssn <USER_SSN>");
    assert_eq!(
        v["reasons"],
        serde_json::json!([
            "tool_access.confirm",
            "pii.allowed:PII:account_number",
            "pii.allowed:PII:iban_code",
            "pii.redacted:PII:us_ssn"
        ])
    );
}
