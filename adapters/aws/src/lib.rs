//! Warden on AWS Lambda: one `provided.al2023` binary (`bootstrap`) that classifies each
//! event by its shape and maps it onto the core's seams:
//!
//! | event | handled by |
//! |---|---|
//! | API Gateway REST (v1), HTTP API (v2), Function URL, ALB | the router of `warden serve` ([`http`]) |
//! | TOKEN / REQUEST authorizer (v1, v2 simple response) | [`authorizer`] |
//! | SQS | `Service::handle_message`, partial batch response ([`sqs`]) |
//! | S3 ObjectCreated | `Service::govern_document` → destination buckets ([`s3`]) |
//! | DynamoDB stream | `Service::govern_document` → audit table ([`stream`]) |
//! | anything else (direct invoke, `{"requests": [...]}`) | `Service::invoke` |
//!
//! With `WARDEN_FUNCTION_URL_STREAMING`, Function URL requests are answered as streaming
//! responses ([`App::respond`], [`http::stream`]); every other event is answered as above.
//!
//! No event is an invocation error because of its shape: an unknown or malformed event is
//! answered with `{"error": {...}}`, so Lambda never retries it. Only transient failures
//! (an AWS call that failed) surface as batch item failures or, for S3, an invocation error.

pub mod attr;
pub mod authorizer;
pub mod client;
pub mod config;
pub mod dynamo;
pub mod emf;
pub mod http;
pub mod s3;
pub mod sqs;
pub mod stream;

use futures_util::StreamExt as _;
use lambda_runtime::FunctionResponse;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use warden_service::error::ApiError;
use warden_service::native::Built;
use warden_service::service::RequestMeta;

/// `agent_id` of an `evaluate` that names none.
pub const DEFAULT_AGENT: &str = "lambda-default";

/// Longest the outbox may take to deliver events before an invocation returns.
const MAX_FLUSH: Duration = Duration::from_secs(5);

/// Time kept back from the invocation deadline for returning the answer.
const DEADLINE_MARGIN_MS: i64 = 300;

/// The event shapes this function serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// API Gateway v1/v2, Function URL, ALB.
    Http,
    /// API Gateway TOKEN authorizer.
    TokenAuthorizer,
    /// API Gateway REQUEST authorizer (REST API: IAM policy answer).
    RequestAuthorizer,
    /// HTTP API (payload 2.0) authorizer: simple response.
    HttpApiAuthorizer,
    /// SQS batch.
    Sqs,
    /// S3 notifications.
    S3,
    /// DynamoDB stream batch.
    DynamoDb,
    /// Records of a source this function does not serve.
    UnknownRecords,
    /// Anything else: the invoke envelope.
    Invoke,
}

impl Shape {
    /// The metric dimension value.
    pub const fn name(self) -> &'static str {
        match self {
            Shape::Http => "http",
            Shape::TokenAuthorizer | Shape::RequestAuthorizer | Shape::HttpApiAuthorizer => "authorizer",
            Shape::Sqs => "sqs",
            Shape::S3 => "s3",
            Shape::DynamoDb => "dynamodb",
            Shape::UnknownRecords => "unknown",
            Shape::Invoke => "invoke",
        }
    }
}

/// Classifies an event by its shape (never fails: the fallback is the invoke envelope).
pub fn classify(event: &Value) -> Shape {
    let s = |k: &str| event.get(k).and_then(Value::as_str);
    match (s("type"), s("version")) {
        (Some("TOKEN"), _) if event.get("methodArn").is_some() => return Shape::TokenAuthorizer,
        (Some("REQUEST"), Some("2.0")) if event.get("routeArn").is_some() => return Shape::HttpApiAuthorizer,
        (Some("REQUEST"), _) if event.get("methodArn").is_some() => return Shape::RequestAuthorizer,
        _ => {}
    }
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let source = records.first().and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")));
        return match source.and_then(Value::as_str) {
            Some("aws:sqs") => Shape::Sqs,
            Some("aws:s3") => Shape::S3,
            Some("aws:dynamodb") => Shape::DynamoDb,
            _ => Shape::UnknownRecords,
        };
    }
    let http_context = event.get("requestContext").is_some_and(|c| {
        c.get("http").is_some() || c.get("httpMethod").is_some() || c.get("elb").is_some() || c.get("stage").is_some()
    });
    if http_context || (event.get("httpMethod").is_some() && event.get("path").is_some()) {
        return Shape::Http;
    }
    Shape::Invoke
}

