//! Workloads shared by the engine benches: the committed corpus (`tests/corpus/`) and
//! adversarial inputs. Built once per bench process, outside the timed loops.

use warden_engine::policy_file::parse_policy;
use warden_engine::{CheckRequest, Policy};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus");

/// The shipped default policy, as `warden serve` loads it.
pub fn policy() -> Policy {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/policy.tool_access.yaml");
    let text = std::fs::read_to_string(path).expect("policies/policy.tool_access.yaml");
    parse_policy("policy.tool_access.yaml", &text).expect("the shipped policy is valid")
}

/// The three ~1 KB request texts of `requests_1k.json`: (`none` | `some` | `dense`, text).
pub fn requests_1k() -> Vec<(&'static str, String)> {
    let text = std::fs::read_to_string(format!("{CORPUS}/requests_1k.json")).expect("requests_1k.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("requests_1k.json is JSON");
    ["none", "some", "dense"].into_iter().map(|k| (k, v[k].as_str().expect("request text").to_owned())).collect()
}

/// A precheck of `text` by the `verify_identity` tool: e-mails pass, SSNs are tokenized, other
/// PII is redacted (the shipped policy's ingress rule for that tool).
pub fn precheck(text: &str) -> CheckRequest {
    CheckRequest { tool: "verify_identity".into(), raw_text: text.into(), ..CheckRequest::default() }
}

/// `prose.jsonl` joined by newlines: ~1 MB of prose with sparse PII.
pub fn prose() -> String {
    let text = std::fs::read_to_string(format!("{CORPUS}/prose.jsonl")).expect("prose.jsonl");
    let docs: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("prose line is JSON");
            v["text"].as_str().expect("text").to_owned()
        })
        .collect();
    docs.join("\n")
}

/// Worst cases for a detector: each repeats a unit that starts a candidate value (digits for
/// cards/SSNs/phones, `@` for e-mails, base64 for keys and JWTs, ...) to `len` bytes.
pub fn adversarial(len: usize) -> Vec<(&'static str, String)> {
    let rep = |unit: &str| {
        let mut s = unit.repeat(len / unit.len() + 1);
        s.truncate(len);
        s
    };
    // Base64 of a fixed byte sequence: long, separator-free, mixed case and digits.
    let base64 = {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(ALPHABET[(x % 64) as usize])
            })
            .collect::<String>()
    };
    vec![
        ("digits", rep("0123456789")),
        ("digit_groups", rep("4111 ")),
        ("at_signs", rep("@")),
        ("local_parts", rep("a.b@")),
        ("base64", base64),
        ("jwt_heads", rep("eyJhbGciOiJIUzI1NiJ9.")),
        ("colons", rep("1:")),
        ("dotted", rep("1.2.3.4.")),
        ("keywords", rep("password=")),
        ("keyword_refs", rep("pwd=${")),
    ]
}
