//! The custom-handler invocation payload, read exactly as the Functions host writes it
//! (azure-functions-host `ScriptInvocationContextExtensions.ToHttpScriptInvocationContext`,
//! `HttpRequestExtensions.GetRequestAsJObject`; learn.microsoft.com "Azure Functions custom
//! handlers", section "Request payload"):
//!
//! - the body is `{"Data": {<binding>: value}, "Metadata": {<name>: value}}`;
//! - a trigger value of bytes (a blob, a binary queue message) is a base64 string, whatever
//!   the binding's `dataType`;
//! - a string value went through `JsonConvert.SerializeObject`, so it arrives JSON-encoded
//!   (`"\"{...}\""`: a JSON string holding the text, which may itself be JSON);
//! - an object stays an object; metadata scalars arrive JSON-encoded too (`"5"`, `"\"id\""`);
//! - an HTTP trigger is `{Url, Method, Query, Headers: {name: [values]}, Params, Identities,
//!   Body}` with `Body` a string, or base64 bytes for octet-stream and multipart bodies.
//!
//! Everything here is pure and total: any byte string yields a value or a [`PayloadError`],
//! never a panic (`fuzz_invocation` is the fuzz entry point).

use base64::Engine as _;
use serde_json::{Map, Value};

/// How deep a JSON-encoded string is unwrapped (the host encodes once; a producer may have
/// encoded JSON as a string once more).
const MAX_STRING_UNWRAP: usize = 3;

/// Most headers taken from an HTTP trigger.
const MAX_HEADERS: usize = 256;

/// A malformed invocation: what is wrong, for the error result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadError(pub String);

impl core::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One invocation: its input bindings and trigger metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Invocation {
    /// `Data`: binding name → value.
    pub data: Map<String, Value>,
    /// `Metadata`: trigger metadata (`Id`, `DequeueCount`, `name`, `Properties`...).
    pub metadata: Map<String, Value>,
}

/// Parses an invocation body. `Metadata` may be absent; `Data` must be an object.
pub fn parse_invocation(body: &[u8]) -> Result<Invocation, PayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError(format!("invocation is not valid JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(PayloadError("invocation must be a JSON object with `Data` and `Metadata`".into()));
    };
    let data = match map.remove("Data") {
        Some(Value::Object(d)) => d,
        Some(_) => return Err(PayloadError("invocation `Data` must be an object".into())),
        None => return Err(PayloadError("invocation has no `Data`".into())),
    };
    let metadata = match map.remove("Metadata") {
        Some(Value::Object(m)) => m,
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err(PayloadError("invocation `Metadata` must be an object".into())),
    };
    Ok(Invocation { data, metadata })
}

/// Unwraps a JSON-encoded string (`"\"text\""` → `text`), at most [`MAX_STRING_UNWRAP`] times.
pub fn unwrap_json_string(s: &str) -> String {
    let mut text = s.to_owned();
    for _ in 0..MAX_STRING_UNWRAP {
        if !text.trim_start().starts_with('"') {
            break;
        }
        match serde_json::from_str::<String>(&text) {
            Ok(inner) => text = inner,
            Err(_) => break,
        }
    }
    text
}

/// Decodes base64 (standard alphabet, padding optional, whitespace ignored).
pub fn decode_base64(s: &str) -> Result<Vec<u8>, PayloadError> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.as_bytes()))
        .map_err(|e| PayloadError(format!("value is not valid base64: {e}")))
}

/// Encodes bytes as standard base64.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of a trigger value: `binary` bindings are base64 strings; string bindings are
/// JSON-encoded strings; objects and arrays are their JSON text.
pub fn trigger_bytes(value: &Value, binary: bool) -> Result<Vec<u8>, PayloadError> {
    match value {
        Value::String(s) if binary => decode_base64(&unwrap_json_string(s)),
        Value::String(s) => Ok(unwrap_json_string(s).into_bytes()),
        Value::Object(_) | Value::Array(_) => Ok(value.to_string().into_bytes()),
        Value::Null => Err(PayloadError("trigger value is null".into())),
        other => Ok(other.to_string().into_bytes()),
    }
}

