//! JSON mode: `Gate::evaluate` on any JSON payload (bytes that are not JSON become a string
//! payload), both directions, with and without a tool rule. The answer must serialize.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_engine::{Direction, EvaluateRequest};

fuzz_target!(|data: &[u8]| {
    let payload = serde_json::from_slice::<serde_json::Value>(data)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(data).into_owned()));
    let gate = warden_fuzz::bundled_gate();
    for (direction, tool) in [(Direction::Ingress, None), (Direction::Egress, Some("data_export"))] {
        let req = EvaluateRequest {
            payload: payload.clone(),
            agent_id: "fuzz".into(),
            tool: tool.map(String::from),
            direction: Some(direction),
            ..Default::default()
        };
        let answer = gate.evaluate(&req, 1_700_000_000);
        assert!(serde_json::to_vec(&answer).is_ok(), "an evaluate answer serializes");
    }
});