/// The invocation's facts the handlers need.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// Lambda's request id.
    pub request_id: String,
    /// The invocation deadline, Unix ms (0 when unknown).
    pub deadline_ms: i64,
}

/// Everything the function keeps between invocations.
pub struct App {
    /// The assembled core.
    pub built: Built,
    /// The router of `warden serve`.
    pub router: axum::Router,
    /// AWS calls (S3, SQS, DynamoDB), when credentials are present.
    pub aws: Option<client::AwsClient>,
    /// This adapter's settings.
    pub config: config::AwsSettings,
    /// EMF counters.
    pub emf: Arc<emf::Emf>,
    cold: AtomicBool,
}

impl App {
    /// Wraps an assembled core.
    pub fn new(built: Built, aws: Option<client::AwsClient>, config: config::AwsSettings, emf: Arc<emf::Emf>) -> App {
        let router = warden_service::router::router(built.state.clone());
        App { built, router, aws, config, emf, cold: AtomicBool::new(true) }
    }

    /// Answers one event: a streaming response for a Function URL request when
    /// `WARDEN_FUNCTION_URL_STREAMING` is on (decision events are delivered and the metric line
    /// written once its body has been sent), else [`handle`](Self::handle)'s buffered answer.
    ///
    /// # Errors
    ///
    /// As [`handle`](Self::handle).
    pub async fn respond(
        self: Arc<Self>,
        event: Value,
        inv: Invocation,
    ) -> Result<FunctionResponse<Value, http::ResponseStream>, String> {
        if !(self.config.function_url_streaming && classify(&event) == Shape::Http && http::is_function_url(&event)) {
            return self.handle(event, &inv).await.map(FunctionResponse::BufferedResponse);
        }
        let t0 = std::time::Instant::now();
        let mut response = http::stream(&self, event, &inv).await;
        let app = Arc::clone(&self);
        let after = futures_util::stream::once(async move { app.settle(Shape::Http, t0, &inv).await })
            .filter_map(|()| std::future::ready(None));
        response.stream = Box::pin(response.stream.chain(after));
        Ok(FunctionResponse::StreamingResponse(response))
    }

    /// Handles one event. `Err` only where Lambda's contract needs an invocation error: an
    /// authorizer's `Unauthorized` (API Gateway's 401) and an S3 notification whose objects
    /// hit a transient failure (Lambda retries it; the handling is idempotent).
    pub async fn handle(&self, event: Value, inv: &Invocation) -> Result<Value, String> {
        let t0 = std::time::Instant::now();
        let shape = classify(&event);
        let result = match shape {
            Shape::Http => Ok(http::handle(self, event, inv).await),
            Shape::TokenAuthorizer => authorizer::token(self, &event).await,
            Shape::RequestAuthorizer => authorizer::request(self, &event).await,
            Shape::HttpApiAuthorizer => authorizer::request(self, &event).await,
            Shape::Sqs => Ok(sqs::handle(self, &event).await),
            Shape::S3 => s3::handle(self, &event).await,
            Shape::DynamoDb => Ok(stream::handle(self, &event).await),
            Shape::UnknownRecords => {
                self.emf.count_error();
                let source = event
                    .pointer("/Records/0/eventSource")
                    .or_else(|| event.pointer("/Records/0/EventSource"))
                    .and_then(Value::as_str)
                    .map_or_else(|| "none".to_owned(), |s| s.chars().take(64).collect());
                Ok(ApiError::invalid_request(format!(
                    "unsupported event: Records with eventSource `{source}` (this function serves aws:sqs, aws:s3 and aws:dynamodb records)"
                ))
                .body())
            }
            Shape::Invoke => Ok(self.invoke(event, inv).await),
        };
        self.settle(shape, t0, inv).await;
        result
    }

