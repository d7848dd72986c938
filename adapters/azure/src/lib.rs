//! Warden as an Azure Functions custom handler (learn.microsoft.com "Azure Functions custom
//! handlers"). The host starts the handler with `FUNCTIONS_CUSTOMHANDLER_PORT` and
//!
//! - forwards HTTP requests of the `governance` function unchanged when `host.json` sets
//!   `enableForwardingHttpRequest` (served by the core router: every SPEC §2 route, and the
//!   guide's `/api/governance` as `POST /`);
//! - otherwise POSTs `{"Data", "Metadata"}` to `/{functionName}` and reads back
//!   `{"Outputs", "Logs", "ReturnValue"}`: `governance` (payload mode), `governance-blob`
//!   and `governance-queue`.
//!
//! A non-2xx answer fails the invocation, so the host retries it (queue: up to
//! `maxDequeueCount`, then `<queue>-poison`; blob: `webjobs-blobtrigger-poison`). Only
//! transient failures answer non-2xx; malformed input is answered 200 with an error output.
//! Outputs not declared `dataType: binary` go through the host's try-base64 decode
//! (`HttpScriptInvocationResultExtensions.GetBindingValue`), so results are JSON objects
//! (never bare strings) and blob copies are base64 strings on purpose: the host decodes them
//! back into the exact bytes.

pub mod batch;
pub mod payload;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use batch::Blob;
use payload::{Invocation, PayloadError};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use warden_service::error::ApiError;
use warden_service::events::Outbox;
use warden_service::native::Built;
use warden_service::router::{read_body, router, ClientAddr, RequestId};
use warden_service::service::{Channel, Disposition, DocumentMeta, MessageMeta, MessageOutcome, RequestMeta, Service};

/// The HTTP function (`azure/governance/function.json`).
pub const HTTP_FUNCTION: &str = "governance";
/// The blob function (`azure/governance-blob/function.json`).
pub const BLOB_FUNCTION: &str = "governance-blob";
/// The queue function (`azure/governance-queue/function.json`).
pub const QUEUE_FUNCTION: &str = "governance-queue";

/// Binding names, as declared in the shipped `function.json` files (a test reads them).
pub mod bindings {
    /// HTTP trigger.
    pub const HTTP_IN: &str = "req";
    /// HTTP output.
    pub const HTTP_OUT: &str = "res";
    /// Queue trigger (`governance-queue`).
    pub const QUEUE_IN: &str = "msg";
    /// Queue output (`governance-results`).
    pub const QUEUE_OUT: &str = "result";
    /// Blob trigger (`ai-requests/{name}`).
    pub const BLOB_IN: &str = "blob";
    /// Batch results and document records (`ai-results/{name}`).
    pub const BLOB_RESULTS: &str = "results";
    /// Approved documents (`ai-approved/{name}`).
    pub const BLOB_APPROVED: &str = "approved";
    /// Redacted documents (`ai-processed/{name}`).
    pub const BLOB_PROCESSED: &str = "processed";
    /// Quarantined documents (`ai-quarantine/{name}`).
    pub const BLOB_QUARANTINE: &str = "quarantine";
}

/// `agent_id` of a queue `evaluate` that names none (the guide's default).
pub const QUEUE_DEFAULT_AGENT: &str = "queue-default";
/// `agent_id` of a blob batch item that names none (the guide's default).
pub const BLOB_DEFAULT_AGENT: &str = "blob-batch";
/// `source` of blob documents (audit scope).
pub const BLOB_SOURCE: &str = "azure-blob:ai-requests";
/// The path the guide's HTTP function is called at; served as `POST /`.
pub const GUIDE_PATH: &str = "/api/governance";
/// The host's invocation id header (`HttpWorkerConstants.InvocationIdHeaderName`).
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// How long queued decision events may take to leave before an invocation answers.
const FLUSH_DEADLINE: Duration = Duration::from_secs(10);
/// Largest response of the core router read back for a payload-mode answer.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// The handler's shared state.
#[derive(Clone)]
pub struct Handler {
    service: Arc<Service>,
    core: Router,
    outbox: Option<Arc<Outbox>>,
    invocation_limit: usize,
}

