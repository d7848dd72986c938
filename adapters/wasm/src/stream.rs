//! Streaming postcheck for JavaScript (issue 16): `warden.openStream(tool, scope, format, field)`
//! gives a [`WardenStream`] that governs bytes as they arrive with the core's
//! [`FormatStream`] — the same code, and so the same output, as `POST /api/v1/postcheck/stream`.
//! `warden.governStream(readable, options)` (js/stream.js) wraps it in a web `ReadableStream`.
//!
//! Bytes cross the boundary as `Uint8Array` both ways; nothing is converted to JSON per chunk.
//! The only JS value built is the metadata record, once, at the end.
//!
//! [`HttpStream`] serves one request to the router with the request body streamed in and the
//! response body streamed out, for the streaming route of `handleRequest`.

use crate::{js_error, to_js, Warden};
use axum::body::Body;
use bytes::Bytes;
use futures_channel::mpsc;
use http_body::Body as _;
use js_sys::Uint8Array;
use serde_json::Value;
use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use tower::ServiceExt;
use warden_engine::Policy;
use warden_service::service::Service;
use warden_service::stream::{FormatStream, StreamFormat};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_STREAM_TYPES: &'static str = r#"
/** The shape of a governed stream: as the `format` of `POST /api/v1/postcheck/stream`. */
export type StreamFormat = "text" | "ndjson" | "openai" | "anthropic";

/** The metadata record that ends a governed stream (the last event of the HTTP route). */
export interface StreamRecord {
  decision: Decision;
  reasons: string[];
  policy_id: PolicyId;
  /** PII values found, per type. */
  pii_counts: Record<string, number>;
  request_id?: string;
  /** Set when the stream stopped on bad input (then `decision` is "deny"). */
  error?: { code: string; message: string };
}
"#;

/// What `finish` and `result` need: a finished stream's record.
#[derive(Debug, Default)]
enum State {
    Open(Box<FormatStream>),
    Done(Value),
    #[default]
    Gone,
}

/// One governed stream (see the module docs). Not thread-bound state: a format parser and the
/// engine's text streams, plus the policy it started with (a policy change never affects a
/// stream already running).
#[wasm_bindgen]
pub struct WardenStream {
    service: Arc<Service>,
    policy: Arc<Policy>,
    state: State,
    /// `format: "text"`: the governed text itself, not the route's `{"text": …}` lines.
    raw_text: bool,
}

#[wasm_bindgen]
impl Warden {
    /// Starts a governed stream of `format` (`text`, default; `ndjson`, `openai`,
    /// `anthropic`) for `tool` in `scope`; `field` is the JSON pointer of the text in NDJSON
    /// lines. Throws a `WardenError` (`invalid_request`, 422) naming a bad argument.
    #[wasm_bindgen(js_name = openStream)]
    pub fn open_stream(
        &self,
        tool: String,
        scope: Option<String>,
        format: Option<String>,
        field: Option<String>,
    ) -> Result<WardenStream, JsValue> {
        let bad = |m: &str, f: &str| js_error(&format!("Warden.openStream: {m}"), "invalid_request", 422, Some(f));
        if tool.trim().is_empty() {
            return Err(bad("tool must be a non-empty string", "tool"));
        }
        let format_name = format.as_deref().unwrap_or("text");
        let format = StreamFormat::parse(format_name).ok_or_else(|| {
            bad(&format!("unknown format `{format_name}` (text, ndjson, openai or anthropic)"), "format")
        })?;
        if let Some(f) = &field {
            if !(f.is_empty() || f.starts_with('/')) {
                return Err(bad("field must be a JSON pointer such as /choices/0/delta/content", "field"));
            }
        }
        let service = Arc::clone(self.core.service());
        let policy = service.policy_source().get();
        let gate = service.gate(&policy);
        let inner = FormatStream::new(&gate, &tool, scope.as_deref().unwrap_or(""), format, field.as_deref());
        Ok(WardenStream {
            service,
            policy,
            state: State::Open(Box::new(inner)),
            raw_text: format == StreamFormat::Text,
        })
    }
}

