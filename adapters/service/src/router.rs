//! The HTTP router of SPEC §2 (axum). Free of tokio so that it compiles to wasm32 and runs
//! unchanged inside a Cloudflare Worker; native servers add the listener around it.

use crate::error::{parse_body, to_body, ApiError};
use crate::service::{Operation, RequestMeta, Service};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use warden_engine::ErrorCode;

/// Renders the Prometheus text exposition of a server's metrics.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Header carrying the API key (SPEC §8).
pub const API_KEY_HEADER: &str = "x-governs-key";

/// Everything the router needs.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub service: Arc<Service>,
    /// API keys; `None` (or empty) disables auth.
    pub api_keys: Option<Arc<crate::auth::ApiKeys>>,
    /// Metrics renderer for `GET /api/metrics`; `None` → 404 there.
    pub metrics: Option<MetricsRender>,
}

/// Builds the router serving every route of SPEC §2, with CORS per `WARDEN_CORS_ORIGINS`.
pub fn router(state: AppState) -> Router {
    let cors = state.service.config().cors_origins.clone();
    let lanes = Lanes::new();
    let routes = Router::new()
        .route("/", route_op(&lanes, None))
        .route("/api/v1/precheck", route_op(&lanes, Some(Operation::Precheck)))
        .route("/api/v1/postcheck", route_op(&lanes, Some(Operation::Postcheck)))
        .route(STREAM_ROUTE, post(postcheck_stream))
        .route("/api/v1/redact", route_op(&lanes, Some(Operation::Redact)))
        .route("/api/v1/evaluate", route_op(&lanes, Some(Operation::Evaluate)))
        .route("/api/v1/batch", route_op(&lanes, Some(Operation::Batch)))
        .route("/api/v1/detokenize", route_op(&lanes, Some(Operation::Detokenize)))
        .route("/api/v1/health", get(health))
        .route("/api/v1/ready", get(ready))
        .route("/api/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if cors == crate::settings::CorsOrigins::Off {
        return routes;
    }
    routes.layer(axum::middleware::from_fn(move |req: Request, next: axum::middleware::Next| {
        let cors = cors.clone();
        async move { with_cors(&cors, req, next).await }
    }))
}

/// Answers preflights and adds `Access-Control-Allow-Origin` for allowed origins.
async fn with_cors(cors: &crate::settings::CorsOrigins, req: Request, next: axum::middleware::Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let allowed = cors.allow(origin.as_deref()).and_then(|o| HeaderValue::from_str(&o).ok());
    let preflight = req.method() == axum::http::Method::OPTIONS
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    if let Some(origin) = allowed {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if preflight {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, x-governs-key, authorization"),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
    }
    resp
}

/// The API key presented, if auth is on and it is valid; 401 when auth is on and it is not.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(keys) = state.api_keys.as_ref().filter(|k| k.is_enabled()) else {
        return Ok(None);
    };
    let presented = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    match presented {
        Some(k) if keys.verify(k) => Ok(Some(k.to_string())),
        Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "invalid API key in X-Governs-Key")),
        None => Err(ApiError::new(ErrorCode::Unauthorized, "missing X-Governs-Key header")),
    }
}

/// `POST` of an operation (`None`: the invoke envelope).
fn route_op(lanes: &Lanes, fixed: Option<Operation>) -> axum::routing::MethodRouter<AppState> {
    let lanes = lanes.clone();
    post(move |State(state): State<AppState>, req: Request| {
        let lanes = lanes.clone();
        async move {
            match run_op(&state, &lanes, fixed, req).await {
                Ok(body) => {
                    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
                }
                Err(e) => e.into_response(),
            }
        }
    })
}

async fn run_op(state: &AppState, lanes: &Lanes, fixed: Option<Operation>, req: Request) -> Result<Vec<u8>, ApiError> {
    let api_key = authenticate(state, req.headers())?;
    let client_addr = client_addr(&req, &state.service.config().trusted_proxies);
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let limit = state.service.config().body_limit;
    let bytes = read_body(req.into_body(), limit).await?;
    let meta = RequestMeta { api_key, client_addr, request_id, ..RequestMeta::default() };
    lanes.run(Arc::clone(&state.service), fixed, bytes, meta).await
}

