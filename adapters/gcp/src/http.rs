//! The Cloud Run service: the core router (every SPEC §2 route, CORS, `X-Forwarded-For` per
//! `WARDEN_TRUSTED_PROXIES`) plus `POST /pubsub/push` for push subscriptions and Eventarc,
//! binary-mode CloudEvents sent to `/` (Eventarc's default path), and one structured log line
//! per request carrying the request's trace.

use crate::logging::{log, Trace};
use crate::oidc::Verifier;
use crate::process::{Processor, Verdict};
use crate::push;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Map;
use std::sync::Arc;
use std::time::Instant;
use warden_engine::ErrorCode;
use warden_service::error::ApiError;
use warden_service::router::read_body;

/// The push endpoint's path (the deploy script points subscriptions and Eventarc at it).
pub const PUSH_PATH: &str = "/pubsub/push";

/// What the Google Cloud routes need.
#[derive(Clone, Debug)]
pub struct GcpState {
    /// Governs messages and publishes results.
    pub processor: Arc<Processor>,
    /// The project, for trace names.
    pub project: Option<String>,
    /// Verifies push OIDC tokens, when `WARDEN_PUSH_AUDIENCE` turns it on.
    pub push_auth: Option<Arc<Verifier>>,
}

/// Adds the Google Cloud routes and layers to the core router.
pub fn extend(core: Router, state: GcpState) -> Router {
    let push_routes = Router::new().route(PUSH_PATH, post(push_handler)).with_state(state.clone());
    let events = state.clone();
    let traced = state;
    push_routes
        .merge(core)
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let state = events.clone();
            async move { cloud_events_at_root(state, req, next).await }
        }))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let project = traced.project.clone();
            async move { request_log(project, req, next).await }
        }))
}

/// Eventarc delivers to `/` unless told otherwise: a `POST /` with `ce-*` headers is an event,
/// not an invoke envelope.
async fn cloud_events_at_root(state: GcpState, req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST && req.uri().path() == "/" && push::is_cloud_event(req.headers()) {
        return push_handler(State(state), req).await;
    }
    next.run(req).await
}

/// One line per request: method, path, status, latency and the trace (never the body).
async fn request_log(project: Option<String>, mut req: Request, next: Next) -> Response {
    let trace = Trace::from_headers(req.headers(), project.as_deref());
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    req.extensions_mut().insert(trace.clone());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let severity = match status {
        500.. => "ERROR",
        400.. => "WARNING",
        _ => "INFO",
    };
    let http_request = serde_json::json!({
        "requestMethod": method,
        "requestUrl": path,
        "status": status,
        "latency": format!("{:.6}s", started.elapsed().as_secs_f64()),
    });
    log(severity, "request", Some(&trace), Map::from_iter([("httpRequest".to_owned(), http_request)]));
    resp
}

/// A push (wrapped or unwrapped) or a CloudEvent: 204 once its result is published (malformed
/// ones included: Pub/Sub retries every non-2xx), 503 on a transient failure; 401/403 before
/// the body is read when push authentication is on and the token does not pass.
async fn push_handler(State(state): State<GcpState>, req: Request) -> Response {
    let trace = req.extensions().get::<Trace>().cloned();
    if let Some(verifier) = &state.push_auth {
        if let Err(refusal) = verifier.verify(req.headers().get(axum::http::header::AUTHORIZATION)).await {
            let fields = Map::from_iter([("reason".to_owned(), serde_json::Value::from(refusal.reason()))]);
            log("WARNING", "push request refused", trace.as_ref(), fields);
            return refusal.into_api_error().into_response();
        }
    }
    let (parts, body) = req.into_parts();
    // Base64 grows the data by a third; the envelope adds a little.
    let limit = state.processor.service.config().body_limit.saturating_mul(4) / 3 + 64 * 1024;
    let bytes = match read_body(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let bad = push::Malformed { message_id: None, problem: e.message };
            let verdict = state.processor.process(Err(bad), trace.as_ref()).await;
            return respond(verdict);
        }
    };
    let message = push::parse(&parts.headers, &bytes);
    respond(state.processor.process(message, trace.as_ref()).await)
}

fn respond(verdict: Verdict) -> Response {
    match verdict {
        Verdict::Ack => StatusCode::NO_CONTENT.into_response(),
        Verdict::Nack(why) => ApiError::new(ErrorCode::Unavailable, why).into_response(),
    }
}
