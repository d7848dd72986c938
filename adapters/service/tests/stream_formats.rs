//! The streaming formats (issue 16): text, NDJSON, OpenAI and Anthropic server-sent events,
//! each with texts split into random deltas and the input bytes into random chunks; the
//! governed text read back from the (well-formed) output equals the one-shot postcheck of
//! each text, with the same decision, and the metadata record comes last.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{json, Value};
use warden_engine::policy_file::parse_policy;
use warden_engine::{Decision, Detector, Direction, Gate, Policy, TokenKey};
use warden_service::stream::{FormatStream, StreamFormat, MAX_EVENT};

/// Seeded, so failures reproduce from the seed.
type Rng = fastrand::Rng;

const PIECES: &[&str] = &[
    "alice@example.com",
    "SSN: 123-45-6789",
    "call +44 20 7946 0958",
    "card 4111 1111 1111 1111",
    "sk-proj-abc123DEF456ghi789JKL012mno",
    "192.168.1.20",
    "GB82 WEST 1234 5698 7654 32",
    "password: hunter2!",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "the answer is",
    "Grüße 👋",
    "line\nbreak",
    "quote \" and \\ backslash",
    "０４１２ ３４５ ６７８",
    "ok",
    "done.",
];

fn text(rng: &mut Rng) -> String {
    let n = 1 + rng.usize(..120);
    let mut t = String::new();
    for _ in 0..n {
        t.push_str(PIECES[rng.usize(..PIECES.len())]);
        t.push_str([" ", " ", "\n", ", ", ". "][rng.usize(..5)]);
    }
    t
}

/// `t` split into deltas at random char boundaries (JSON strings hold whole characters).
fn deltas(rng: &mut Rng, t: &str) -> Vec<String> {
    let chars: Vec<char> = t.chars().collect();
    let max = [1, 3, 8, 40][rng.usize(..4)];
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let n = (1 + rng.usize(..max)).min(chars.len() - i);
        out.push(chars[i..i + n].iter().collect());
        i += n;
    }
    out
}

/// The input bytes cut anywhere.
fn chunks(rng: &mut Rng, input: &[u8]) -> Vec<Vec<u8>> {
    let max = [1, 5, 64, 4096][rng.usize(..4)];
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = (1 + rng.usize(..max)).min(rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    out
}

fn run(gate: &Gate<'_>, tool: &str, format: StreamFormat, field: Option<&str>, parts: &[Vec<u8>]) -> String {
    let mut s = FormatStream::new(gate, tool, "", format, field);
    let mut out = Vec::new();
    for p in parts {
        out.extend(s.push(gate, p));
    }
    let finished = s.finish(gate);
    out.extend(&finished.body);
    out.extend(finished.close(&finished.outcome.record(Some("req-1"))));
    String::from_utf8(out).unwrap()
}

/// Every event of an SSE body: (event name, data).
fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    assert!(body.ends_with("\n\n"), "{body:?}");
    body.trim_end_matches('\n')
        .split("\n\n")
        .map(|e| {
            let mut name = None;
            let mut data = Vec::new();
            for l in e.lines().filter(|l| !l.starts_with(':')) {
                if let Some(n) = l.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data.push(d);
                } else {
                    panic!("unexpected line {l:?} in {body:?}");
                }
            }
            (name, data.join("\n"))
        })
        .collect()
}

const MIXED: &str = r#"
version: v1
defaults:
  egress:
    action: redact
    allow_pii:
      PII:email_address: tokenize
      PII:ip_address: pass_through
"#;

/// (policy, tool): network redaction, tokenize + pass-through, the strict fallback (denies SSNs).
fn cases() -> Vec<(Policy, &'static str)> {
    vec![
        (Policy::default(), "web.chat"),
        (parse_policy("mixed.yaml", MIXED).unwrap(), "chat"),
        (Policy::default(), "crm.chat"),
    ]
}

