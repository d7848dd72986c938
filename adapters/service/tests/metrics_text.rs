//! Prometheus text and EMF lines after real observations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use serde_json::Value;
use warden_engine::Direction;
use warden_engine::{Decision, PolicyId};
use warden_service::metrics::{emf_line, Metrics};
use warden_service::record::DecisionRecord;
use warden_service::service::Observer;

fn record(decision: Decision, policy_id: PolicyId, latency_ms: f64) -> DecisionRecord {
    DecisionRecord {
        operation: "precheck",
        org_id: None,
        direction: Direction::Ingress,
        decision,
        policy_id,
        tool: "verify_identity".to_owned(),
        scope: "net.external".to_owned(),
        raw_text: "ssn 123-45-6789".to_owned(),
        raw_text_out: None,
        reasons: vec![],
        pii_counts: vec![],
        latency_ms,
        corr_id: Some("corr-secret-1".to_owned()),
        tags: vec![],
        ts_unix_ms: 1_795_321_920_123,
        user_id: Some("user-secret-42".to_owned()),
        context: None,
    }
}

/// The value of the sample line that starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"));
    line[prefix.len()..].trim().parse().unwrap()
}

#[test]
fn observations_show_up_with_their_names_and_counts() {
    let metrics = Metrics::new();
    let mut transform = record(Decision::Transform, PolicyId::ToolAccess, 0.3);
    transform.pii_counts = vec![("us_ssn".to_owned(), 2), ("my_custom_id".to_owned(), 1)];
    transform.reasons = vec![
        "pii.tokenized:PII:us_ssn".parse().unwrap(),
        "pii.redacted:PII:my_custom_id".parse().unwrap(),
        "budget_check_passed".parse().unwrap(),
    ];
    metrics.observe(&transform);
    metrics.observe(&transform);
    let mut deny = record(Decision::Deny, PolicyId::DenyExec, 2_000.0);
    deny.reasons = vec!["blocked tool: code/exec".parse().unwrap(), "budget_exceeded".parse().unwrap()];
    metrics.observe(&deny);
    let mut strict = record(Decision::Deny, PolicyId::StrictFallback, 0.1);
    strict.pii_counts = vec![("us_ssn".to_owned(), 1)];
    strict.reasons = vec!["strict_pii_blocked:PII:us_ssn".parse().unwrap()];
    // Through the service's observer interface, as the server registers it.
    Observer::observe(&metrics, &strict);

    metrics.error("policy_invalid");
    metrics.error("Weird Code With Spaces");
    metrics.rate_limited();
    metrics.rate_limited();
    metrics.policy_reload(true);
    metrics.policy_reload(false);
    metrics.policy_reload(false);
    let guard = metrics.active_request();
    let _second = metrics.active_request();
    drop(guard);

    let text = metrics.encode();
    assert_eq!(
        sample(&text, r#"precheck_requests_total{operation="precheck",decision="transform",policy_id="tool-access"}"#),
        2.0
    );
    assert_eq!(
        sample(&text, r#"precheck_requests_total{operation="precheck",decision="deny",policy_id="deny-exec"}"#),
        1.0
    );
    assert_eq!(sample(&text, r#"pii_detections_total{type="us_ssn",action="tokenized"}"#), 4.0);
    assert_eq!(sample(&text, r#"pii_detections_total{type="custom",action="redacted"}"#), 2.0);
    assert_eq!(sample(&text, r#"pii_detections_total{type="us_ssn",action="blocked"}"#), 1.0);
    assert_eq!(sample(&text, r#"precheck_duration_seconds_count{operation="precheck"}"#), 4.0);
    assert_eq!(sample(&text, r#"precheck_duration_seconds_bucket{le="0.001",operation="precheck"}"#), 3.0);
    assert_eq!(sample(&text, r#"precheck_duration_seconds_bucket{le="2.5",operation="precheck"}"#), 4.0);
    assert_eq!(sample(&text, r#"budget_checks_total{outcome="passed"}"#), 2.0);
    assert_eq!(sample(&text, r#"budget_checks_total{outcome="exceeded"}"#), 1.0);
    assert_eq!(sample(&text, r#"precheck_errors_total{code="policy_invalid"}"#), 1.0);
    assert_eq!(sample(&text, r#"precheck_errors_total{code="other"}"#), 1.0);
    assert_eq!(sample(&text, "rate_limited_total"), 2.0);
    assert_eq!(sample(&text, r#"policy_reloads_total{outcome="ok"}"#), 1.0);
    assert_eq!(sample(&text, r#"policy_reloads_total{outcome="error"}"#), 2.0);
    assert_eq!(sample(&text, "active_requests"), 1.0);

    // Bounded labels only: no user ids, correlation ids or tool names.
    assert!(!text.contains("user-secret-42"));
    assert!(!text.contains("corr-secret-1"));
    assert!(!text.contains("verify_identity"));
    assert!(!text.contains("my_custom_id"));
    assert!(text.trim_end().ends_with("# EOF"));
}

#[test]
fn delivery_counters_are_exported() {
    let metrics = Metrics::new();
    let text = metrics.encode();
    // Present at zero before anything happens.
    assert_eq!(sample(&text, r#"webhook_events_total{outcome="delivered"}"#), 0.0);
    assert_eq!(sample(&text, "dlq_size"), 0.0);

    let stats = metrics.delivery_stats();
    stats.delivered.inc();
    stats.delivered.inc();
    stats.failed.inc();
    stats.dead_lettered.inc();
    stats.dlq_size.set(7);
    let text = metrics.encode();
    assert_eq!(sample(&text, r#"webhook_events_total{outcome="delivered"}"#), 2.0);
    assert_eq!(sample(&text, r#"webhook_events_total{outcome="failed"}"#), 1.0);
    assert_eq!(sample(&text, r#"webhook_events_total{outcome="dlq"}"#), 1.0);
    assert_eq!(sample(&text, "dlq_size"), 7.0);
    metrics.set_dlq_size(3);
    assert_eq!(sample(&metrics.encode(), "dlq_size"), 3.0);
}

#[test]
fn emf_line_is_cloudwatch_embedded_metric_format() {
    let mut rec = record(Decision::Allow, PolicyId::StrictFallback, 1.5);
    rec.pii_counts = vec![("email_address".to_owned(), 2), ("us_ssn".to_owned(), 1)];
    let line = emf_line(&rec, "Warden");
    assert!(!line.contains('\n'));
    assert!(!line.contains("user-secret-42"));
    assert!(!line.contains("123-45-6789"));
    let emf: Value = serde_json::from_str(&line).unwrap();
    let aws = &emf["_aws"];
    assert_eq!(aws["Timestamp"], 1_795_321_920_123i64);
    let directive = &aws["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Warden");
    assert_eq!(directive["Dimensions"], serde_json::json!([["operation", "decision"]]));
    assert_eq!(directive["Metrics"][0], serde_json::json!({"Name": "precheck_requests", "Unit": "Count"}));
    assert_eq!(directive["Metrics"][1], serde_json::json!({"Name": "precheck_duration", "Unit": "Milliseconds"}));
    // Every dimension and metric named in the directive has a value at the top level.
    assert_eq!(emf["operation"], "precheck");
    assert_eq!(emf["decision"], "allow");
    assert_eq!(emf["precheck_requests"], 1);
    assert_eq!(emf["precheck_duration"], 1.5);
    assert_eq!(emf["pii_detections"], 3);
}
