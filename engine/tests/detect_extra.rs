//! Opt-in detectors (issue 14): person names and street addresses are found only when a policy
//! lists them in `detect_extra`, so deployed decisions do not change; listed, they are redacted
//! like any built-in type and can be allowed per tool with `PII:person` / `PII:street_address`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::json;
use warden_engine::{Detector, EvaluateRequest, Extra, Gate, Policy, TokenKey};

const TEXT: &str = "Dear Ms. Okafor, we ship to 742 Evergreen Terrace, Springfield, IL 62704 today.";

fn redact(policy: serde_json::Value, text: &str) -> String {
    let policy = Policy::from_json_value(&policy).expect("policy");
    let (key, detector) = (TokenKey::new("salt"), Detector::new());
    Gate::new(&policy, &key, &detector).redact(text).redacted
}

#[test]
fn without_detect_extra_nothing_changes() {
    assert_eq!(redact(json!({"version": "v1"}), TEXT), TEXT);
    assert_eq!(Policy::default().detect_extra(), Extra::default());
}

#[test]
fn detect_extra_turns_each_detector_on() {
    let both = json!({"version": "v1", "detect_extra": ["person", "street_address"]});
    assert_eq!(redact(both, TEXT), "Dear Ms. <PERSON>, we ship to <ADDRESS> today.");
    let person = json!({"version": "v1", "detect_extra": ["PII:person"]});
    assert_eq!(
        redact(person, TEXT),
        "Dear Ms. <PERSON>, we ship to 742 Evergreen Terrace, Springfield, IL 62704 today."
    );
}

#[test]
fn opt_in_types_can_be_allowed_per_tool() {
    let policy = Policy::from_json_value(&json!({
        "version": "v1",
        "detect_extra": ["person", "street_address"],
        "defaults": {"ingress": {"action": "redact", "allow_pii": {"PII:person": "pass_through"}}}
    }))
    .expect("policy");
    let (key, detector) = (TokenKey::new("salt"), Detector::new());
    let req = EvaluateRequest { payload: json!({"note": TEXT}), agent_id: "a".into(), ..EvaluateRequest::default() };
    let out = Gate::new(&policy, &key, &detector).evaluate(&req, 0).modified_payload;
    assert_eq!(out["note"], "Dear Ms. Okafor, we ship to <ADDRESS> today.");
}

#[test]
fn a_name_field_makes_its_value_a_name() {
    let policy = Policy::from_json_value(&json!({
        "version": "v1",
        "detect_extra": ["person"],
        "defaults": {"ingress": {"action": "redact"}}
    }))
    .expect("policy");
    let (key, detector) = (TokenKey::new("salt"), Detector::new());
    let payload = json!({"customer_name": "Ngozi", "username": "Ngozi", "fileName": "Report"});
    let req = EvaluateRequest { payload, agent_id: "a".into(), ..EvaluateRequest::default() };
    let out = Gate::new(&policy, &key, &detector).evaluate(&req, 0).modified_payload;
    assert_eq!(out, json!({"customer_name": "<PERSON>", "username": "Ngozi", "fileName": "Report"}));
}

#[test]
fn unknown_opt_in_detectors_are_rejected() {
    let err = Policy::from_json_value(&json!({"version": "v1", "detect_extra": ["shoe_size"]})).unwrap_err();
    assert!(err.to_string().contains("detect_extra[0]"), "{err}");
}
