//! What arrives over HTTP from Pub/Sub and Eventarc, mapped onto one [`Incoming`] message:
//!
//! - a wrapped push: `{"message":{"data","attributes","messageId","publishTime"},"subscription"}`
//!   (snake-case `message_id`/`publish_time` too, as older push endpoints and some proxies send);
//! - an unwrapped push (`noWrapper`): the body is the message data, the metadata is in
//!   `x-goog-pubsub-*` headers and the attributes are headers of their own (the content type is
//!   whatever the sender chose, so it is never trusted);
//! - a CloudEvent in binary mode (`ce-*` headers, the body is the event data: for
//!   `google.cloud.pubsub.topic.v1.messagePublished` the wrapped push shape) or in structured
//!   mode (`{"specversion","id","type","source","data"|"data_base64",...}`).
//!
//! Parsing never fails on its own: a body it cannot read is a [`Malformed`] that still carries
//! the message id when one was found, so the error can be published against it and the
//! message acknowledged (Pub/Sub retries every non-2xx, malformed or not).

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use warden_service::service::MessageMeta;

/// The attribute that names the agent of a bare payload.
pub const AGENT_ATTRIBUTE: &str = "agent_id";

/// Most attributes kept from one message (Pub/Sub allows 100).
pub const MAX_ATTRIBUTES: usize = 100;

/// Most bytes of one attribute key or value kept (Pub/Sub: 256 key, 1024 value bytes).
const MAX_ATTRIBUTE_LEN: usize = 1024;

/// Headers of an unwrapped push that are transport or Pub/Sub metadata, not attributes.
const NOT_ATTRIBUTES: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "accept",
    "accept-encoding",
    "authorization",
    "connection",
    "from",
    "user-agent",
    "transfer-encoding",
    "traceparent",
    "tracestate",
    "forwarded",
    "via",
];

/// How a message arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A wrapped push body.
    Wrapped,
    /// An unwrapped push (`noWrapper`).
    Unwrapped,
    /// A binary-mode CloudEvent.
    CloudEventBinary,
    /// A structured-mode CloudEvent.
    CloudEventStructured,
    /// Streaming pull (the pull worker).
    Pulled,
}

impl Shape {
    /// For logs.
    pub const fn name(self) -> &'static str {
        match self {
            Shape::Wrapped => "wrapped",
            Shape::Unwrapped => "unwrapped",
            Shape::CloudEventBinary => "cloudevent-binary",
            Shape::CloudEventStructured => "cloudevent-structured",
            Shape::Pulled => "pulled",
        }
    }
}

/// One Pub/Sub message, whichever way it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The message data (decoded).
    pub data: Vec<u8>,
    /// Pub/Sub `messageId` (the CloudEvent `id` when the event carries no message).
    pub message_id: Option<String>,
    /// Message attributes.
    pub attributes: BTreeMap<String, String>,
    /// The subscription that delivered it, when said.
    pub subscription: Option<String>,
    /// How it arrived.
    pub shape: Shape,
    /// The delivery attempt (1 for the first), when the subscription has a dead-letter policy;
    /// a stated 0 is no attempt number at all (found by the fuzzer: the core counts from 1).
    pub attempt: Option<u32>,
}

impl Incoming {
    /// The `agent_id` attribute, if any.
    pub fn agent(&self) -> Option<&str> {
        self.attributes.get(AGENT_ATTRIBUTE).map(String::as_str).filter(|a| !a.is_empty())
    }

    /// What the core's message seam is told about this message: the message id is the dedupe
    /// key, and a bare payload runs as the `agent_id` attribute's agent, else `default_agent`.
    pub fn meta(&self, default_agent: &str) -> MessageMeta {
        MessageMeta {
            id: self.message_id.clone(),
            attempt: self.attempt.unwrap_or(1),
            default_agent_id: self.agent().unwrap_or(default_agent).to_owned(),
            request_id: None,
        }
    }
}

