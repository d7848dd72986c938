//! Request policies (`policy_config`): under `PolicyMode::Tighten` a request's own policy
//! never makes a decision less strict than the server policy's, on generated policies and
//! texts; the recognizer caps hold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{json, Value};
use warden_engine::{
    CheckRequest, Decision, Detector, Direction, EvaluateRequest, Gate, Keyring, OnError, PiiAction, Policy,
    PolicyMode, RequestPolicy, TokenKey,
};

/// Seeded, so failures reproduce.
type Rng = fastrand::Rng;

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.u64(..100) < percent
}

const ACTIONS: [&str; 6] = ["pass_through", "tokenize", "redact", "deny", "confirm", "encrypt"];
const PII_ACTIONS: [&str; 5] = ["pass_through", "tokenize", "redact", "deny", "encrypt"];
const TYPES: [&str; 5] = ["PII:email_address", "PII:us_ssn", "PII:credit_card", "PII:phone_number", "PII:employee_id"];
const TOOLS: [&str; 4] = ["crm.update", "python.exec", "web.fetch", "notes"];
const VALUES: [&str; 7] = [
    "bob@corp.io",
    "123-45-6789",
    "4111 1111 1111 1111",
    "+44 20 7946 0958",
    "EMP-123456",
    "EMP-12345678",
    "plain words",
];

fn allow_pii(rng: &mut Rng) -> Value {
    let mut map = serde_json::Map::new();
    for ty in TYPES {
        if chance(rng, 40) {
            map.insert(ty.to_owned(), json!(pick(rng, &PII_ACTIONS)));
        }
    }
    Value::Object(map)
}

fn policy(rng: &mut Rng) -> Value {
    let mut p = json!({"version": "v1",
        "custom_pii": [{"type": "employee_id", "pattern": if chance(rng, 50) { "EMP-[0-9]{6}" } else { "EMP-[0-9]{4,8}" }}]});
    if chance(rng, 70) {
        p["defaults"] = json!({"ingress": {"action": pick(rng, &ACTIONS), "allow_pii": allow_pii(rng)}});
    }
    if chance(rng, 60) {
        let tool = *pick(rng, &TOOLS);
        p["tool_access"] = json!({tool: {"action": pick(rng, &ACTIONS), "allow_pii": allow_pii(rng)}});
    }
    if chance(rng, 50) {
        p["deny_tools"] = if chance(rng, 50) { json!([]) } else { json!([pick(rng, &TOOLS)]) };
    }
    if chance(rng, 30) {
        p["on_error"] = json!(*pick(rng, &["block", "pass", "best_effort"]));
    }
    p
}

fn text(rng: &mut Rng) -> String {
    let mut t = String::from("note:");
    for _ in 0..(1 + rng.u64(..) % 4) {
        t.push(' ');
        let value: &&str = pick(rng, &VALUES);
        t.push_str(value);
    }
    t
}

fn rank(a: Option<PiiAction>) -> u8 {
    match a {
        None | Some(PiiAction::PassThrough) => 0,
        Some(PiiAction::Encrypt) => 1,
        Some(PiiAction::Tokenize) => 2,
        Some(PiiAction::Redact) => 3,
        Some(PiiAction::Deny) => 4,
    }
}

#[test]
fn tighten_is_never_less_strict_than_the_server_policy() {
    let mut rng = Rng::with_seed(0x5eed_1234_abcd_0001);
    let key = TokenKey::new("salt");
    let keyring = Keyring::new("k1", &[7u8; 32]).unwrap();
    let detector = Detector::new();
    let mut compared = 0;
    for _ in 0..1500 {
        let server = Policy::from_json_value(&policy(&mut rng)).unwrap();
        let own = RequestPolicy::parse(&policy(&mut rng));
        let req = CheckRequest {
            tool: pick(&mut rng, &TOOLS).to_string(),
            raw_text: text(&mut rng),
            ..CheckRequest::default()
        };
        let gate = Gate::new(&server, &key, &detector)
            .with_keyring(&keyring)
            .with_on_error(*pick(&mut rng, &[OnError::Block, OnError::Pass]));
        let alone = gate.check_with(&req, Direction::Ingress, None);
        let tight = gate.with_mode(PolicyMode::Tighten).check_with(&req, Direction::Ingress, Some(&own));
        assert!(tight.decision >= alone.decision, "{req:?}\nserver {alone:?}\ntight {tight:?}");
        if tight.decision == Decision::Deny {
            assert!(tight.text_out.is_none());
            continue;
        }
        // Every value the server policy transforms is transformed at least as strictly.
        for f in &alone.findings {
            let covering = tight.findings.iter().find(|t| t.found.start <= f.found.start && f.found.end <= t.found.end);
            let covering = covering.unwrap_or_else(|| panic!("{req:?}: {f:?} not covered in {tight:?}"));
            assert!(rank(covering.action) >= rank(f.action), "{req:?}: {f:?} weakened to {covering:?}");
            if rank(f.action) > 0 {
                let value = &req.raw_text[f.found.start..f.found.end];
                assert!(!tight.text_out.as_deref().unwrap_or_default().contains(value), "{req:?}: {value} leaked");
            }
        }
        compared += 1;
    }
    assert!(compared > 250, "too few non-deny cases compared: {compared}");
}