/// Checks one format: `build` makes the input from the texts' deltas, `read` gets each text back
/// from the output (and the record).
fn check_format(
    format: StreamFormat,
    texts: usize,
    build: impl Fn(&[Vec<String>]) -> String,
    read: impl Fn(&str) -> (Vec<String>, Value),
) {
    let (key, detector) = (TokenKey::new("salt"), Detector::new());
    let mut rng = Rng::with_seed(0x5EED_0000 + format as u64);
    let mut seen = [0usize; 4];
    for (policy, tool) in cases() {
        let gate = Gate::new(&policy, &key, &detector);
        for round in 0..20 {
            let originals: Vec<String> = (0..texts).map(|_| text(&mut rng)).collect();
            let split: Vec<Vec<String>> = originals.iter().map(|t| deltas(&mut rng, t)).collect();
            let input = build(&split);
            let parts = chunks(&mut rng, input.as_bytes());
            let body = run(&gate, tool, format, None, &parts);
            let (got, record) = read(&body);
            let one_shots: Vec<_> = originals.iter().map(|t| gate.check_text(Direction::Egress, tool, "", t)).collect();
            let decision = one_shots.iter().map(|v| v.decision).max().unwrap();
            seen[decision as usize] += 1;
            let ctx = format!("{format:?} {tool} round {round}: input {input:?}\noutput {body:?}");
            assert_eq!(record["decision"], json!(decision), "{ctx}");
            assert_eq!(record["request_id"], "req-1", "{ctx}");
            if decision == Decision::Deny {
                assert!(!body.contains("[DONE]") && !body.contains("message_stop"), "{ctx}");
                continue;
            }
            assert!(
                format == StreamFormat::Text
                    || format == StreamFormat::Ndjson
                    || body.contains("[DONE]")
                    || body.contains("message_stop"),
                "{ctx}"
            );
            let want: Vec<String> = one_shots.iter().map(|v| v.text_out.clone().unwrap()).collect();
            assert_eq!(got, want, "{ctx}");
            if texts == 1 {
                let reasons: Vec<String> = one_shots[0].reasons.iter().map(ToString::to_string).collect();
                assert_eq!(record["reasons"], json!(reasons), "{ctx}");
            }
        }
    }
    assert!(seen[Decision::Transform as usize] > 0 && seen[Decision::Deny as usize] > 0, "{seen:?}");
}

#[test]
fn text_format_equals_one_shot() {
    check_format(
        StreamFormat::Text,
        1,
        |split| split[0].concat(),
        |body| {
            let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            let (last, pieces) = lines.split_last().unwrap();
            let text = pieces.iter().map(|l| l["text"].as_str().unwrap()).collect::<String>();
            (vec![text], last["warden"].clone())
        },
    );
}

#[test]
fn ndjson_format_equals_one_shot() {
    // Ollama chat lines: the text at /message/content, a final `done` line without text.
    check_format(
        StreamFormat::Ndjson,
        1,
        |split| {
            let mut input = String::new();
            for d in &split[0] {
                input += &format!(
                    "{}\n",
                    json!({"model": "m", "message": {"role": "assistant", "content": d}, "done": false})
                );
            }
            input += &format!("{}\n", json!({"model": "m", "done": true}));
            input
        },
        |body| {
            let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            let (last, rest) = lines.split_last().unwrap();
            let text = rest.iter().filter_map(|l| l.pointer("/message/content").and_then(Value::as_str)).collect();
            (vec![text], last["warden"].clone())
        },
    );
}

#[test]
fn openai_format_equals_one_shot_per_choice() {
    check_format(
        StreamFormat::OpenAi,
        2,
        |split| {
            let mut input = String::new();
            let chunk = |choices: Value| {
                format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "choices": choices}))
            };
            input +=
                &chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]));
            let longest = split.iter().map(Vec::len).max().unwrap();
            for k in 0..longest {
                for (i, d) in split.iter().enumerate() {
                    if let Some(d) = d.get(k) {
                        input += &chunk(json!([{"index": i, "delta": {"content": d}, "finish_reason": null}]));
                    }
                }
            }
            // Choice 0 ends with a finish_reason chunk; choice 1 only at [DONE].
            input += &chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]));
            input += ": keep-alive comment\n\ndata: [DONE]\n\n";
            input
        },
        |body| {
            let mut events = sse_events(body);
            // No terminator after a deny.
            if events.last().unwrap().0.is_none() {
                assert_eq!(events.pop().unwrap(), (None, String::from("[DONE]")));
            }
            let rest = &events[..];
            let (warden, rest) = rest.split_last().unwrap();
            assert_eq!(warden.0.as_deref(), Some("warden"));
            let mut texts = vec![String::new(), String::new()];
            for (_, data) in rest {
                if data.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(data).unwrap();
                for c in v["choices"].as_array().unwrap() {
                    if let Some(t) = c.pointer("/delta/content").and_then(Value::as_str) {
                        texts[c["index"].as_u64().unwrap() as usize] += t;
                    }
                }
            }
            (texts, serde_json::from_str(&warden.1).unwrap())
        },
    );
}

#[test]
fn anthropic_format_equals_one_shot_per_block() {
    check_format(
        StreamFormat::Anthropic,
        2,
        |split| {
            let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
            let mut input = ev("message_start", json!({"type": "message_start", "message": {"id": "m1"}}));
            for (i, d) in split.iter().enumerate() {
                input += &ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
                );
                for piece in d {
                    input += &ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": piece}}),
                    );
                }
                input += &ev("ping", json!({"type": "ping"}));
                input += &ev("content_block_stop", json!({"type": "content_block_stop", "index": i}));
            }
            input += &ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}));
            input += &ev("message_stop", json!({"type": "message_stop"}));
            input
        },
        |body| {
            let mut events = sse_events(body);
            if events.last().unwrap().0.as_deref() != Some("warden") {
                assert_eq!(events.pop().unwrap().0.as_deref(), Some("message_stop"));
            }
            let rest = &events[..];
            let (warden, rest) = rest.split_last().unwrap();
            assert_eq!(warden.0.as_deref(), Some("warden"));
            let mut texts = vec![String::new(), String::new()];
            let mut stopped = [false, false];
            for (name, data) in rest {
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(name.as_deref(), v["type"].as_str());
                let i = v["index"].as_u64().unwrap_or(0) as usize;
                match name.as_deref() {
                    Some("content_block_delta") => {
                        assert!(!stopped[i], "delta after its block stopped: {body}");
                        texts[i] += v["delta"]["text"].as_str().unwrap();
                    }
                    Some("content_block_stop") => stopped[i] = true,
                    _ => {}
                }
            }
            (texts, serde_json::from_str(&warden.1).unwrap())
        },
    );
}