/// A push body that is not a readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// The message id, when it could be read.
    pub message_id: Option<String>,
    /// What is wrong (no content of the message).
    pub problem: String,
}

impl Malformed {
    fn new(message_id: Option<String>, problem: impl Into<String>) -> Malformed {
        Malformed { message_id, problem: problem.into() }
    }
}

/// Whether a request carries a binary-mode CloudEvent (Eventarc delivers to `/` by default).
pub fn is_cloud_event(headers: &HeaderMap) -> bool {
    headers.contains_key("ce-specversion") || headers.contains_key("ce-type")
}

/// Reads one pushed message from a request's headers and body.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Incoming, Malformed> {
    if is_cloud_event(headers) {
        return binary_event(headers, body);
    }
    if let Some(id) = header(headers, "x-goog-pubsub-message-id") {
        return Ok(unwrapped(headers, body, id));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err(Malformed::new(None, format!("push body is not JSON: {e}"))),
    };
    match value {
        Value::Object(map) if map.contains_key("specversion") => structured_event(map),
        Value::Object(map) => wrapped(map, Shape::Wrapped),
        other => Err(Malformed::new(None, format!("push body must be a JSON object, not {}", kind(&other)))),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn unwrapped(headers: &HeaderMap, body: &[u8], id: String) -> Incoming {
    let mut attributes = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if attributes.len() >= MAX_ATTRIBUTES
            || name.starts_with("x-goog-")
            || name.starts_with("x-cloud-")
            || name.starts_with("x-forwarded-")
            || NOT_ATTRIBUTES.contains(&name)
        {
            continue;
        }
        if let Ok(v) = value.to_str() {
            if name.len() <= MAX_ATTRIBUTE_LEN && v.len() <= MAX_ATTRIBUTE_LEN {
                attributes.insert(name.to_owned(), v.to_owned());
            }
        }
    }
    Incoming {
        data: body.to_vec(),
        message_id: Some(id),
        attributes,
        subscription: header(headers, "x-goog-pubsub-subscription-name"),
        shape: Shape::Unwrapped,
        attempt: header(headers, "x-goog-pubsub-delivery-attempt").and_then(|a| a.parse().ok()).filter(|&a| a > 0),
    }
}

/// `{"message":{...},"subscription":...}`.
fn wrapped(mut map: Map<String, Value>, shape: Shape) -> Result<Incoming, Malformed> {
    let subscription = map.get("subscription").and_then(Value::as_str).map(str::to_owned);
    let attempt = field(&map, "deliveryAttempt", "delivery_attempt")
        .and_then(Value::as_u64)
        .and_then(|a| u32::try_from(a).ok())
        .filter(|&a| a > 0);
    let Some(message) = map.remove("message") else {
        return Err(Malformed::new(None, "push body has no `message`"));
    };
    let Value::Object(message) = message else {
        return Err(Malformed::new(None, format!("`message` must be an object, not {}", kind(&message))));
    };
    let message_id = match field(&message, "messageId", "message_id") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(Malformed::new(None, "`message.messageId` must be a non-empty string")),
    };
    let attributes =
        attributes(field(&message, "attributes", "attributes")).map_err(|p| Malformed::new(message_id.clone(), p))?;
    let data = match message.get("data") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            decode_base64(s).map_err(|p| Malformed::new(message_id.clone(), format!("`message.data`: {p}")))?
        }
        Some(other) => {
            return Err(Malformed::new(
                message_id,
                format!("`message.data` must be a base64 string, not {}", kind(other)),
            ))
        }
    };
    Ok(Incoming { data, message_id, attributes, subscription, shape, attempt })
}

fn field<'a>(map: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    map.get(camel).or_else(|| map.get(snake))
}