/// `POST /api/v1/postcheck/stream`: the body is governed as it arrives and the governed bytes
/// are sent as they are released, the metadata record last (`crate::stream`). Auth, query and
/// rate limit errors are answered before streaming, as usual.
async fn postcheck_stream(State(state): State<AppState>, req: Request) -> Response {
    match start_stream(&state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn start_stream(state: &AppState, req: Request) -> Result<Response, ApiError> {
    use futures_util::StreamExt;
    let api_key = authenticate(state, req.headers())?;
    let client_addr = client_addr(&req, &state.service.config().trusted_proxies);
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let query = axum::extract::Query::<crate::service::StreamQuery>::try_from_uri(req.uri())
        .map_err(|e| ApiError::invalid_request(format!("bad query string: {}", e.body_text())))?
        .0;
    let meta = RequestMeta { api_key, client_addr, request_id, ..RequestMeta::default() };
    let governed = state.service.postcheck_stream(query, &meta).await?;
    let content_type = HeaderValue::from_static(governed.content_type());
    let id = HeaderValue::from_str(governed.request_id()).ok();
    let input = req.into_body().into_data_stream();
    // Each step reads body chunks until some governed bytes are ready (or the body ends, or the
    // stream stops), so empty frames are not sent.
    let output = futures_util::stream::unfold(Some((input, governed)), |state| async move {
        let (mut input, mut governed) = state?;
        loop {
            match input.next().await {
                Some(Ok(chunk)) => {
                    let out = governed.push(&chunk);
                    if governed.is_stopped() {
                        let mut out = out;
                        out.extend(governed.finish(None).await);
                        return Some((Ok::<_, std::convert::Infallible>(Bytes::from(out)), None));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), Some((input, governed))));
                    }
                }
                Some(Err(e)) => {
                    let out = governed.finish(Some(&e.to_string())).await;
                    return Some((Ok(Bytes::from(out)), None));
                }
                None => return Some((Ok(Bytes::from(governed.finish(None).await)), None)),
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(output));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = id {
        h.insert("x-request-id", id);
    }
    Ok(resp)
}

/// The streaming postcheck route.
pub const STREAM_ROUTE: &str = "/api/v1/postcheck/stream";

/// The answer of runtimes that buffer responses (so cannot stream) to
/// `POST /api/v1/postcheck/stream`: 501, naming the route to use instead.
pub fn streaming_unavailable() -> Response {
    let body = serde_json::json!({"error": {
        "code": "not_implemented",
        "message": "streaming postcheck is not available on this runtime (it buffers responses); use POST /api/v1/postcheck",
    }});
    (StatusCode::NOT_IMPLEMENTED, Json(body)).into_response()
}

/// Where governed work runs. Natively, a request whose body is over [`HEAVY_BYTES`] is
/// governed on tokio's blocking pool, at most `cores` at a time, so a few large bodies cannot
/// occupy the async workers that answer probes and small requests. Elsewhere (wasm: one thread)
/// everything runs inline.
#[derive(Clone)]
struct Lanes {
    #[cfg(feature = "native")]
    heavy: Arc<tokio::sync::Semaphore>,
}

/// Bodies above this many bytes are heavy.
pub const HEAVY_BYTES: usize = 64 * 1024;

/// Governs a request body; the answer is the response body. Routes of one operation go
/// from bytes to bytes ([`Service::run_body`]); the envelope is read as a JSON value.
async fn govern(
    service: &Service,
    fixed: Option<Operation>,
    body: Bytes,
    meta: &RequestMeta,
) -> Result<Vec<u8>, ApiError> {
    match fixed {
        Some(op) => service.run_body(op, &body, meta).await,
        None => to_body(&service.invoke(parse_body(&body)?, meta).await?),
    }
}

impl Lanes {
    fn new() -> Lanes {
        Lanes {
            #[cfg(feature = "native")]
            heavy: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            )),
        }
    }

    #[cfg(feature = "native")]
    async fn run(
        &self,
        service: Arc<Service>,
        fixed: Option<Operation>,
        body: Bytes,
        meta: RequestMeta,
    ) -> Result<Vec<u8>, ApiError> {
        let runtime = tokio::runtime::Handle::try_current();
        let (true, Ok(runtime)) = (body.len() > HEAVY_BYTES, runtime) else {
            return govern(&service, fixed, body, &meta).await;
        };
        let _permit = Arc::clone(&self.heavy)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the server is shutting down"))?;
        tokio::task::spawn_blocking(move || runtime.block_on(govern(&service, fixed, body, &meta)))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("governing the request failed: {e}")))?
    }

    #[cfg(not(feature = "native"))]
    async fn run(
        &self,
        service: Arc<Service>,
        fixed: Option<Operation>,
        body: Bytes,
        meta: RequestMeta,
    ) -> Result<Vec<u8>, ApiError> {
        govern(&service, fixed, body, &meta).await
    }
}

