//! Audit lines: one JSON line per request, never raw text or raw PII.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use serde_json::Value;
use std::sync::Arc;
use warden_engine::Direction;
use warden_engine::{Decision, PolicyId};
use warden_service::audit::{audit_line, AuditLine, AuditWriter, Auditor};
use warden_service::events::{HashKey, Scrubber};
use warden_service::record::DecisionRecord;
use warden_service::service::Observer;

const SSN: &str = "123-45-6789";
const EMAIL: &str = "alice@example.com";

fn record() -> DecisionRecord {
    DecisionRecord {
        operation: "postcheck",
        org_id: Some("acme".to_owned()),
        direction: Direction::Egress,
        decision: Decision::Transform,
        policy_id: PolicyId::ToolAccess,
        tool: "verify_identity".to_owned(),
        scope: "net.external".to_owned(),
        raw_text: format!("ssn {SSN}, mail {EMAIL}"),
        // The email passed through: it is in the output text, which audit must not log either.
        raw_text_out: Some(format!("ssn <USER_SSN>, mail {EMAIL}")),
        reasons: vec!["pii.redacted:PII:us_ssn".parse().unwrap(), "pii.allowed:PII:email_address".parse().unwrap()],
        pii_counts: vec![("us_ssn".to_owned(), 1), ("email_address".to_owned(), 1)],
        latency_ms: 0.42,
        corr_id: Some("req-9".to_owned()),
        tags: vec![],
        ts_unix_ms: 1_795_321_920_123,
        user_id: Some("u-77".to_owned()),
        context: None,
    }
}

fn scrubber() -> Scrubber {
    Scrubber::new(HashKey::from_secret("audit-test-salt"))
}

#[test]
fn audit_line_has_no_raw_text_or_pii() {
    let line = audit_line(&record(), &scrubber());
    assert!(!line.contains(SSN), "{line}");
    assert!(!line.contains("123456789"), "{line}");
    assert!(!line.contains(EMAIL), "{line}");
    assert!(!line.contains("ssn "), "raw text leaked: {line}");
    assert!(!line.contains('\n'), "exactly one line");
}

#[test]
fn audit_line_fields() {
    let rec = record();
    let line: Value = serde_json::from_str(&audit_line(&rec, &scrubber())).unwrap();
    assert_eq!(line["type"], "audit");
    assert_eq!(line["ts"], "2026-11-22T04:32:00.123Z");
    assert_eq!(line["operation"], "postcheck");
    assert_eq!(line["corr_id"], "req-9");
    assert_eq!(line["user"], "u-77");
    assert_eq!(line["tool"], "verify_identity");
    assert_eq!(line["scope"], "net.external");
    assert_eq!(line["direction"], "egress");
    assert_eq!(line["decision"], "transform");
    assert_eq!(line["policy_id"], "tool-access");
    assert_eq!(line["reasons"][0], "pii.redacted:PII:us_ssn");
    assert_eq!(line["pii"], serde_json::json!({"us_ssn": 1, "email_address": 1}));
    assert_eq!(line["latency_ms"], 0.42);
    let key = HashKey::from_secret("audit-test-salt");
    assert_eq!(line["payload_hash"], warden_service::events::payload_hash(&key, &rec.raw_text).as_str());
    assert!(line["payload_hash"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert_eq!(AuditLine::from_record(&rec, &scrubber()).to_json(), audit_line(&rec, &scrubber()));
}

#[test]
fn file_writer_appends_whole_lines_from_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs").join("audit.jsonl");
    let writer = Arc::new(Auditor::new(AuditWriter::from_setting(path.to_str().unwrap()).unwrap(), scrubber()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let mut rec = record();
                    rec.corr_id = Some(format!("t{t}-{i}"));
                    rec.tool = "x".repeat(5_000);
                    writer.write(&rec).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 400);
    assert!(!text.contains(SSN));

    // Appending: a second writer on the same file keeps what is there; as a service
    // observer it writes exactly one line per decision.
    let again = Auditor::new(AuditWriter::file(&path).unwrap(), scrubber());
    Observer::observe(&again, &record());
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 401);
}

#[test]
fn settings_select_the_writer() {
    assert!(matches!(AuditWriter::from_setting("").unwrap(), AuditWriter::Stdout));
    assert!(matches!(AuditWriter::from_setting("stdout").unwrap(), AuditWriter::Stdout));
    let off = AuditWriter::from_setting("off").unwrap();
    assert!(matches!(off, AuditWriter::Off));
    Auditor::new(off, scrubber()).write(&record()).unwrap();
    Auditor::new(AuditWriter::Stdout, scrubber()).write(&record()).unwrap();
}

#[test]
fn identifiers_with_pii_are_scrubbed_and_the_hash_is_keyed() {
    // As seen in the hardening report: `"user":"bob@corp.example","corr_id":"ssn 123-45-6789"`.
    let mut rec = record();
    rec.user_id = Some("bob@corp.example".to_owned());
    rec.corr_id = Some(format!("ssn {SSN}"));
    rec.tool = "lookup 4111 1111 1111 1111".to_owned();
    rec.scope = format!("mail {EMAIL}");
    rec.context = Some(format!("{{\"path\":\"/u/{EMAIL}\"}}"));
    rec.raw_text = SSN.to_owned();
    let line = audit_line(&rec, &scrubber());
    for leak in [SSN, EMAIL, "bob@corp.example", "4111 1111 1111 1111"] {
        assert!(!line.contains(leak), "{leak} leaked: {line}");
    }
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["user"], "<USER_EMAIL>");
    assert_eq!(v["corr_id"], "ssn <USER_SSN>");
    assert_eq!(v["tool"], "lookup <CREDIT_CARD>");
    assert_eq!(v["scope"], "mail <USER_EMAIL>");
    assert_eq!(v["context"], "{\"path\":\"/u/<USER_EMAIL>\"}");
    // The hash of a bare SSN is not the unsalted SHA-256 anyone can brute-force.
    use sha2::Digest;
    let unkeyed: String = sha2::Sha256::digest(SSN.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert!(!line.contains(&unkeyed), "{line}");
    // Ids without PII stay joinable.
    assert_eq!(serde_json::from_str::<Value>(&audit_line(&record(), &scrubber())).unwrap()["user"], "u-77");
}