impl Handler {
    /// The handler for an assembled service.
    pub fn new(built: &Built) -> Handler {
        let config = built.service.config();
        // The host sends a blob whole, base64 (4/3 of its size), inside the JSON invocation:
        // a blob just over the document limit must still arrive to be quarantined.
        let largest = config.body_limit.max(config.document_limit.saturating_add(1024 * 1024));
        let invocation_limit = largest.saturating_mul(4) / 3 + 64 * 1024;
        Handler {
            service: Arc::clone(&built.service),
            core: router(built.state.clone()),
            outbox: built.outbox.clone(),
            invocation_limit,
        }
    }

    /// The custom handler's routes: one per function, everything else forwarded HTTP.
    pub fn app(self) -> Router {
        Router::new()
            .route(&format!("/{HTTP_FUNCTION}"), post(http_invocation))
            .route(&format!("/{BLOB_FUNCTION}"), post(blob_invocation))
            .route(&format!("/{QUEUE_FUNCTION}"), post(queue_invocation))
            .fallback(forwarded)
            .with_state(self)
    }

    async fn flush(&self) {
        if let Some(o) = &self.outbox {
            o.flush(FLUSH_DEADLINE, self.service.clock().now_ms()).await;
        }
    }

    async fn read(&self, body: Body) -> Result<Invocation, PayloadError> {
        let bytes = read_body(body, self.invocation_limit).await.map_err(|e| PayloadError(e.message))?;
        payload::parse_invocation(&bytes)
    }
}

/// The custom-handler response `{Outputs, Logs, ReturnValue}`.
pub fn invocation_response(status: StatusCode, outputs: Map<String, Value>, logs: Vec<String>) -> Response {
    let body = json!({"Outputs": outputs, "Logs": logs, "ReturnValue": Value::Null});
    (status, axum::Json(body)).into_response()
}

/// The `{code, message, field?}` object of an error.
fn error_of(e: &ApiError) -> Value {
    e.body().get("error").cloned().unwrap_or(Value::Null)
}

fn one(name: &str, value: Value) -> Map<String, Value> {
    Map::from_iter([(name.to_owned(), value)])
}