/// The client address: a [`ClientAddr`] extension set by the adapter (the platform's source
/// IP, e.g. Lambda's `requestContext`, `CF-Connecting-IP`) first, the socket peer second;
/// either one, when it is a trusted proxy, yields to the rightmost untrusted
/// `X-Forwarded-For` hop.
fn client_addr(req: &Request, trusted: &crate::settings::TrustedProxies) -> Option<std::net::IpAddr> {
    let peer = req.extensions().get::<ClientAddr>().map(|c| c.0).or_else(|| socket_peer(req))?;
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    Some(trusted.client(peer, forwarded))
}

/// The peer address recorded by a native listener (`into_make_service_with_connect_info`).
#[cfg(feature = "native")]
fn socket_peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

/// Runtimes without a socket peer pass the address as a [`ClientAddr`] extension.
#[cfg(not(feature = "native"))]
fn socket_peer(_req: &Request) -> Option<std::net::IpAddr> {
    None
}

/// The client address, set as a request extension by adapters that learn it from the
/// platform rather than a socket.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The platform's request id (e.g. Lambda's), set as a request extension by adapters; echoed
/// into envelope answers.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Reads at most `limit` bytes; more is a 413 (checked against Content-Length first, then
/// while streaming, so a lying or absent header cannot get past it).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid_json(format!("could not read the request body: {e}"))
        }
    })
}

async fn health(State(state): State<AppState>) -> Response {
    Json(state.service.health()).into_response()
}

/// Readiness. With API keys on, a caller without a valid key learns only ready or not: the
/// checks name files, stores and whether default secrets are in use.
async fn ready(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (ok, body) = state.service.ready().await;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let authenticated = authenticate(&state, &headers).is_ok();
    let body = if authenticated { body } else { serde_json::json!({"ready": ok}) };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authenticate(&state, &headers) {
        return e.into_response();
    }
    match &state.metrics {
        Some(render) => {
            let mut resp = render().into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            resp
        }
        None => ApiError::new(ErrorCode::NotFound, "metrics are not exported by this runtime").into_response(),
    }
}

async fn openapi() -> Response {
    #[cfg(feature = "native")]
    return Json(crate::openapi::document()).into_response();
    // The same bytes, without the code that builds the document (see `DOCUMENT_JSON`).
    #[cfg(not(feature = "native"))]
    return ([(http::header::CONTENT_TYPE, "application/json")], crate::openapi::DOCUMENT_JSON.trim_end())
        .into_response();
}

async fn not_found(req: Request) -> Response {
    ApiError::new(ErrorCode::NotFound, format!("no route for {} {}", req.method(), req.uri().path())).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{} is not allowed on {}", req.method(), req.uri().path()))
        .into_response()
}