/// A metadata value as text: JSON-encoded strings unwrapped, numbers as written.
pub fn metadata_text(metadata: &Map<String, Value>, key: &str) -> Option<String> {
    match metadata.get(key)? {
        Value::String(s) => Some(unwrap_json_string(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// A metadata value as a non-negative integer (`DequeueCount` arrives as `"1"` or `1`).
pub fn metadata_u32(metadata: &Map<String, Value>, key: &str) -> Option<u32> {
    metadata_text(metadata, key)?.trim().parse().ok()
}

/// A field of an object-valued metadata entry (`Properties.ContentType`); the object may
/// itself arrive JSON-encoded.
pub fn metadata_field(metadata: &Map<String, Value>, key: &str, field: &str) -> Option<String> {
    let obj = match metadata.get(key)? {
        Value::Object(o) => o.clone(),
        Value::String(s) => match serde_json::from_str::<Value>(&unwrap_json_string(s)) {
            Ok(Value::Object(o)) => o,
            _ => return None,
        },
        _ => return None,
    };
    metadata_text(&obj, field)
}

/// An HTTP trigger request (`Data.req`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpTrigger {
    /// Upper-case method.
    pub method: String,
    /// Path and query of `Url` (`/api/v1/precheck?x=1`).
    pub path_and_query: String,
    /// Headers, each value separately.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// Reads `Data.req` (any binding name: the first object with `Method`).
pub fn http_trigger(value: &Value) -> Result<HttpTrigger, PayloadError> {
    let Value::Object(req) = value else {
        return Err(PayloadError("HTTP trigger value must be an object".into()));
    };
    let method = match req.get("Method") {
        Some(Value::String(m)) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) => m.to_ascii_uppercase(),
        _ => return Err(PayloadError("HTTP trigger has no valid `Method`".into())),
    };
    let path_and_query = match req.get("Url") {
        Some(Value::String(u)) => path_of(u),
        _ => return Err(PayloadError("HTTP trigger has no `Url`".into())),
    };
    let mut headers = Vec::new();
    if let Some(Value::Object(h)) = req.get("Headers") {
        for (name, v) in h {
            let values = match v {
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            };
            for value in values {
                if headers.len() >= MAX_HEADERS {
                    return Err(PayloadError(format!("HTTP trigger has more than {MAX_HEADERS} headers")));
                }
                headers.push((name.clone(), value));
            }
        }
    }
    let binary = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("content-type") && {
            let v = v.to_ascii_lowercase();
            v.starts_with("application/octet-stream") || v.starts_with("multipart/")
        }
    });
    let body = match req.get("Body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if binary => decode_base64(s)?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    Ok(HttpTrigger { method, path_and_query, headers, body })
}

/// The path and query of an absolute or relative URL; `/` when it has none.
fn path_of(url: &str) -> String {
    let rest = match url.find("://") {
        Some(i) => {
            let after = url.get(i.saturating_add(3)..).unwrap_or("");
            match after.find(['/', '?']) {
                Some(j) => after.get(j..).unwrap_or(""),
                None => "",
            }
        }
        None => url,
    };
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

/// Fuzz entry point: every reader over arbitrary bytes; must never panic.
pub fn fuzz_invocation(bytes: &[u8]) {
    if let Ok(inv) = parse_invocation(bytes) {
        for v in inv.data.values() {
            let _ = trigger_bytes(v, true);
            let _ = trigger_bytes(v, false);
            let _ = http_trigger(v);
        }
        for k in ["Id", "DequeueCount", "name"] {
            let _ = metadata_text(&inv.metadata, k);
            let _ = metadata_u32(&inv.metadata, k);
        }
        let _ = metadata_field(&inv.metadata, "Properties", "ContentType");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    #[test]
    fn queue_message_as_the_host_sends_it() {
        // A queue trigger of a string message: the host's SerializeObject(string) inside Data.
        let envelope = r#"{"action":"precheck","tool":"t","raw_text":"hi"}"#;
        let encoded = serde_json::to_string(envelope).unwrap();
        let body = json!({"Data": {"msg": encoded}, "Metadata": {"Id": "\"abc-1\"", "DequeueCount": "2"}});
        let inv = parse_invocation(body.to_string().as_bytes()).unwrap();
        assert_eq!(trigger_bytes(&inv.data["msg"], false).unwrap(), envelope.as_bytes());
        assert_eq!(metadata_text(&inv.metadata, "Id").as_deref(), Some("abc-1"));
        assert_eq!(metadata_u32(&inv.metadata, "DequeueCount"), Some(2));
    }

    #[test]
    fn objects_stay_objects_and_plain_strings_pass() {
        let v = json!({"action": "health"});
        assert_eq!(trigger_bytes(&v, false).unwrap(), br#"{"action":"health"}"#);
        assert_eq!(trigger_bytes(&json!("plain text"), false).unwrap(), b"plain text");
        let m = json!({"DequeueCount": 5, "Id": "id-9"});
        assert_eq!(metadata_u32(m.as_object().unwrap(), "DequeueCount"), Some(5));
        assert_eq!(metadata_text(m.as_object().unwrap(), "Id").as_deref(), Some("id-9"));
    }

    #[test]
    fn blob_bytes_arrive_base64() {
        let bytes = [0u8, 159, 146, 150, b'{'];
        let v = Value::String(encode_base64(&bytes));
        assert_eq!(trigger_bytes(&v, true).unwrap(), bytes);
        assert!(trigger_bytes(&json!("not base64 !!"), true).is_err());
        let props = json!({"Properties": {"ContentType": "application/json", "Length": 5}});
        assert_eq!(
            metadata_field(props.as_object().unwrap(), "Properties", "ContentType").as_deref(),
            Some("application/json")
        );
    }

    #[test]
    fn http_trigger_as_get_request_as_jobject_writes_it() {
        let req = json!({
            "Url": "https://app.azurewebsites.net/api/v1/precheck?debug=1",
            "Method": "POST",
            "Query": {"debug": "1"},
            "Headers": {"Content-Type": ["application/json"], "X-Governs-Key": ["k1"]},
            "Params": {"path": "v1/precheck"},
            "Identities": [],
            "Body": "{\"tool\":\"t\",\"raw_text\":\"x\"}"
        });
        let t = http_trigger(&req).unwrap();
        assert_eq!(t.method, "POST");
        assert_eq!(t.path_and_query, "/api/v1/precheck?debug=1");
        assert_eq!(t.headers.len(), 2);
        assert_eq!(t.body, br#"{"tool":"t","raw_text":"x"}"#);
        let bin = json!({"Url": "http://h", "Method": "post", "Headers": {"Content-Type": ["application/octet-stream"]}, "Body": encode_base64(b"\x01\x02")});
        let t = http_trigger(&bin).unwrap();
        assert_eq!((t.path_and_query.as_str(), t.body.as_slice()), ("/", &[1u8, 2][..]));
    }

    #[test]
    fn malformed_invocations_are_errors() {
        for body in [&b""[..], b"[]", b"{}", b"{\"Data\":1}", b"{\"Data\":{},\"Metadata\":[]}", b"\xff"] {
            assert!(parse_invocation(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(http_trigger(&json!({"Url": "/", "Method": "P OST"})).is_err());
        assert!(http_trigger(&json!({"Method": "GET"})).is_err());
    }

    #[test]
    fn fuzz_entry_survives_mutations() {
        let seed = json!({"Data": {"req": {"Url": "http://h/x?y", "Method": "GET", "Headers": {"a": ["b"]}, "Body": "e30="}, "msg": "\"\\\"x\\\"\""}, "Metadata": {"Id": "\"i\"", "Properties": "{\"ContentType\":\"x\"}"}}).to_string().into_bytes();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..5000 {
            let mut b = seed.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state as usize) % b.len();
                b[i] = (state >> 32) as u8;
            }
            fuzz_invocation(&b);
            b.truncate((state as usize) % b.len());
            fuzz_invocation(&b);
        }
    }
}
