//! Detection and redaction under the bundled policy: `Gate::find`, `Gate::redact` and
//! `Gate::check_text` both ways, on any text (non-UTF-8 input is read lossily, so every
//! input counts). Checks the span invariants callers rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_engine::Direction;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let gate = warden_fuzz::bundled_gate();
    let found = gate.find(&text);
    let mut last_end = 0;
    for m in &found {
        assert!(m.start < m.end && m.start >= last_end, "spans sorted, non-empty, disjoint: {found:?}");
        assert!(text.get(m.start..m.end).is_some(), "span on char boundaries: {m:?}");
        last_end = m.end;
    }
    let chars = text.chars().count();
    let redacted = gate.redact(&text);
    assert_eq!(redacted.matches.len(), found.len(), "redact reports what find finds");
    for e in &redacted.matches {
        assert!(e.start < e.end && e.end <= chars, "char offsets inside the input: {e:?}");
    }
    let _ = gate.check_text(Direction::Ingress, "", "", &text);
    let _ = gate.check_text(Direction::Egress, "send_marketing_email", "net.external", &text);
});
