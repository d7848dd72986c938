//! Streaming postcheck of AI answers in their wire shapes (issue 16): plain text, NDJSON, and
//! server-sent events of OpenAI chat-completion chunks and Anthropic messages. The text deltas
//! are governed as one text per choice (OpenAI) or content block (Anthropic) by the engine's
//! [`TextStream`], so a value split over several events is still found; every event stays
//! well-formed: governed text held back is released in a later event's delta, and the rest goes
//! into the event that ends the text (a chunk with `finish_reason`) or a synthetic one before
//! the stream's terminator (`data: [DONE]`, `message_stop`). A metadata record with the decision
//! comes last ([`Finished::close`]).
//!
//! Runtime-neutral (no tokio, no I/O): routers and the wasm package feed it bytes.
//!
//! ```
//! use warden_engine::{Detector, Gate, Policy, TokenKey};
//! use warden_service::stream::{FormatStream, StreamFormat};
//!
//! let (policy, key, detector) = (Policy::default(), TokenKey::new("salt"), Detector::new());
//! let gate = Gate::new(&policy, &key, &detector);
//! let mut s = FormatStream::new(&gate, "web.chat", "", StreamFormat::OpenAi, None);
//! let mut out = Vec::new();
//! for piece in ["mail ali", "ce@example.com", " now"] {
//!     let event = serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}}]});
//!     out.extend(s.push(&gate, format!("data: {event}\n\n").as_bytes()));
//! }
//! out.extend(s.push(&gate, b"data: [DONE]\n\n"));
//! let finished = s.finish(&gate);
//! out.extend(&finished.body);
//! out.extend(finished.close(&finished.outcome.record(None)));
//! let text = String::from_utf8(out).unwrap_or_default();
//! assert!(text.contains("<USER_EMAIL>") && !text.contains("alice"));
//! assert!(text.ends_with("event: warden\ndata: {\"decision\":\"transform\",\"reasons\":[\"pii.redacted:PII:email_address\"],\"policy_id\":\"net-redact-regex\",\"pii_counts\":{\"email_address\":1}}\n\ndata: [DONE]\n\n"));
//! ```

use serde_json::{json, Map, Value};
use warden_engine::{Decision, ErrorCode, Gate, PolicyId, Reason, StreamStop, TextStream, Verdict};

/// Longest line (NDJSON) or event (SSE) accepted, in bytes.
pub const MAX_EVENT: usize = 1 << 20;

/// Most texts (OpenAI choices, Anthropic content blocks) one stream may carry.
pub const MAX_TEXTS: usize = 64;

/// Where the text delta of an NDJSON line is looked for, in order, when no field is given:
/// OpenAI-style chunks, Ollama chat and generate, generic shapes.
pub const NDJSON_FIELDS: [&str; 6] =
    ["/choices/0/delta/content", "/message/content", "/response", "/delta/text", "/text", "/content"];

/// The shape of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFormat {
    /// UTF-8 text; out: NDJSON `{"text": ...}` lines.
    Text,
    /// JSON lines with a text delta at a JSON pointer.
    Ndjson,
    /// Server-sent events of OpenAI chat-completion chunks.
    OpenAi,
    /// Server-sent events of the Anthropic messages API.
    Anthropic,
}

impl StreamFormat {
    /// Parses a `format` parameter: `text`, `ndjson`, `openai` or `anthropic`.
    pub fn parse(s: &str) -> Option<StreamFormat> {
        match s {
            "text" => Some(StreamFormat::Text),
            "ndjson" => Some(StreamFormat::Ndjson),
            "openai" => Some(StreamFormat::OpenAi),
            "anthropic" => Some(StreamFormat::Anthropic),
            _ => None,
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            StreamFormat::Text | StreamFormat::Ndjson => "application/x-ndjson",
            StreamFormat::OpenAi | StreamFormat::Anthropic => "text/event-stream",
        }
    }

    fn sse(self) -> bool {
        matches!(self, StreamFormat::OpenAi | StreamFormat::Anthropic)
    }
}