    /// The end of an invocation: its decision events delivered, its metric line written.
    async fn settle(&self, shape: Shape, t0: std::time::Instant, inv: &Invocation) {
        self.flush(inv).await;
        if self.config.metrics {
            let cold = self.cold.swap(false, Ordering::Relaxed);
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            let line =
                self.emf.line(&self.config.function_name, shape.name(), ms, cold, self.built.service.clock().now_ms());
            println!("{line}");
        }
    }

    /// A direct invoke: the envelope, answered like `POST /`, errors as `{"error": ...}`.
    async fn invoke(&self, event: Value, inv: &Invocation) -> Value {
        let meta = RequestMeta {
            request_id: Some(inv.request_id.clone()).filter(|r| !r.is_empty()),
            default_agent_id: Some(DEFAULT_AGENT.to_owned()),
            ..RequestMeta::default()
        };
        match self.built.service.invoke(event, &meta).await {
            Ok(v) => v,
            Err(e) => {
                let mut body = e.body();
                if let (Some(m), Some(id)) = (body.as_object_mut(), meta.request_id) {
                    m.insert("request_id".into(), Value::String(id));
                }
                body
            }
        }
    }

    /// Delivers the invocation's decision events before it returns (dead-lettering the rest).
    async fn flush(&self, inv: &Invocation) {
        let Some(outbox) = &self.built.outbox else { return };
        let now = self.built.service.clock().now_ms();
        let left = if inv.deadline_ms > 0 {
            inv.deadline_ms.saturating_sub(now).saturating_sub(DEADLINE_MARGIN_MS)
        } else {
            i64::MAX
        };
        let budget = Duration::from_millis(u64::try_from(left.max(0)).unwrap_or(0)).min(MAX_FLUSH);
        let report = outbox.flush(budget, now).await;
        if report.dead_lettered > 0 || report.logged > 0 {
            self.emf.count_error();
        }
    }

    /// The AWS client, or an error naming what is missing.
    pub(crate) fn aws(&self) -> Result<&client::AwsClient, String> {
        self.aws
            .as_ref()
            .ok_or_else(|| "no AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) in the environment".into())
    }
}

/// One JSON log line on stderr (stdout carries audit and EMF lines). Callers pass ids,
/// decisions and reasons only, never governed text.
pub fn log(fields: Value) {
    eprintln!("{fields}");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_by_shape() {
        let cases = [
            (json!({"type": "TOKEN", "methodArn": "arn", "authorizationToken": "k"}), Shape::TokenAuthorizer),
            (json!({"type": "REQUEST", "methodArn": "arn", "headers": {}}), Shape::RequestAuthorizer),
            (json!({"version": "2.0", "type": "REQUEST", "routeArn": "arn"}), Shape::HttpApiAuthorizer),
            (json!({"Records": [{"eventSource": "aws:sqs"}]}), Shape::Sqs),
            (json!({"Records": [{"eventSource": "aws:s3"}]}), Shape::S3),
            (json!({"Records": [{"eventSource": "aws:dynamodb"}]}), Shape::DynamoDb),
            (json!({"Records": [{"EventSource": "aws:sns"}]}), Shape::UnknownRecords),
            (json!({"Records": []}), Shape::UnknownRecords),
            (json!({"httpMethod": "POST", "path": "/", "requestContext": {"stage": "prod"}}), Shape::Http),
            (json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}}), Shape::Http),
            (json!({"requestContext": {"elb": {}}}), Shape::Http),
            (json!({"action": "evaluate", "payload": {}}), Shape::Invoke),
            (json!({"requests": []}), Shape::Invoke),
            (json!("text"), Shape::Invoke),
            (json!(null), Shape::Invoke),
        ];
        for (event, want) in cases {
            assert_eq!(classify(&event), want, "{event}");
        }
    }
}