fn attributes(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            if map.len() > MAX_ATTRIBUTES {
                return Err(format!("`message.attributes` has more than {MAX_ATTRIBUTES} entries"));
            }
            for (k, v) in map {
                let Value::String(v) = v else {
                    return Err(format!("attribute `{k}` must be a string, not {}", kind(v)));
                };
                out.insert(k.clone(), v.clone());
            }
        }
        Some(other) => return Err(format!("`message.attributes` must be an object, not {}", kind(other))),
    }
    Ok(out)
}

/// Standard base64 as Pub/Sub writes it; URL-safe and unpadded forms are accepted too.
fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(s).ok())
        .ok_or_else(|| String::from("not valid base64"))
}

/// A binary-mode CloudEvent: the body is the event data. Pub/Sub events carry the wrapped
/// push shape; any other event's body is the message data itself, with the event id as the
/// message id.
fn binary_event(headers: &HeaderMap, body: &[u8]) -> Result<Incoming, Malformed> {
    let event_id = header(headers, "ce-id");
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        if map.get("message").is_some_and(Value::is_object) {
            return with_event_id(wrapped(map, Shape::CloudEventBinary), event_id);
        }
    }
    let attributes = event_attributes(headers);
    Ok(Incoming {
        data: body.to_vec(),
        message_id: event_id,
        attributes,
        subscription: None,
        shape: Shape::CloudEventBinary,
        attempt: None,
    })
}

/// The `agent_id` extension of an event that is not a Pub/Sub message (`ce-agentid`; CloudEvents
/// extension names are lowercase alphanumerics).
fn event_attributes(headers: &HeaderMap) -> BTreeMap<String, String> {
    header(headers, "ce-agentid").map(|a| BTreeMap::from([(AGENT_ATTRIBUTE.to_owned(), a)])).unwrap_or_default()
}

fn with_event_id(parsed: Result<Incoming, Malformed>, event_id: Option<String>) -> Result<Incoming, Malformed> {
    match parsed {
        Ok(mut m) => {
            m.message_id = m.message_id.or(event_id);
            Ok(m)
        }
        Err(mut e) => {
            e.message_id = e.message_id.or(event_id);
            Err(e)
        }
    }
}