/// What a stream decided: the parts of a decision record and of the metadata record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOutcome {
    /// The most severe decision over the stream's texts.
    pub decision: Decision,
    /// Reasons, deduplicated, in order of first occurrence.
    pub reasons: Vec<Reason>,
    /// The level that decided.
    pub policy_id: PolicyId,
    /// PII values found per type, in order of first occurrence.
    pub pii_counts: Vec<(String, usize)>,
    /// Set when the stream stopped on bad input.
    pub error: Option<(ErrorCode, String)>,
    /// Bytes of input read.
    pub input_bytes: u64,
    /// Characters (Unicode scalars) of governed text read, over every text of the stream:
    /// what a postcheck of the same text would count for budgets.
    pub text_chars: u64,
}

impl StreamOutcome {
    /// The metadata record sent last: decision, reasons, policy id, PII counts, the request id
    /// when given, and the error when there was one.
    pub fn record(&self, request_id: Option<&str>) -> Value {
        let counts: Map<String, Value> = self.pii_counts.iter().map(|(t, n)| (t.clone(), json!(n))).collect();
        let mut r = json!({
            "decision": self.decision,
            "reasons": self.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "policy_id": self.policy_id.name(),
            "pii_counts": counts,
        });
        if let Value::Object(m) = &mut r {
            if let Some(id) = request_id {
                m.insert("request_id".into(), json!(id));
            }
            if let Some((code, message)) = &self.error {
                m.insert("error".into(), json!({"code": code.as_str(), "message": message}));
            }
        }
        r
    }

    /// Marks the stream as stopped on bad input: decision `deny` under `on-error`, reason
    /// `error:invalid_request`, and the message.
    pub fn fail(&mut self, message: String) {
        self.decision = Decision::Deny;
        self.policy_id = PolicyId::OnError;
        let reason = Reason::Error(ErrorCode::InvalidRequest);
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
        self.error = Some((ErrorCode::InvalidRequest, message));
    }

    fn absorb(&mut self, v: &Verdict) {
        self.decision = self.decision.max(v.decision);
        self.policy_id = v.policy_id;
        for r in &v.reasons {
            if !self.reasons.contains(r) {
                self.reasons.push(r.clone());
            }
        }
        for f in &v.findings {
            let name = f.found.ty.name();
            match self.pii_counts.iter_mut().find(|(t, _)| t == name) {
                Some((_, n)) => *n += 1,
                None => self.pii_counts.push((name.to_owned(), 1)),
            }
        }
    }
}

/// The end of a stream: the last governed bytes and the outcome.
#[derive(Clone, Debug)]
pub struct Finished {
    /// Governed bytes still to send (before the metadata record).
    pub body: Vec<u8>,
    /// What was decided.
    pub outcome: StreamOutcome,
    format: StreamFormat,
    /// The input's terminator (`data: [DONE]`, `message_stop`), sent after the record.
    terminator: Vec<u8>,
}

impl Finished {
    /// The metadata record framed for the format, followed by the input's terminator (none
    /// after a deny or an error).
    pub fn close(&self, record: &Value) -> Vec<u8> {
        let mut out = if self.format.sse() {
            format!("event: warden\ndata: {record}\n\n").into_bytes()
        } else {
            format!("{}\n", json!({ "warden": record })).into_bytes()
        };
        if self.outcome.decision != Decision::Deny {
            out.extend_from_slice(&self.terminator);
        }
        out
    }
}

/// One text of the stream (a choice or a content block) and what its last event looked like.
#[derive(Debug)]
struct Text {
    index: u64,
    stream: Option<TextStream>,
    /// The last event that carried this text, for a synthetic event with the rest.
    template: Option<Value>,
}

/// A stream in one of the [`StreamFormat`]s, governed as it arrives. Owns its state (no
/// lifetime); every call takes a gate over the same policy, key and detector.
#[derive(Debug)]
pub struct FormatStream {
    format: StreamFormat,
    tool: String,
    scope: String,
    /// NDJSON: the JSON pointer of the text delta (`None`: [`NDJSON_FIELDS`]).
    field: Option<String>,
    texts: Vec<Text>,
    /// Input not yet split into lines.
    pending: Vec<u8>,
    /// SSE: the lines of the event being read.
    event: Vec<String>,
    event_len: usize,
    terminator: Vec<u8>,
    outcome: StreamOutcome,
    stopped: bool,
    /// Input after the terminator is ignored.
    ended: bool,
}

