//! Client-facing errors: an HTTP status and `{"error":{"code","message","field"?}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warden_engine::ErrorCode;

/// An error answered to the client. Never a panic, never a bare 500. Its HTTP status and
/// whether a platform should retry follow from its [`ErrorCode`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message naming the problem.
    pub message: String,
    /// The offending field (dotted path), when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (429 only).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// Fields of the response body beside `error` (e.g. `processed: 0` of an empty batch).
    #[serde(skip)]
    pub body_fields: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), field: None, retry_after: None, body_fields: Vec::new() }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The same error blaming `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        let f = field.into();
        self.field = if f.is_empty() { None } else { Some(f) };
        self
    }

    /// 400: the body is not JSON.
    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidJson, message)
    }

    /// 422: well-formed JSON of the wrong shape.
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    /// 413: the body exceeds the limit.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(ErrorCode::PayloadTooLarge, format!("request body exceeds the limit of {limit} bytes"))
    }

    /// The same error with `key: value` beside `error` in the body.
    pub fn with_body_field(mut self, key: &'static str, value: serde_json::Value) -> ApiError {
        self.body_fields.push((key, value));
        self
    }

    /// The JSON body `{"error": {...}}`.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "error": self });
        if let Some(map) = body.as_object_mut() {
            for (k, v) in &self.body_fields {
                map.insert((*k).to_owned(), v.clone());
            }
        }
        body
    }
}

impl core::fmt::Display for ApiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({}): {}", self.status(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Parses a request body: invalid JSON (a repeated object key included, see [`crate::json`])
/// → 400 naming line and column; valid JSON of the wrong
/// shape → 422 naming the field.
pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = crate::json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_json(format!("request body is not valid JSON: {e}")))?;
    from_value(value)
}

/// [`parse_body`] for request types read on the hot path: an object body is deserialized
/// straight into `T`, without building a JSON tree first. A body that does not deserialize
/// that way (invalid JSON, wrong shape, a duplicate key) goes through [`parse_body`], so
/// every answer, and every error, is the one [`parse_body`] gives.
pub fn parse_typed<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if let (true, Ok(value)) = (object, serde_json::from_slice::<T>(bytes)) {
        return Ok(value);
    }
    parse_body(bytes)
}

/// A response body: `value` as compact JSON.
pub fn to_body<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ApiError> {
    // Most answers (a check with its budget fields) fit in 1 KiB: one allocation, no regrowth.
    let mut body = Vec::with_capacity(1024);
    serde_json::to_writer(&mut body, value)
        .map(|()| body)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("could not serialize the response: {e}")))
}

/// Converts a parsed JSON value into a request type: wrong shape → 422 naming the field.
pub fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid_request(format!("request body must be a JSON object, not {}", kind(&value))));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = e.path().to_string();
        let message = e.inner().to_string();
        if field == "." {
            field = missing_field(&message).unwrap_or_default();
        }
        ApiError::invalid_request(message).with_field(field)
    })
}

/// serde reports a missing field at the parent's path; pull the name out of its message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// A JSON value's kind, for messages.
pub fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_engine::CheckRequest;

    #[test]
    fn malformed_json_is_400() {
        let e = parse_body::<CheckRequest>(b"{\"tool\":").err();
        assert_eq!(e.map(|e| (e.status(), e.code)), Some((400, ErrorCode::InvalidJson)));
    }

    #[test]
    fn missing_field_is_422_naming_it() {
        let e = parse_body::<CheckRequest>(br#"{"tool":"x"}"#).err();
        assert_eq!(e.map(|e| (e.status(), e.field)), Some((422, Some("raw_text".into()))));
    }

    #[test]
    fn wrong_type_is_422_naming_it() {
        let e = parse_body::<CheckRequest>(br#"{"tool":"x","raw_text":"y","tags":[1]}"#).err();
        assert_eq!(e.map(|e| (e.status(), e.field)), Some((422, Some("tags[0]".into()))));
        let e = parse_body::<CheckRequest>(b"[1]").err();
        assert_eq!(e.map(|e| e.status()), Some(422));
    }
}