/// A structured-mode CloudEvent: `data` (JSON) or `data_base64`.
fn structured_event(mut map: Map<String, Value>) -> Result<Incoming, Malformed> {
    // An empty id is no id: deduplicating on "" would answer every such event as a duplicate
    // of the first.
    let event_id = map.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let mut attributes = BTreeMap::new();
    if let Some(a) = map.get("agentid").and_then(Value::as_str) {
        attributes.insert(AGENT_ATTRIBUTE.to_owned(), a.to_owned());
    }
    let data = match (map.remove("data"), map.remove("data_base64")) {
        (Some(Value::Object(data)), _) if data.get("message").is_some_and(Value::is_object) => {
            return with_event_id(wrapped(data, Shape::CloudEventStructured), event_id)
        }
        (Some(Value::String(s)), _) => s.into_bytes(),
        (Some(Value::Null) | None, Some(Value::String(b64))) => decode_base64(&b64)
            .map_err(|p| Malformed::new(event_id.clone(), format!("CloudEvent `data_base64`: {p}")))?,
        (Some(Value::Null) | None, None) => Vec::new(),
        (None | Some(Value::Null), Some(other)) => {
            return Err(Malformed::new(
                event_id,
                format!("CloudEvent `data_base64` must be a string, not {}", kind(&other)),
            ))
        }
        (Some(other), _) => other.to_string().into_bytes(),
    };
    Ok(Incoming {
        data,
        message_id: event_id,
        attributes,
        subscription: None,
        shape: Shape::CloudEventStructured,
        attempt: None,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn wrapped_camel_case() {
        let body = json!({
            "message": {"data": b64(r#"{"message":"hi"}"#), "attributes": {"agent_id": "a-1"},
                        "messageId": "123", "publishTime": "2026-11-30T00:00:00Z"},
            "subscription": "projects/p/subscriptions/s", "deliveryAttempt": 3
        });
        let m = parse(&HeaderMap::new(), body.to_string().as_bytes()).unwrap();
        assert_eq!(m.data, br#"{"message":"hi"}"#);
        assert_eq!(m.message_id.as_deref(), Some("123"));
        assert_eq!(m.agent(), Some("a-1"));
        assert_eq!(m.subscription.as_deref(), Some("projects/p/subscriptions/s"));
        assert_eq!((m.shape, m.attempt), (Shape::Wrapped, Some(3)));
    }

    #[test]
    fn wrapped_snake_case_and_unpadded_base64() {
        let data = base64::engine::general_purpose::STANDARD_NO_PAD.encode("{}x");
        let body = json!({"message": {"data": data, "message_id": "m-9", "publish_time": "t"}});
        let m = parse(&HeaderMap::new(), body.to_string().as_bytes()).unwrap();
        assert_eq!((m.data.as_slice(), m.message_id.as_deref()), (&b"{}x"[..], Some("m-9")));
    }

    #[test]
    fn the_content_type_is_not_trusted() {
        let body = json!({"message": {"data": b64("{}"), "messageId": "1"}});
        let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(parse(&h, body.to_string().as_bytes()).unwrap().shape, Shape::Wrapped);
    }

    #[test]
    fn unwrapped_reads_metadata_headers_and_attribute_headers() {
        let h = headers(&[
            ("x-goog-pubsub-message-id", "77"),
            ("x-goog-pubsub-subscription-name", "projects/p/subscriptions/s"),
            ("x-goog-pubsub-publish-time", "2026-11-30T00:00:00Z"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("agent_id", "agent-7"),
            ("user-agent", "APIs-Google"),
        ]);
        let m = parse(&h, br#"{"message":{"nested":"object"}}"#).unwrap();
        assert_eq!(m.shape, Shape::Unwrapped);
        assert_eq!(m.data, br#"{"message":{"nested":"object"}}"#);
        assert_eq!(m.message_id.as_deref(), Some("77"));
        assert_eq!(m.agent(), Some("agent-7"));
        assert_eq!(m.attributes.len(), 1, "{:?}", m.attributes);
    }

    #[test]
    fn binary_cloud_event_with_a_pubsub_message() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "evt-1"),
            ("ce-type", "google.cloud.pubsub.topic.v1.messagePublished"),
            ("ce-source", "//pubsub.googleapis.com/projects/p/topics/t"),
            ("content-type", "application/json"),
        ]);
        let body = json!({"message": {"data": b64("{}"), "messageId": "m-1", "attributes": {"agent_id": "x"}},
                          "subscription": "projects/p/subscriptions/eventarc"});
        let m = parse(&h, body.to_string().as_bytes()).unwrap();
        assert_eq!((m.shape, m.message_id.as_deref(), m.agent()), (Shape::CloudEventBinary, Some("m-1"), Some("x")));
        // Without a message id the event id is the dedupe key.
        let body = json!({"message": {"data": b64("{}")}});
        assert_eq!(parse(&h, body.to_string().as_bytes()).unwrap().message_id.as_deref(), Some("evt-1"));
    }

    #[test]
    fn binary_cloud_event_of_another_type_is_the_data_itself() {
        let h =
            headers(&[("ce-specversion", "1.0"), ("ce-id", "e-2"), ("ce-type", "com.example.x"), ("ce-agentid", "ag")]);
        let m = parse(&h, br#"{"action":"evaluate","payload":{}}"#).unwrap();
        assert_eq!(m.data, br#"{"action":"evaluate","payload":{}}"#);
        assert_eq!((m.message_id.as_deref(), m.agent()), (Some("e-2"), Some("ag")));
    }

    #[test]
    fn structured_cloud_events() {
        let event = json!({"specversion": "1.0", "id": "e-3", "type": "google.cloud.pubsub.topic.v1.messagePublished",
                           "source": "//pubsub.googleapis.com/projects/p/topics/t",
                           "data": {"message": {"data": b64("{\"a\":1}"), "messageId": "m-3"}}});
        let m = parse(&HeaderMap::new(), event.to_string().as_bytes()).unwrap();
        assert_eq!(
            (m.shape, m.message_id.as_deref(), m.data.as_slice()),
            (Shape::CloudEventStructured, Some("m-3"), &br#"{"a":1}"#[..])
        );
        let event = json!({"specversion": "1.0", "id": "e-4", "type": "t", "source": "s", "data_base64": b64("raw")});
        let m = parse(&HeaderMap::new(), event.to_string().as_bytes()).unwrap();
        assert_eq!((m.message_id.as_deref(), m.data.as_slice()), (Some("e-4"), &b"raw"[..]));
        let event = json!({"specversion": "1.0", "id": "e-5", "type": "t", "source": "s", "data": {"x": 1}});
        assert_eq!(parse(&HeaderMap::new(), event.to_string().as_bytes()).unwrap().data, br#"{"x":1}"#);
    }

    #[test]
    fn a_structured_event_with_an_empty_id_has_no_message_id() {
        let body = json!({"specversion": "1.0", "id": "", "source": "s", "data": "x"});
        let m = parse(&HeaderMap::new(), body.to_string().as_bytes()).unwrap();
        assert_eq!((m.shape, m.message_id), (Shape::CloudEventStructured, None));
    }

    #[test]
    fn malformed_bodies_keep_the_message_id_when_known() {
        let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
            (b"not json".to_vec(), None, "not JSON"),
            (b"[1]".to_vec(), None, "JSON object"),
            (br#"{"subscription":"s"}"#.to_vec(), None, "no `message`"),
            (br#"{"message":"text"}"#.to_vec(), None, "must be an object"),
            (br#"{"message":{"messageId":"m","data":"!!!"}}"#.to_vec(), Some("m"), "base64"),
            (br#"{"message":{"messageId":"m","data":5}}"#.to_vec(), Some("m"), "base64 string"),
            (br#"{"message":{"messageId":"m","attributes":{"a":1}}}"#.to_vec(), Some("m"), "attribute `a`"),
            (br#"{"message":{"messageId":"m","attributes":[]}}"#.to_vec(), Some("m"), "attributes"),
            (br#"{"message":{"messageId":false}}"#.to_vec(), None, "messageId"),
            (br#"{"specversion":"1.0","id":"e","data_base64":"%%"}"#.to_vec(), Some("e"), "data_base64"),
        ];
        for (body, id, problem) in cases {
            let e = parse(&HeaderMap::new(), &body).unwrap_err();
            assert_eq!(e.message_id.as_deref(), id, "{e:?}");
            assert!(e.problem.contains(problem), "{e:?}");
        }
    }

    #[test]
    fn a_zero_delivery_attempt_counts_as_the_first() {
        let h = headers(&[("x-goog-pubsub-message-id", "77"), ("x-goog-pubsub-delivery-attempt", "0")]);
        let m = parse(&h, b"{}").unwrap();
        assert_eq!((m.attempt, m.meta("d").attempt), (None, 1));
        let body = json!({"message": {"data": b64("{}"), "messageId": "1"}, "deliveryAttempt": 0});
        assert_eq!(parse(&HeaderMap::new(), body.to_string().as_bytes()).unwrap().meta("d").attempt, 1);
        let body = json!({"message": {"data": b64("{}"), "messageId": "1"}, "deliveryAttempt": 4});
        assert_eq!(parse(&HeaderMap::new(), body.to_string().as_bytes()).unwrap().meta("d").attempt, 4);
    }

    #[test]
    fn too_many_attributes_are_malformed() {
        let attrs: Map<String, Value> = (0..=MAX_ATTRIBUTES).map(|i| (format!("k{i}"), json!("v"))).collect();
        let body = json!({"message": {"messageId": "m", "attributes": attrs}});
        assert!(parse(&HeaderMap::new(), body.to_string().as_bytes()).unwrap_err().problem.contains("more than"));
    }
}
