//! Policy parsing: the same bytes as a YAML policy file (`parse_policy`), as a JSON policy
//! (`Policy::from_json_value`) and as a request's `policy_config` (`RequestPolicy::parse`,
//! under replace and tighten). A policy that parses is then used once, so compiled custom
//! recognizers run too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_engine::{Direction, Gate, PolicyMode, RequestPolicy};

const SAMPLE: &str = "mail bob@example.com ssn 123-45-6789 card 4111 1111 1111 1111 pwd=hunter2 +1 415 555 0100";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (detector, key) = warden_fuzz::detector_and_key();
    if let Ok(policy) = warden_engine::policy_file::parse_policy("fuzz.yaml", text) {
        let gate = Gate::new(&policy, key, detector);
        let _ = gate.check_text(Direction::Ingress, "data_export", "", SAMPLE);
        let _ = gate.redact(SAMPLE);
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else { return };
    if let Ok(policy) = warden_engine::Policy::from_json_value(&value) {
        let _ = Gate::new(&policy, key, detector).check_text(Direction::Egress, "audit_log", "net", SAMPLE);
    }
    let request = RequestPolicy::parse(&value);
    let gate = warden_fuzz::bundled_gate();
    for mode in [PolicyMode::Replace, PolicyMode::Tighten] {
        let req =
            warden_engine::CheckRequest { tool: "data_export".into(), raw_text: SAMPLE.into(), ..Default::default() };
        let _ = gate.with_mode(mode).check_with(&req, Direction::Ingress, Some(&request));
    }
});
