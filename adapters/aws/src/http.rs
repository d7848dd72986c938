//! API Gateway REST (v1), HTTP API (v2), Function URL and ALB requests → the router of
//! `warden serve`. `lambda_http` converts the event (base64 bodies included) and the answer;
//! this module strips the stage prefix (`/prod/api/v1/precheck` → `/api/v1/precheck`), and
//! passes the client address from `requestContext` and Lambda's request id to the router.
//!
//! A Function URL in `RESPONSE_STREAM` mode (`WARDEN_FUNCTION_URL_STREAMING`) is answered by
//! [`stream`]: the router's response goes out in Lambda's streaming format (a JSON prelude with
//! status and headers, then the body as it is produced), so `POST /api/v1/postcheck/stream`
//! sends governed bytes while it governs. Lambda hands the function the whole request body at
//! once; only the response streams.

use crate::{App, Invocation};
use axum::body::{Body as AxumBody, Bytes};
use axum::response::IntoResponse as _;
use lambda_http::{Body, LambdaEvent, Service as _};
use lambda_runtime::{MetadataPrelude, StreamResponse};
use serde_json::Value;
use std::net::IpAddr;
use std::pin::Pin;
use tower::ServiceExt as _;
use warden_service::error::ApiError;
use warden_service::router::{ClientAddr, RequestId};

/// The body of a streaming response.
pub type ResponseStream = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, axum::Error>> + Send>>;

/// Pieces the request body is handed to the router in, on a stream: governed output is
/// released per piece, so the first bytes leave after one piece is governed rather than the
/// whole body.
pub const STREAM_PIECE: usize = 8 * 1024;

/// What the router needs from the event besides the request itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The API Gateway stage (`None` or `$default`: nothing to strip).
    pub stage: Option<String>,
    /// The caller's address as the platform saw it.
    pub client: Option<IpAddr>,
}

/// Reads the stage and the client address from the raw event.
pub fn origin(event: &Value) -> Origin {
    let ctx = event.get("requestContext");
    let stage = ctx.and_then(|c| c.get("stage")).and_then(Value::as_str).filter(|s| !s.is_empty() && *s != "$default");
    let source = ctx
        .and_then(|c| c.pointer("/http/sourceIp").or_else(|| c.pointer("/identity/sourceIp")))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    // ALB has no source address in the event: it appends the client to X-Forwarded-For.
    let alb = ctx.is_some_and(|c| c.get("elb").is_some());
    let client = source.or_else(|| {
        alb.then(|| {
            let headers = event.get("headers").and_then(|h| h.get("x-forwarded-for")).and_then(Value::as_str);
            let multi = event.pointer("/multiValueHeaders/x-forwarded-for/0").and_then(Value::as_str);
            headers.or(multi)?.rsplit(',').next()?.trim().parse().ok()
        })
        .flatten()
    });
    Origin { stage: stage.map(str::to_owned), client }
}

/// The path without a leading `/{stage}` segment.
pub fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    let Some(stage) = stage else { return path };
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Handles an HTTP event; the answer is the Lambda response for the event's origin.
pub async fn handle(app: &App, event: Value, inv: &Invocation) -> Value {
    let origin = origin(&event);
    let request: lambda_http::request::LambdaRequest = match serde_json::from_value(event) {
        Ok(r) => r,
        Err(e) => {
            app.emf.count_error();
            return ApiError::invalid_request(format!("malformed HTTP event: {e}")).body();
        }
    };
    let mut ctx = lambda_runtime::Context::default();
    ctx.request_id.clone_from(&inv.request_id);
    let request_id = inv.request_id.clone();
    let service = lambda_http::service_fn(|req: lambda_http::Request| {
        let router = app.router.clone();
        let origin = origin.clone();
        let request_id = request_id.clone();
        async move { Ok::<_, std::convert::Infallible>(serve(router, req, &origin, request_id).await) }
    });
    let mut adapter = lambda_http::Adapter::from(service);
    match adapter.call(LambdaEvent::new(request, ctx)).await {
        Ok(resp) => serde_json::to_value(resp).unwrap_or_else(|e| ApiError::invalid_request(e.to_string()).body()),
        Err(never) => match never {},
    }
}

/// Whether an HTTP event came through a Function URL: payload 2.0 addressed to a Function
/// URL's domain (`<url-id>.lambda-url.<region>.on.aws`), or `cargo lambda watch`'s emulation of
/// one (domain `localhost`, which no API Gateway event carries). HTTP API events (payload 2.0
/// too) are invoked buffered, so they must not be told apart by shape alone.
pub fn is_function_url(event: &Value) -> bool {
    let v2 = event.get("version").and_then(Value::as_str) == Some("2.0");
    let domain = event.pointer("/requestContext/domainName").and_then(Value::as_str).unwrap_or_default();
    v2 && (domain.contains(".lambda-url.") || domain == "localhost")
}