fn invocation_id(headers: &HeaderMap) -> Option<String> {
    headers.get(INVOCATION_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `/api/governance` is the guide's path for the invoke envelope (`POST /`).
fn core_uri(path_and_query: &str) -> Option<Uri> {
    let (path, query) = path_and_query.split_once('?').map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let path = if path.trim_end_matches('/') == GUIDE_PATH { "/" } else { path };
    let joined = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    joined.parse().ok()
}

/// The core router's answer; the Functions host buffers responses, so the streaming route
/// answers 501 naming the non-streaming one.
async fn core_answer(h: &Handler, req: Request) -> Response {
    if req.uri().path() == warden_service::router::STREAM_ROUTE {
        return warden_service::router::streaming_unavailable();
    }
    h.core.clone().oneshot(req).await.unwrap_or_else(|e| match e {})
}

/// Forwarding mode: the client's request as it was, to the core router.
async fn forwarded(State(h): State<Handler>, mut req: Request) -> Response {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if let Some(uri) = core_uri(&target) {
        *req.uri_mut() = uri;
    }
    if let Some(id) = invocation_id(req.headers()) {
        req.extensions_mut().insert(RequestId(id));
    }
    let resp = core_answer(&h, req).await;
    h.flush().await;
    resp
}

fn http_error(status: StatusCode, e: &ApiError) -> Value {
    json!({
        "statusCode": status.as_u16(),
        "status": status.as_u16(),
        "body": e.body().to_string(),
        "headers": {"content-type": "application/json"},
    })
}

/// Payload mode of the HTTP function: `Data.req` → the core router → `Outputs.res`.
async fn http_invocation(
    State(h): State<Handler>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let trigger = h.read(body).await.and_then(|inv| {
        let req = inv
            .data
            .get(bindings::HTTP_IN)
            .or_else(|| inv.data.values().find(|v| v.get("Method").is_some()))
            .ok_or_else(|| PayloadError(format!("invocation has no `Data.{}`", bindings::HTTP_IN)))?;
        payload::http_trigger(req)
    });
    let trigger = match trigger {
        Ok(t) => t,
        Err(e) => {
            // The host's own payload was unreadable: answer the caller 400, never fail the host.
            let err = ApiError::invalid_request(e.0);
            let res = http_error(StatusCode::BAD_REQUEST, &err);
            return invocation_response(StatusCode::OK, one(bindings::HTTP_OUT, res), vec![err.message]);
        }
    };
    let mut builder = http::Request::builder()
        .method(trigger.method.as_str())
        .uri(core_uri(&trigger.path_and_query).unwrap_or_else(|| Uri::from_static("/")));
    for (name, value) in &trigger.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            if n != http::header::CONTENT_LENGTH && n != http::header::TRANSFER_ENCODING {
                builder = builder.header(n, v);
            }
        }
    }
    let mut req = match builder.body(Body::from(trigger.body)) {
        Ok(r) => r,
        Err(e) => {
            let err = ApiError::invalid_request(format!("HTTP trigger request is not valid: {e}"));
            let res = http_error(StatusCode::BAD_REQUEST, &err);
            return invocation_response(StatusCode::OK, one(bindings::HTTP_OUT, res), vec![err.message]);
        }
    };
    // The host is the peer; it is a proxy only if WARDEN_TRUSTED_PROXIES says so.
    req.extensions_mut().insert(ClientAddr(peer.ip()));
    if let Some(id) = invocation_id(&headers) {
        req.extensions_mut().insert(RequestId(id));
    }
    let resp = core_answer(&h, req).await;
    let status = resp.status();
    let mut out_headers = Map::new();
    for (name, value) in resp.headers() {
        if let Ok(v) = value.to_str() {
            out_headers.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    let body = axum::body::to_bytes(resp.into_body(), MAX_RESPONSE).await.unwrap_or_default();
    h.flush().await;
    let res = json!({
        "statusCode": status.as_u16(),
        "status": status.as_u16(),
        "body": String::from_utf8_lossy(&body),
        "headers": out_headers,
    });
    invocation_response(StatusCode::OK, one(bindings::HTTP_OUT, res), Vec::new())
}

/// The queue function: each message is an invoke envelope; the answer goes to the output
/// queue. Malformed → an error result (acknowledged); transient → 503 (the host retries and
/// poisons after `maxDequeueCount`); a redelivery already answered → no new output.
async fn queue_invocation(State(h): State<Handler>, headers: HeaderMap, body: Body) -> Response {
    let inv = match h.read(body).await {
        Ok(inv) => inv,
        Err(e) => return malformed_message(&e, None),
    };
    let id = payload::metadata_text(&inv.metadata, "Id");
    let bytes = match inv.data.get(bindings::QUEUE_IN).map(|v| payload::trigger_bytes(v, false)) {
        Some(Ok(b)) => b,
        Some(Err(e)) => return malformed_message(&e, id.as_deref()),
        None => {
            let e = PayloadError(format!("invocation has no `Data.{}`", bindings::QUEUE_IN));
            return malformed_message(&e, id.as_deref());
        }
    };
    let meta = MessageMeta {
        id: id.clone(),
        attempt: payload::metadata_u32(&inv.metadata, "DequeueCount").unwrap_or(1),
        default_agent_id: QUEUE_DEFAULT_AGENT.to_owned(),
        request_id: id.clone().or_else(|| invocation_id(&headers)),
    };
    let outcome = h.service.handle_message(&bytes, &meta).await;
    h.flush().await;
    match outcome {
        MessageOutcome::Done(v) => invocation_response(StatusCode::OK, one(bindings::QUEUE_OUT, v), Vec::new()),
        MessageOutcome::Duplicate(_) => invocation_response(
            StatusCode::OK,
            Map::new(),
            vec!["message already answered: nothing published again".into()],
        ),
        MessageOutcome::Reject(e) => {
            let mut body = e.body();
            if let (Value::Object(m), Some(id)) = (&mut body, &id) {
                m.insert("request_id".into(), Value::String(id.clone()));
            }
            let log = format!("message rejected: {}", e.code.as_str());
            invocation_response(StatusCode::OK, one(bindings::QUEUE_OUT, body), vec![log])
        }
        MessageOutcome::Retry(e) => transient(&e),
    }
}

fn malformed_message(e: &PayloadError, id: Option<&str>) -> Response {
    let err = ApiError::invalid_request(format!("queue invocation: {e}"));
    let mut body = err.body();
    if let (Value::Object(m), Some(id)) = (&mut body, id) {
        m.insert("request_id".into(), Value::String(id.to_owned()));
    }
    invocation_response(StatusCode::OK, one(bindings::QUEUE_OUT, body), vec![err.message])
}

/// A transient failure: non-2xx so the host fails the invocation and redelivers.
fn transient(e: &ApiError) -> Response {
    let logs = vec![format!("transient failure, the host will retry: {}", e.code.as_str())];
    let body = json!({"Outputs": {}, "Logs": logs, "ReturnValue": Value::Null, "error": error_of(e)});
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// The blob function: a request batch → `ai-results/{name}`; any other blob → a document
/// copied to `ai-approved`, `ai-processed` (redacted) or `ai-quarantine`, with its decision
/// record in `ai-results/{name}`.
async fn blob_invocation(State(h): State<Handler>, body: Body) -> Response {
    let inv = match h.read(body).await {
        Ok(inv) => inv,
        Err(e) => {
            // Too large to read at all (or not the host's payload): fail, so the host retries
            // and then records the blob in webjobs-blobtrigger-poison.
            let err = ApiError::too_large(h.invocation_limit);
            let logs = vec![format!("blob invocation unreadable: {e}")];
            let body = json!({"Outputs": {}, "Logs": logs, "ReturnValue": Value::Null, "error": error_of(&err)});
            return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
        }
    };
    let name = payload::metadata_text(&inv.metadata, "name").unwrap_or_default();
    let content_type = payload::metadata_field(&inv.metadata, "Properties", "ContentType");
    let etag = payload::metadata_field(&inv.metadata, "Properties", "ETag");
    let Some(raw) = inv.data.get(bindings::BLOB_IN) else {
        let err = ApiError::invalid_request(format!("invocation has no `Data.{}`", bindings::BLOB_IN));
        return blob_error(&name, &err);
    };
    let bytes = match payload::trigger_bytes(raw, true) {
        Ok(b) => b,
        Err(e) => return blob_error(&name, &ApiError::invalid_request(format!("blob content: {e}"))),
    };
    let config = h.service.config();
    let classified =
        if bytes.len() > config.document_limit { Blob::Document } else { batch::classify(&bytes, config.max_batch) };
    let response = match classified {
        Blob::Requests(items) => run_batch(&h, &name, etag.as_deref(), items).await,
        Blob::TooMany(n) => blob_error(
            &name,
            &ApiError::invalid_request(format!(
                "batch blob has {n} requests; at most {} are allowed",
                config.max_batch
            )),
        ),
        Blob::Document => {
            let meta = DocumentMeta { source: BLOB_SOURCE.to_owned(), name: name.clone(), content_type };
            let outcome = h.service.govern_document(&bytes, &meta);
            let (binding, copy) = match outcome.disposition {
                Disposition::Approve => (bindings::BLOB_APPROVED, raw_base64(raw, &bytes)),
                Disposition::Modify => {
                    (bindings::BLOB_PROCESSED, payload::encode_base64(outcome.output.as_deref().unwrap_or_default()))
                }
                Disposition::Quarantine => (bindings::BLOB_QUARANTINE, raw_base64(raw, &bytes)),
            };
            let container = match outcome.disposition {
                Disposition::Approve => "ai-approved",
                Disposition::Modify => "ai-processed",
                Disposition::Quarantine => "ai-quarantine",
            };
            let mut record = serde_json::to_value(&outcome).unwrap_or_default();
            if let Value::Object(m) = &mut record {
                m.insert("blob".into(), Value::String(name.clone()));
                m.insert("destination".into(), Value::String(format!("{container}/{name}")));
            }
            let mut outputs = one(binding, Value::String(copy));
            outputs.insert(bindings::BLOB_RESULTS.into(), record);
            let log = format!("document {:?}: {}", outcome.disposition, outcome.decision.name());
            invocation_response(StatusCode::OK, outputs, vec![log])
        }
    };
    h.flush().await;
    response
}

/// The blob's own base64 when the host sent canonical base64 (the copy is then exact without
/// re-encoding), else a fresh encoding.
fn raw_base64(raw: &Value, bytes: &[u8]) -> String {
    match raw.as_str() {
        Some(s) if !s.starts_with('"') && payload::decode_base64(s).is_ok_and(|b| b == bytes) => s.to_owned(),
        _ => payload::encode_base64(bytes),
    }
}

fn blob_error(name: &str, e: &ApiError) -> Response {
    let mut record = e.body();
    if let Value::Object(m) = &mut record {
        m.insert("blob".into(), Value::String(name.to_owned()));
    }
    let log = format!("blob rejected: {}", e.code.as_str());
    invocation_response(StatusCode::OK, one(bindings::BLOB_RESULTS, record), vec![log])
}

async fn run_batch(h: &Handler, name: &str, etag: Option<&str>, items: Vec<batch::Item>) -> Response {
    let mut summary =
        Map::from_iter(["allow", "deny", "transform", "confirm", "error"].map(|k| (k.to_owned(), Value::from(0u64))));
    let mut results = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let request_id = match &item.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let meta = RequestMeta {
            channel: Channel::Message,
            request_id: Some(request_id),
            // A redelivered blob (same ETag) does not charge budgets twice.
            idempotency_key: etag.map(|e| format!("{e}#{index}")),
            default_agent_id: Some(BLOB_DEFAULT_AGENT.to_owned()),
            ..RequestMeta::default()
        };
        let (key, entry) = match h.service.invoke(item.body, &meta).await {
            Ok(Value::Object(mut answer)) => {
                let key = answer.get("decision").and_then(Value::as_str).unwrap_or("allow").to_owned();
                let mut entry = Map::from_iter([("id".to_owned(), item.id), ("ok".to_owned(), Value::Bool(true))]);
                entry.append(&mut answer);
                (key, Value::Object(entry))
            }
            Ok(other) => ("allow".to_owned(), json!({"id": item.id, "ok": true, "result": other})),
            Err(e) if e.code.retryable() => return transient(&e),
            Err(e) => ("error".to_owned(), json!({"id": item.id, "ok": false, "error": error_of(&e)})),
        };
        if let Some(Value::Number(n)) = summary.get_mut(&key) {
            *n = (n.as_u64().unwrap_or(0).saturating_add(1)).into();
        }
        results.push(entry);
    }
    let record = json!({
        "blob": name,
        "kind": "batch",
        "processed": results.len(),
        "summary": summary,
        "results": results,
    });
    let log = format!("batch of {} requests governed", record.get("processed").unwrap_or(&Value::Null));
    invocation_response(StatusCode::OK, one(bindings::BLOB_RESULTS, record), vec![log])
}