impl FormatStream {
    /// A stream for `tool` in `scope`. `field` (NDJSON only) is the JSON pointer of the text.
    /// A tool the policy denies stops the stream before any input.
    pub fn new(gate: &Gate<'_>, tool: &str, scope: &str, format: StreamFormat, field: Option<&str>) -> FormatStream {
        let mut s = FormatStream {
            format,
            tool: tool.to_owned(),
            scope: scope.to_owned(),
            field: field.map(str::to_owned),
            texts: Vec::new(),
            pending: Vec::new(),
            event: Vec::new(),
            event_len: 0,
            terminator: Vec::new(),
            outcome: StreamOutcome {
                decision: Decision::Allow,
                reasons: Vec::new(),
                policy_id: PolicyId::StrictFallback,
                pii_counts: Vec::new(),
                error: None,
                input_bytes: 0,
                text_chars: 0,
            },
            stopped: false,
            ended: false,
        };
        let mut probe = gate.postcheck_stream(tool, scope);
        if let Err(stop) = probe.push(gate, b"") {
            s.stop(stop);
        }
        s
    }

    /// Whether the stream has stopped (denied, or bad input): nothing more will be released.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Reads `input`; returns the governed bytes to send now.
    pub fn push(&mut self, gate: &Gate<'_>, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.stopped || self.ended {
            return out;
        }
        self.outcome.input_bytes += input.len() as u64;
        if self.format == StreamFormat::Text {
            // A UTF-8 character has exactly one byte that is not a continuation byte.
            self.outcome.text_chars += input.iter().filter(|&&b| b & 0xC0 != 0x80).count() as u64;
            let Some(stream) = self.text(gate, 0).and_then(|t| t.stream.as_mut()) else { return out };
            match stream.push(gate, input) {
                Ok(piece) => text_line(&mut out, &piece),
                Err(stop) => self.stop(stop),
            }
            return out;
        }
        let mut rest = input;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(nl);
            rest = tail.get(1..).unwrap_or_default();
            if self.pending.len() + head.len() > MAX_EVENT {
                self.fail(format!("a line is longer than {MAX_EVENT} bytes"));
                return out;
            }
            self.pending.extend_from_slice(head);
            let line = std::mem::take(&mut self.pending);
            self.line(gate, &line, &mut out);
            if self.stopped || self.ended {
                return out;
            }
        }
        if self.pending.len() + rest.len() > MAX_EVENT {
            self.fail(format!("a line is longer than {MAX_EVENT} bytes"));
            return out;
        }
        self.pending.extend_from_slice(rest);
        out
    }

    /// Ends the stream: the last governed bytes and the outcome.
    pub fn finish(mut self, gate: &Gate<'_>) -> Finished {
        let mut body = Vec::new();
        if !self.stopped && !self.ended {
            match self.format {
                StreamFormat::Text => {}
                StreamFormat::Ndjson => {
                    if !self.pending.is_empty() {
                        let line = std::mem::take(&mut self.pending);
                        self.line(gate, &line, &mut body);
                    }
                }
                StreamFormat::OpenAi | StreamFormat::Anthropic => {
                    if !self.pending.is_empty() {
                        let line = std::mem::take(&mut self.pending);
                        self.line(gate, &line, &mut body);
                    }
                    if !self.event.is_empty() {
                        self.line(gate, b"", &mut body);
                    }
                }
            }
        }
        if !self.stopped && !self.ended {
            self.end_all(gate, &mut body);
        }
        if !self.stopped && self.texts.is_empty() {
            // No text at all: the verdict of the empty text.
            if let Err(stop) =
                gate.postcheck_stream(&self.tool, &self.scope).finish(gate).map(|end| self.outcome.absorb(&end.verdict))
            {
                self.stop(stop);
            }
        }
        if self.stopped {
            body.clear();
        }
        Finished { body, outcome: self.outcome, format: self.format, terminator: self.terminator }
    }

    fn stop(&mut self, stop: StreamStop) {
        match stop {
            StreamStop::Denied(v) => {
                self.outcome.absorb(&v);
                self.outcome.decision = Decision::Deny;
            }
            StreamStop::InvalidUtf8 { offset } => {
                self.fail(format!("the text is not UTF-8 at byte {offset}"));
            }
        }
        self.stopped = true;
    }

    fn fail(&mut self, message: String) {
        self.outcome.fail(message);
        self.stopped = true;
    }

    /// The text stream of `index`, made on first use (`None`: over [`MAX_TEXTS`], or that
    /// text already ended; the stream has failed in the first case).
    fn text(&mut self, gate: &Gate<'_>, index: u64) -> Option<&mut Text> {
        let pos = match self.texts.iter().position(|t| t.index == index) {
            Some(p) => p,
            None if self.texts.len() >= MAX_TEXTS => {
                self.fail(format!("more than {MAX_TEXTS} choices or content blocks"));
                return None;
            }
            None => {
                let stream = Some(gate.postcheck_stream(&self.tool, &self.scope));
                self.texts.push(Text { index, stream, template: None });
                self.texts.len() - 1
            }
        };
        self.texts.get_mut(pos)
    }

    /// Governs `piece` of text `index`; `None` when the stream stopped.
    fn govern(&mut self, gate: &Gate<'_>, index: u64, piece: &str) -> Option<String> {
        self.outcome.text_chars += piece.chars().count() as u64;
        let stream = self.text(gate, index)?.stream.as_mut()?;
        match stream.push(gate, piece.as_bytes()) {
            Ok(out) => Some(out),
            Err(stop) => {
                self.stop(stop);
                None
            }
        }
    }

    /// Ends text `index`: its rest (`None` when the stream stopped; empty when it had ended).
    fn end_text(&mut self, gate: &Gate<'_>, index: u64) -> Option<String> {
        let stream = self.text(gate, index)?.stream.take();
        let Some(stream) = stream else { return Some(String::new()) };
        match stream.finish(gate) {
            Ok(end) => {
                self.outcome.absorb(&end.verdict);
                Some(end.rest)
            }
            Err(stop) => {
                self.stop(stop);
                None
            }
        }
    }

    /// Ends every open text, sending each rest in a synthetic event shaped like its last one.
    fn end_all(&mut self, gate: &Gate<'_>, out: &mut Vec<u8>) {
        let indexes: Vec<u64> = self.texts.iter().filter(|t| t.stream.is_some()).map(|t| t.index).collect();
        for index in indexes {
            let Some(rest) = self.end_text(gate, index) else { return };
            if self.format == StreamFormat::Text {
                text_line(out, &rest);
                continue;
            }
            let template = self.texts.iter().find(|t| t.index == index).and_then(|t| t.template.clone());
            if let (false, Some(template)) = (rest.is_empty(), template) {
                self.synthetic(out, index, template, rest);
            }
        }
    }

    /// An event (or NDJSON line) carrying `rest` of text `index`, shaped like `template`.
    fn synthetic(&self, out: &mut Vec<u8>, index: u64, mut template: Value, rest: String) {
        match self.format {
            StreamFormat::Text => text_line(out, &rest),
            StreamFormat::Ndjson => {
                if let Some(slot) = self.ndjson_slot(&mut template) {
                    *slot = Value::String(rest);
                }
                out.extend(template.to_string().into_bytes());
                out.push(b'\n');
            }
            StreamFormat::OpenAi => {
                // The last chunk of that choice, with only the rest as its delta.
                if let Some(choices) = template.get_mut("choices").and_then(Value::as_array_mut) {
                    choices.retain(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == index);
                    for c in choices.iter_mut() {
                        c["delta"] = json!({ "content": rest });
                        c["finish_reason"] = Value::Null;
                    }
                }
                sse_event(out, None, &template);
            }
            StreamFormat::Anthropic => {
                let event = json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": rest}});
                sse_event(out, Some("content_block_delta"), &event);
            }
        }
    }

    /// The text slot of an NDJSON line: the configured pointer, else the first of
    /// [`NDJSON_FIELDS`] holding a string.
    fn ndjson_slot<'v>(&self, line: &'v mut Value) -> Option<&'v mut Value> {
        let pointer = match &self.field {
            Some(f) => f.as_str(),
            None => NDJSON_FIELDS.into_iter().find(|p| line.pointer(p).is_some_and(Value::is_string))?,
        };
        line.pointer_mut(pointer).filter(|v| v.is_string())
    }

    /// Handles one input line (without its `\n`).
    fn line(&mut self, gate: &Gate<'_>, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.format {
            StreamFormat::Text => {}
            StreamFormat::Ndjson => self.ndjson_line(gate, line, out),
            StreamFormat::OpenAi | StreamFormat::Anthropic => {
                let Ok(text) = std::str::from_utf8(line) else {
                    self.fail(String::from("an event line is not UTF-8"));
                    return;
                };
                if !text.is_empty() {
                    if self.event_len + text.len() > MAX_EVENT {
                        self.fail(format!("an event is longer than {MAX_EVENT} bytes"));
                        return;
                    }
                    self.event_len += text.len() + 1;
                    self.event.push(text.to_owned());
                    return;
                }
                let lines = std::mem::take(&mut self.event);
                self.event_len = 0;
                if !lines.is_empty() {
                    self.sse_event(gate, lines, out);
                }
            }
        }
    }

    fn ndjson_line(&mut self, gate: &Gate<'_>, line: &[u8], out: &mut Vec<u8>) {
        if line.iter().all(u8::is_ascii_whitespace) {
            out.extend_from_slice(line);
            out.push(b'\n');
            return;
        }
        let Ok(mut value) = serde_json::from_slice::<Value>(line) else {
            self.fail(String::from("a line is not JSON"));
            return;
        };
        let Some(piece) = self.ndjson_slot(&mut value).and_then(|v| v.as_str()).map(str::to_owned) else {
            out.extend_from_slice(line);
            out.push(b'\n');
            return;
        };
        let Some(governed) = self.govern(gate, 0, &piece) else { return };
        if let Some(slot) = self.ndjson_slot(&mut value) {
            *slot = Value::String(governed);
        }
        if let Some(t) = self.texts.iter_mut().find(|t| t.index == 0) {
            t.template = Some(value.clone());
        }
        out.extend(value.to_string().into_bytes());
        out.push(b'\n');
    }

    /// Handles one complete SSE event (its non-empty lines).
    fn sse_event(&mut self, gate: &Gate<'_>, lines: Vec<String>, out: &mut Vec<u8>) {
        let data: Vec<&str> = sse_field(&lines, "data:").collect();
        let name = sse_field(&lines, "event:").next().map(str::to_owned);
        let data = data.join("\n");
        let passthrough = |out: &mut Vec<u8>| {
            for l in &lines {
                out.extend_from_slice(l.as_bytes());
                out.push(b'\n');
            }
            out.push(b'\n');
        };
        let raw = || {
            let mut v = Vec::new();
            passthrough(&mut v);
            v
        };
        match self.format {
            StreamFormat::OpenAi if data == "[DONE]" => {
                self.end_all(gate, out);
                self.terminator = raw();
                self.ended = true;
            }
            StreamFormat::Anthropic if name.as_deref() == Some("message_stop") => {
                self.end_all(gate, out);
                self.terminator = raw();
                self.ended = true;
            }
            _ => {
                let Ok(mut value) = serde_json::from_str::<Value>(&data) else {
                    passthrough(out);
                    return;
                };
                let governed = match self.format {
                    StreamFormat::OpenAi => self.openai_chunk(gate, &mut value),
                    _ => self.anthropic_event(gate, &mut value, out),
                };
                if self.stopped {
                    return;
                }
                if !governed {
                    passthrough(out);
                    return;
                }
                // The other fields (`id:`, `event:`, `retry:`, comments) as they were.
                for l in lines.iter().filter(|l| !l.starts_with("data:")) {
                    out.extend_from_slice(l.as_bytes());
                    out.push(b'\n');
                }
                sse_data(out, &value);
            }
        }
    }

    /// Governs the `delta.content` of each choice of a chunk; returns whether any was.
    fn openai_chunk(&mut self, gate: &Gate<'_>, chunk: &mut Value) -> bool {
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else { return false };
        let mut governed = false;
        for k in 0..choices.len() {
            let Some(choice) = chunk.pointer(&format!("/choices/{k}")) else { continue };
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let content = choice.pointer("/delta/content").and_then(Value::as_str).map(str::to_owned);
            let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            if content.is_none() && !finished {
                continue;
            }
            let mut text = match &content {
                Some(piece) => match self.govern(gate, index, piece) {
                    Some(t) => t,
                    None => return false,
                },
                None => String::new(),
            };
            if content.is_some() {
                let template = chunk.clone();
                if let Some(t) = self.texts.iter_mut().find(|t| t.index == index) {
                    t.template = Some(template);
                }
            }
            if finished {
                match self.end_text(gate, index) {
                    Some(rest) => text.push_str(&rest),
                    None => return false,
                }
            }
            if content.is_none() && text.is_empty() {
                continue;
            }
            if let Some(delta) = chunk.pointer_mut(&format!("/choices/{k}/delta")) {
                if let Some(obj) = delta.as_object_mut() {
                    obj.insert("content".into(), Value::String(text));
                    governed = true;
                }
            }
        }
        governed
    }

    /// Governs a `content_block_delta`'s text, ends a block at `content_block_stop` (its rest in
    /// a delta before it); returns whether the event was rewritten.
    fn anthropic_event(&mut self, gate: &Gate<'_>, event: &mut Value, out: &mut Vec<u8>) -> bool {
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event.get("type").and_then(Value::as_str) {
            Some("content_block_delta") => {
                let Some(piece) = event.pointer("/delta/text").and_then(Value::as_str).map(str::to_owned) else {
                    return false;
                };
                if event.pointer("/delta/type").and_then(Value::as_str) != Some("text_delta") {
                    return false;
                }
                let Some(text) = self.govern(gate, index, &piece) else { return false };
                if let Some(slot) = event.pointer_mut("/delta/text") {
                    *slot = Value::String(text);
                }
                if let Some(t) = self.texts.iter_mut().find(|t| t.index == index) {
                    t.template = Some(Value::Null);
                }
                true
            }
            Some("content_block_stop") if self.texts.iter().any(|t| t.index == index && t.stream.is_some()) => {
                if let Some(rest) = self.end_text(gate, index) {
                    if !rest.is_empty() {
                        self.synthetic(out, index, Value::Null, rest);
                    }
                }
                false
            }
            _ => false,
        }
    }
}

/// Pushes the governed `piece` as a `{"text": ...}` line (nothing for an empty piece).
fn text_line(out: &mut Vec<u8>, piece: &str) {
    if !piece.is_empty() {
        out.extend(json!({ "text": piece }).to_string().into_bytes());
        out.push(b'\n');
    }
}

/// The values of the `name` field (`data:`, `event:`) of an event's lines.
fn sse_field<'l>(lines: &'l [String], name: &'static str) -> impl Iterator<Item = &'l str> {
    lines.iter().filter_map(move |l| l.strip_prefix(name)).map(|v| v.strip_prefix(' ').unwrap_or(v))
}

/// An SSE event with one JSON data line.
fn sse_event(out: &mut Vec<u8>, name: Option<&str>, data: &Value) {
    if let Some(name) = name {
        out.extend(format!("event: {name}\n").into_bytes());
    }
    sse_data(out, data);
}

fn sse_data(out: &mut Vec<u8>, data: &Value) {
    out.extend(format!("data: {data}\n\n").into_bytes());
}