#[wasm_bindgen]
impl WardenStream {
    /// Reads `chunk` (split anywhere, even inside a UTF-8 character); returns the governed
    /// bytes to forward now (often empty: text is released in batches). After a stop or the
    /// end: always empty.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let State::Open(inner) = &mut self.state else { return Vec::new() };
        let gate = self.service.gate(&self.policy);
        let out = inner.push(&gate, chunk);
        if self.raw_text {
            unframe_text(&out)
        } else {
            out
        }
    }

    /// Whether the stream stopped (denied, or bad input): call `finish` for the record.
    #[wasm_bindgen(getter)]
    pub fn stopped(&self) -> bool {
        match &self.state {
            State::Open(inner) => inner.is_stopped(),
            State::Done(record) => record.get("decision").and_then(Value::as_str) == Some("deny"),
            State::Gone => true,
        }
    }

    /// Ends the stream: the last governed bytes, then (except for `format: "text"`) the
    /// metadata record framed as the HTTP route frames it. Later calls return nothing.
    pub fn finish(&mut self) -> Vec<u8> {
        let State::Open(inner) = std::mem::take(&mut self.state) else {
            self.state = State::Gone;
            return Vec::new();
        };
        let gate = self.service.gate(&self.policy);
        let finished = inner.finish(&gate);
        let record = finished.outcome.record(None);
        let out = if self.raw_text {
            unframe_text(&finished.body)
        } else {
            let mut out = finished.body.clone();
            out.extend(finished.close(&record));
            out
        };
        self.state = State::Done(record);
        out
    }

    /// The metadata record once `finish` ran (`undefined` before).
    #[wasm_bindgen(unchecked_return_type = "StreamRecord | undefined")]
    pub fn result(&self) -> Result<JsValue, JsValue> {
        match &self.state {
            State::Done(record) => to_js("stream", record),
            _ => Ok(JsValue::UNDEFINED),
        }
    }
}

/// The governed text inside the `{"text": …}` lines the text format sends: a JS caller of
/// `format: "text"` gets the text itself and the record from `result()`.
fn unframe_text(lines: &[u8]) -> Vec<u8> {
    let mut text = Vec::with_capacity(lines.len());
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(line) {
            if let Some(Value::String(s)) = m.get("text") {
                text.extend_from_slice(s.as_bytes());
            }
        }
    }
    text
}

type Chunk = Result<Bytes, std::io::Error>;

/// One request to the router with a streamed body both ways (see `handleRequest` in
/// js/http.js): `write` the request body, `close` it, `response()` for the head, `read` the
/// response body chunk by chunk.
#[wasm_bindgen]
pub struct HttpStream {
    tx: Option<mpsc::Sender<Chunk>>,
    request: Option<http::Request<Body>>,
    router: axum::Router,
    body: Rc<RefCell<Option<Body>>>,
}

#[wasm_bindgen]
impl Warden {
    /// Starts serving one request whose body is written piece by piece; used by
    /// `handleRequest` for `POST /api/v1/postcheck/stream`.
    #[wasm_bindgen(js_name = handleStream)]
    pub fn handle_stream(
        &self,
        method: String,
        path: String,
        #[wasm_bindgen(unchecked_param_type = "[string, string][] | Record<string, string> | undefined")]
        headers: JsValue,
    ) -> Result<HttpStream, JsValue> {
        let headers = crate::header_pairs(&headers)?;
        // Capacity 1: a writer waits until the route has taken the previous piece.
        let (tx, rx) = mpsc::channel::<Chunk>(1);
        let request = crate::api::build_request(&method, &path, &headers, Vec::new())
            .map_err(|e| crate::api_error("handleStream", &e))?
            .map(|_| Body::from_stream(rx));
        Ok(HttpStream { tx: Some(tx), request: Some(request), router: self.core.router(), body: Rc::default() })
    }
}

#[wasm_bindgen]
impl HttpStream {
    /// Sends the request to the router; resolves to the response's status and headers (the
    /// body is read with `read`). Call once.
    #[wasm_bindgen(unchecked_return_type = "Promise<{ status: number; headers: [string, string][] }>")]
    pub fn response(&mut self) -> js_sys::Promise {
        let request = self.request.take();
        let router = self.router.clone();
        let slot = Rc::clone(&self.body);
        wasm_bindgen_futures::future_to_promise(async move {
            let request =
                request.ok_or_else(|| js_error("HttpStream.response: called twice", "internal", 500, None))?;
            let response = match router.oneshot(request).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            *slot.borrow_mut() = Some(body);
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
                .collect();
            to_js("handleStream", &serde_json::json!({"status": parts.status.as_u16(), "headers": headers}))
        })
    }