/// Answers a Function URL request in Lambda's streaming format. Every route works (a
/// `RESPONSE_STREAM` URL streams every answer); `POST /api/v1/postcheck/stream` sends governed
/// bytes as the core's stream releases them.
pub async fn stream(app: &App, event: Value, inv: &Invocation) -> StreamResponse<ResponseStream> {
    let origin = origin(&event);
    let request: lambda_http::request::LambdaRequest = match serde_json::from_value(event) {
        Ok(r) => r,
        Err(e) => {
            app.emf.count_error();
            let resp = ApiError::invalid_request(format!("malformed HTTP event: {e}")).into_response();
            return streamed(resp);
        }
    };
    let req: lambda_http::Request = request.into();
    let (parts, body) = req.into_parts();
    let bytes = Bytes::from(body_bytes(body));
    // The body arrived whole; handing it on in pieces lets the stream release output per piece.
    let pieces = (0..bytes.len().div_ceil(STREAM_PIECE)).map(move |i| {
        let start = i * STREAM_PIECE;
        Ok::<_, std::convert::Infallible>(bytes.slice(start..bytes.len().min(start + STREAM_PIECE)))
    });
    let body = AxumBody::from_stream(futures_util::stream::iter(pieces));
    let req = prepare(parts, body, &origin, inv.request_id.clone());
    let resp = match app.router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    streamed(resp)
}

/// A router response as a streaming Lambda response (cookies go in the prelude's own field).
fn streamed(resp: axum::response::Response) -> StreamResponse<ResponseStream> {
    let (parts, body) = resp.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned())
        .collect();
    headers.remove(http::header::SET_COOKIE);
    let prelude = MetadataPrelude { status_code: parts.status, headers, cookies };
    StreamResponse { metadata_prelude: prelude, stream: Box::pin(body.into_data_stream()) }
}

fn body_bytes(body: Body) -> Vec<u8> {
    match body {
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    }
}

/// The router's request: the stage stripped from the path, the client address and Lambda's
/// request id attached.
fn prepare(
    mut parts: http::request::Parts,
    body: AxumBody,
    origin: &Origin,
    request_id: String,
) -> http::Request<AxumBody> {
    let path = strip_stage(parts.uri.path(), origin.stage.as_deref());
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    if let Ok(uri) = path_and_query.parse() {
        parts.uri = uri;
    }
    let mut req = http::Request::from_parts(parts, body);
    if let Some(ip) = origin.client {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    if !request_id.is_empty() {
        req.extensions_mut().insert(RequestId(request_id));
    }
    req
}

async fn serve(
    router: axum::Router,
    req: lambda_http::Request,
    origin: &Origin,
    request_id: String,
) -> http::Response<Body> {
    let (parts, body) = req.into_parts();
    let req = prepare(parts, AxumBody::from(body_bytes(body)), origin, request_id);
    // Buffered responses cannot stream: the streaming route answers 501 (a Function URL in
    // `RESPONSE_STREAM` mode is served by [`stream`] instead).
    let resp = if req.uri().path() == warden_service::router::STREAM_ROUTE {
        warden_service::router::streaming_unavailable()
    } else {
        match router.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    };
    let (parts, body) = resp.into_parts();
    // The router's answers are small JSON documents; the cap only guards against surprises.
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(t) if t.is_empty() => Body::Empty,
        Ok(t) => Body::Text(t),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    http::Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_only_the_stage_segment() {
        assert_eq!(strip_stage("/prod/api/v1/precheck", Some("prod")), "/api/v1/precheck");
        assert_eq!(strip_stage("/prod", Some("prod")), "/");
        assert_eq!(strip_stage("/production/x", Some("prod")), "/production/x");
        assert_eq!(strip_stage("/api/v1/precheck", Some("prod")), "/api/v1/precheck");
        assert_eq!(strip_stage("/prod/x", None), "/prod/x");
    }

    #[test]
    fn client_address_from_request_context() {
        let v2 = json!({"requestContext": {"stage": "$default", "http": {"sourceIp": "203.0.113.9"}}});
        assert_eq!(
            origin(&v2),
            Origin { stage: None, client: Some("203.0.113.9".parse().unwrap_or(IpAddr::from([0; 4]))) }
        );
        let v1 = json!({"requestContext": {"stage": "prod", "identity": {"sourceIp": "198.51.100.1"}}});
        assert_eq!(origin(&v1).stage.as_deref(), Some("prod"));
        assert_eq!(origin(&v1).client.map(|c| c.to_string()).as_deref(), Some("198.51.100.1"));
        let alb = json!({"requestContext": {"elb": {}}, "headers": {"x-forwarded-for": "10.0.0.1, 192.0.2.7"}});
        assert_eq!(origin(&alb).client.map(|c| c.to_string()).as_deref(), Some("192.0.2.7"));
        let spoofed =
            json!({"requestContext": {"http": {"sourceIp": "bogus"}}, "headers": {"x-forwarded-for": "192.0.2.7"}});
        assert_eq!(origin(&spoofed).client, None);
    }
}