#[test]
fn a_deny_ends_the_stream_with_the_record_and_no_terminator() {
    let (policy, key, detector) = (Policy::default(), TokenKey::new("salt"), Detector::new());
    let gate = Gate::new(&policy, &key, &detector);
    let prose = "fine words here. ".repeat(200);
    let mut input = String::new();
    for piece in [prose.as_str(), "SSN: 123-45-6789 ", prose.as_str()] {
        input += &format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": piece}}]}));
    }
    input += "data: [DONE]\n\n";
    let body = run(&gate, "crm.chat", StreamFormat::OpenAi, None, &[input.into_bytes()]);
    let events = sse_events(&body);
    let (last, before) = events.split_last().unwrap();
    assert_eq!(last.0.as_deref(), Some("warden"));
    let record: Value = serde_json::from_str(&last.1).unwrap();
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["reasons"], json!(["strict_pii_blocked:PII:us_ssn"]));
    assert!(!body.contains("123-45-6789") && !body.contains("[DONE]"));
    // Text released before the deny stays released.
    assert!(before.iter().any(|(_, d)| d.contains("fine words")));
    // A denied tool: only the record.
    let body = run(&gate, "python.exec", StreamFormat::Text, None, &[b"print(1)".to_vec()]);
    let record: Value = serde_json::from_str(body.trim_end()).unwrap();
    assert_eq!(record["warden"]["reasons"], json!(["blocked tool: code/exec"]));
}

#[test]
fn bad_input_stops_with_an_error_record() {
    let (policy, key, detector) = (Policy::default(), TokenKey::new("salt"), Detector::new());
    let gate = Gate::new(&policy, &key, &detector);
    let body = run(&gate, "web.chat", StreamFormat::Ndjson, None, &[b"{\"text\":\"hi\"}\nnot json\n".to_vec()]);
    let last: Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
    assert_eq!(last["warden"]["decision"], "deny");
    assert_eq!(last["warden"]["error"]["code"], "invalid_request");
    let body = run(&gate, "web.chat", StreamFormat::Text, None, &[b"caf\xC3".to_vec(), b"(".to_vec()]);
    assert!(body.contains("not UTF-8 at byte 3"), "{body}");
    // An event over the limit, fed in pieces: stopped without buffering it all.
    let mut s = FormatStream::new(&gate, "web.chat", "", StreamFormat::OpenAi, None);
    let piece = vec![b'a'; 64 << 10];
    for _ in 0..(MAX_EVENT / piece.len() + 2) {
        assert!(s.push(&gate, &piece).is_empty());
    }
    assert!(s.is_stopped());
    let f = s.finish(&gate);
    assert!(f.outcome.error.unwrap().1.contains("longer than"));
}

#[test]
fn text_chars_counts_the_governed_text_in_every_format_for_budgets() {
    let mut rng = Rng::with_seed(16);
    let policy = Policy::default();
    let (key, detector) = (TokenKey::new("salt"), Detector::new());
    let gate = Gate::new(&policy, &key, &detector);
    for round in 0..40 {
        // Without the values the strict fallback denies: a deny stops reading.
        let t = text(&mut rng).replace("SSN: 123-45-6789", "SSN").replace("password: hunter2!", "pw");
        let want = t.chars().count() as u64;
        let pieces = deltas(&mut rng, &t);
        let input: String = match round % 4 {
            0 => t.clone(),
            1 => pieces.iter().map(|p| format!("{}\n", json!({"message": {"content": p}}))).collect(),
            2 => {
                let mut s: String = pieces
                    .iter()
                    .map(|p| format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": p}}]})))
                    .collect();
                s += "data: [DONE]\n\n";
                s
            }
            _ => pieces
                .iter()
                .map(|p| {
                    let d =
                        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}});
                    format!("event: content_block_delta\ndata: {d}\n\n")
                })
                .collect(),
        };
        let format =
            [StreamFormat::Text, StreamFormat::Ndjson, StreamFormat::OpenAi, StreamFormat::Anthropic][round % 4];
        let mut s = FormatStream::new(&gate, "web.chat", "", format, None);
        // Byte chunks cut inside characters: the count is of characters, not of pieces.
        for c in chunks(&mut rng, input.as_bytes()) {
            s.push(&gate, &c);
        }
        let outcome = s.finish(&gate).outcome;
        assert_ne!(outcome.decision, Decision::Deny, "round {round}: {outcome:?}");
        assert_eq!(outcome.text_chars, want, "round {round} ({format:?}): {t:?}");
    }
}