    /// Writes a piece of the request body; resolves to `false` when the route no longer reads
    /// (it answered without the body, or ended): stop writing then.
    pub fn write(&mut self, chunk: Vec<u8>) -> js_sys::Promise {
        let tx = self.tx.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let Some(mut tx) = tx else { return Ok(JsValue::FALSE) };
            let sent = poll_fn(|cx| tx.poll_ready(cx)).await.and_then(|()| tx.start_send(Ok(Bytes::from(chunk))));
            Ok(JsValue::from_bool(sent.is_ok()))
        })
    }

    /// Ends the request body; with `error`, the body ends with that read error instead.
    pub fn close(&mut self, error: Option<String>) {
        if let (Some(mut tx), Some(e)) = (self.tx.take(), error) {
            // The route may already have stopped reading; then nobody needs the error.
            let _ = tx.try_send(Err(std::io::Error::other(e)));
        }
    }

    /// The next piece of the response body; `undefined` at its end.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array | undefined>")]
    pub fn read(&self) -> js_sys::Promise {
        let slot = Rc::clone(&self.body);
        wasm_bindgen_futures::future_to_promise(async move {
            // Taken out while awaiting: a second concurrent read finds nothing and ends.
            let Some(mut body) = slot.borrow_mut().take() else { return Ok(JsValue::UNDEFINED) };
            loop {
                match poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                    None => return Ok(JsValue::UNDEFINED),
                    Some(Err(e)) => {
                        return Err(js_error(&format!("the response body failed: {e}"), "internal", 500, None))
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            if data.is_empty() {
                                continue;
                            }
                            *slot.borrow_mut() = Some(body);
                            return Ok(Uint8Array::from(data.as_ref()).into());
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::api::Core;
    use warden_engine::Direction;
    use warden_service::clock::FixedClock;

    fn warden() -> Warden {
        let options = serde_json::json!({"piiTokenSalt": "s"});
        Warden {
            core: Core::new(options, Arc::new(FixedClock::new(1_700_000_000_000))).unwrap(),
            last: RefCell::new(None),
            reason_sets: RefCell::default(),
        }
    }

    #[test]
    fn text_format_gives_the_governed_text_itself() {
        let w = warden();
        let text = "mail bob@corp.io — naïve 👋 call +44 20 7946 0958. ".repeat(40);
        let mut s = w.open_stream("web.search".into(), None, None, None).unwrap();
        let mut out = Vec::new();
        // Pieces of 3 bytes: cuts inside multi-byte characters and inside every value.
        for piece in text.as_bytes().chunks(3) {
            out.extend(s.push(piece));
        }
        out.extend(s.finish());
        let req = warden_engine::CheckRequest { tool: "web.search".into(), raw_text: text, ..Default::default() };
        let one_shot = w.core.check_request(&req, Direction::Egress);
        assert_eq!(Some(String::from_utf8(out).unwrap()), one_shot.raw_text_out);
        assert!(!s.stopped());
        assert!(s.push(b"late").is_empty() && s.finish().is_empty(), "nothing after the end");
    }

    #[test]
    fn sse_output_is_the_route_framing_with_the_record_last() {
        let w = warden();
        let mut s = w.open_stream("web.search".into(), None, Some("openai".into()), None).unwrap();
        let mut out = s.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mail bob@co\"}}]}\n\n");
        out.extend(
            s.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"rp.io\"}}]}\n\ndata: [DONE]\n\n"),
        );
        out.extend(s.finish());
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("<USER_EMAIL>") && !out.contains("bob@"), "{out}");
        assert!(out.ends_with("\n\nevent: warden\ndata: {\"decision\":\"transform\",\"reasons\":[\"default.egress.redact\",\"pii.redacted:PII:email_address\"],\"policy_id\":\"defaults\",\"pii_counts\":{\"email_address\":1}}\n\ndata: [DONE]\n\n"), "{out}");
    }

    #[test]
    fn unframe_text_skips_what_is_not_a_text_line() {
        assert_eq!(unframe_text(b"{\"text\":\"a\\nb\"}\n{\"warden\":{}}\nnot json\n{\"text\":\"c\"}\n"), b"a\nbc");
    }
}