#[test]
fn tighten_applies_to_json_mode_and_invalid_request_policies() {
    let server =
        Policy::from_json_value(&json!({"defaults": {"ingress": {"action": "redact"}}, "on_error": "block"})).unwrap();
    let key = TokenKey::new("salt");
    let detector = Detector::new();
    let gate = Gate::new(&server, &key, &detector).with_mode(PolicyMode::Tighten);
    let req = EvaluateRequest {
        payload: json!({"a": "ssn 123-45-6789", "b": ["mail bob@corp.io"]}),
        agent_id: String::from("a"),
        ..EvaluateRequest::default()
    };
    let lax = RequestPolicy::parse(&json!({"defaults": {"ingress": {"action": "pass_through"}}}));
    let (resp, _) = gate.evaluate_with(&req, 0, Some(&lax));
    assert_eq!(resp.modified_payload, json!({"a": "ssn <USER_SSN>", "b": ["mail <USER_EMAIL>"]}));
    // An invalid request policy naming `pass` gets the server's stricter `block`.
    let invalid = RequestPolicy::parse(&json!({"on_error": "pass", "nonsense": 1}));
    let (resp, _) = gate.evaluate_with(&req, 0, Some(&invalid));
    assert_eq!(resp.decision, Decision::Deny);
    // In replace mode the request's own on_error decides (SPEC §3).
    let (resp, _) = gate.with_mode(PolicyMode::Replace).evaluate_with(&req, 0, Some(&invalid));
    assert_eq!(resp.decision, Decision::Allow);
}

#[test]
fn recognizer_and_list_caps() {
    let many: Vec<Value> = (0..33).map(|i| json!({"type": format!("t{i}"), "pattern": "x"})).collect();
    let e = Policy::from_json_value(&json!({"custom_pii": many})).unwrap_err();
    assert!(e.limit && e.field == "custom_pii", "{e:?}");
    let tools: Vec<String> = (0..1025).map(|i| format!("t{i}")).collect();
    let e = Policy::from_json_value(&json!({"deny_tools": tools})).unwrap_err();
    assert!(e.limit && e.field == "deny_tools", "{e:?}");
    assert!(matches!(RequestPolicy::parse(&json!({"deny_tools": tools})), RequestPolicy::TooLarge { .. }));
    // Malformed (not over a limit) stays an ordinary invalid policy, decided by on_error.
    assert!(matches!(RequestPolicy::parse(&json!({"deny_tools": 3})), RequestPolicy::Invalid { .. }));
}

#[test]
fn overlapping_recognizers_select_greedily_without_materializing_candidates() {
    // 32 recognizers matching every character: the selection is one match per character.
    let customs: Vec<Value> = (0..32).map(|i| json!({"type": format!("t{i}"), "pattern": "."})).collect();
    let policy =
        Policy::from_json_value(&json!({"custom_pii": customs, "defaults": {"ingress": {"action": "redact"}}}))
            .unwrap();
    let key = TokenKey::new("s");
    let detector = Detector::new();
    let gate = Gate::new(&policy, &key, &detector);
    let text = "ab bob@corp.io cd";
    let found = gate.find(text);
    // Built-in wins its span; the first recognizer takes every other character.
    assert!(found.iter().any(|m| m.ty.name() == "email_address" && &text[m.start..m.end] == "bob@corp.io"));
    assert!(found.iter().filter(|m| m.ty.name() != "email_address").all(|m| m.ty.name() == "t0"));
    assert_eq!(found.len(), text.len() - "bob@corp.io".len() + 1);
}
