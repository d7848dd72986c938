//! Field-name context (issue 14): in JSON mode the member name says what a value is, so a bare
//! digit run that is no PII in running text is one under `phone`, `mobile_number` or `ssn`; in
//! `key=value` / `key: value` text the key does the same. Names that say nothing keep the
//! discipline that bare digit runs (order numbers, ZIP codes) are not PII.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::json;
use warden_engine::{Detector, EvaluateRequest, Gate, PiiKind, Policy, TokenKey};

fn redacted(payload: serde_json::Value) -> serde_json::Value {
    let policy = Policy::from_json_value(&json!({
        "version": "v1",
        "defaults": {"ingress": {"action": "redact"}}
    }))
    .expect("policy");
    let (key, detector) = (TokenKey::new("salt"), Detector::new());
    let gate = Gate::new(&policy, &key, &detector);
    let req = EvaluateRequest { payload, agent_id: "a".into(), ..EvaluateRequest::default() };
    gate.evaluate(&req, 0).modified_payload
}

#[test]
fn json_member_names_give_context() {
    let out = redacted(json!({
        "phone": "0412 345 678",
        "ssn": "123456789",
        "customer": {"mobile_number": "07700847974", "customerPhone": "612 345 678", "phones": ["2125551234"]},
        "card_number": "561234567890",
        "order_id": "0412345678",
        "zip": "123456789",
        "telex": "07700847974",
        "count": "2125551234"
    }));
    assert_eq!(out["phone"], "<USER_PHONE>");
    assert_eq!(out["ssn"], "<USER_SSN>");
    assert_eq!(out["customer"]["mobile_number"], "<USER_PHONE>");
    assert_eq!(out["customer"]["customerPhone"], "<USER_PHONE>");
    assert_eq!(out["customer"]["phones"][0], "<USER_PHONE>");
    assert_eq!(out["card_number"], "<CREDIT_CARD>");
    for k in ["order_id", "zip", "telex", "count"] {
        assert_eq!(out[k], json!(payload_value(k)), "{k} must stay");
    }
}

fn payload_value(k: &str) -> &'static str {
    match k {
        "order_id" => "0412345678",
        "zip" => "123456789",
        "telex" => "07700847974",
        _ => "2125551234",
    }
}

#[test]
fn keys_in_text_give_context() {
    let d = Detector::new();
    let kinds = |t: &str| d.detect(t).iter().map(|f| (f.kind, t[f.start..f.end].to_owned())).collect::<Vec<_>>();
    assert_eq!(kinds("mobile_number=07700847974 order_id=0412345678"), [(PiiKind::PhoneNumber, "07700847974".into())]);
    assert_eq!(kinds("phone: 0412 345 678\nzip: 123456789"), [(PiiKind::PhoneNumber, "0412 345 678".into())]);
    assert_eq!(kinds(r#"{"ssn": "123456789", "order": "123456789"}"#), [(PiiKind::UsSsn, "123456789".into())]);
    assert!(kinds("order_id=0412345678 zip=123456789").is_empty());
}

#[test]
fn numeric_leaves_are_governed_as_their_json_text() {
    let out = redacted(json!({"card": 4111111111111111u64, "phone": 2125551234u64, "count": 42, "price": 12.5,
        "items": [{"qty": 3}]}));
    assert_eq!(out["card"], "<CREDIT_CARD>");
    assert_eq!(out["phone"], "<USER_PHONE>");
    assert_eq!(out["count"], json!(42));
    assert_eq!(out["price"], json!(12.5));
    assert_eq!(out["items"][0]["qty"], json!(3));
}
