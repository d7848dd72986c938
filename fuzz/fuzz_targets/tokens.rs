//! The reversible-token parser and detokenizer (`engine/src/reversible.rs`): any text is
//! scanned and restored without panicking, in one pass, leaving non-tokens as they are; any
//! value (as found in a text) round-trips through `encrypt` and restore, also inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use warden_engine::{scan_tokens, Keyring, PiiKind, PiiType, RestoreOptions};

fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        Keyring::new("k2", &[2u8; 64])
            .and_then(|r| r.with_old_key("k1", &[1u8; 32]))
            .unwrap_or_else(|e| panic!("fixed keys are valid: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let ring = keyring();
    let text = String::from_utf8_lossy(data);
    // The first byte picks the options: a type filter and a small token limit.
    let flags = data.first().copied().unwrap_or(0);
    let options = RestoreOptions {
        types: (flags & 1 == 1).then(|| vec![String::from("email_address"), String::from("t")]),
        max_tokens: if flags & 2 == 2 { usize::from(flags >> 4) } else { 10_000 },
    };
    let tokens = scan_tokens(&text).count();
    let out = ring.restore_text(&text, &options);
    assert_eq!(out.report.restored + out.report.kept, tokens);
    assert!(out.report.kept_tokens.len() <= warden_engine::MAX_LISTED);
    if out.report.restored == 0 {
        assert_eq!(out.text, text, "nothing restored, yet the text changed");
    }

    // Round trip: the input as a value, alone and inside the input text.
    let kind = PiiKind::ALL[usize::from(flags) % PiiKind::ALL.len()];
    let ty = PiiType::Builtin(kind);
    match ring.encrypt(&ty, &text) {
        None => assert!(text.len() > warden_engine::MAX_VALUE_BYTES),
        Some(token) => {
            assert!(scan_tokens(&token).count() == 1);
            let alone = ring.restore_text(&token, &RestoreOptions::default());
            assert_eq!(alone.text, text);
            let framed = format!("<{token}> {text}");
            let restored = ring.restore_text(&framed, &RestoreOptions::default());
            assert!(restored.text.starts_with(&format!("<{text}> ")), "token inside a text not restored");
        }
    }

    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let (restored, report) = ring.restore_json(&value, &options);
        if report.restored == 0 {
            assert_eq!(restored, value);
        }
    }
});
