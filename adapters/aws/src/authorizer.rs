//! API Gateway Lambda authorizers. A request is allowed when its key (identity source
//! `X-Governs-Key`) is one of `WARDEN_API_KEYS`, it is within the rate limit, and (REQUEST
//! authorizers) the tool named in `X-Warden-Tool` is not denied by the policy. A missing key
//! is `Unauthorized` (the invocation error API Gateway turns into a 401); anything else is an
//! explicit Deny (403). The context carries the key's fingerprint, never the key.
//!
//! The authorizer's result TTL must be 0 (`aws/template.yaml`): a cached Allow would let a
//! client past the rate limit.

use crate::App;
use serde_json::{json, Value};
use std::net::IpAddr;
use warden_engine::{CheckRequest, Decision, Direction};
use warden_service::auth::key_fingerprint;
use warden_service::router::API_KEY_HEADER;
use warden_service::service::RequestMeta;

/// Header naming the tool a REQUEST authorizer checks against the policy.
pub const TOOL_HEADER: &str = "x-warden-tool";

/// What API Gateway expects for a missing or unusable identity: a 401.
pub const UNAUTHORIZED: &str = "Unauthorized";

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Allow or Deny.
    pub allow: bool,
    /// Why (`ok`, `invalid_key`, `rate_limited`, `tool_denied`, `auth_not_configured`).
    pub reason: &'static str,
    /// Fingerprint of the key presented.
    pub key_id: String,
}

/// A TOKEN authorizer: the token is the key.
pub async fn token(app: &App, event: &Value) -> Result<Value, String> {
    let key = event.get("authorizationToken").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or(UNAUTHORIZED)?;
    let arn = event.get("methodArn").and_then(Value::as_str).unwrap_or_default();
    let verdict = decide(app, key, None, None).await;
    Ok(iam_policy(&verdict, arn))
}

/// A REQUEST authorizer: REST (`simple` false: an IAM policy) or HTTP API payload 2.0
/// (`simple` true: `{"isAuthorized": ...}`).
pub async fn request(app: &App, event: &Value) -> Result<Value, String> {
    let simple = event.get("version").and_then(Value::as_str) == Some("2.0");
    let key = header(event, API_KEY_HEADER).filter(|k| !k.is_empty()).ok_or(UNAUTHORIZED)?;
    let tool = header(event, TOOL_HEADER);
    let source = event
        .pointer("/requestContext/identity/sourceIp")
        .or_else(|| event.pointer("/requestContext/http/sourceIp"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<IpAddr>().ok());
    let verdict = decide(app, key, tool, source).await;
    if simple {
        return Ok(
            json!({"isAuthorized": verdict.allow, "context": {"key_id": verdict.key_id, "reason": verdict.reason}}),
        );
    }
    let arn = event.get("methodArn").and_then(Value::as_str).unwrap_or_default();
    Ok(iam_policy(&verdict, arn))
}

/// A header, case-insensitively (REST sends them as the client wrote them).
fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    let headers = event.get("headers")?.as_object()?;
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str())
}

/// Key, rate limit, tool.
pub async fn decide(app: &App, key: &str, tool: Option<&str>, client: Option<IpAddr>) -> Verdict {
    let key_id = key_fingerprint(key);
    let deny = |reason| Verdict { allow: false, reason, key_id: key_id.clone() };
    let Some(keys) = app.built.state.api_keys.as_ref().filter(|k| k.is_enabled()) else {
        // An authorizer without keys would let everyone in: fail closed.
        return deny("auth_not_configured");
    };
    if !keys.verify(key) {
        return deny("invalid_key");
    }
    let service = &app.built.service;
    let meta = RequestMeta { api_key: Some(key.to_owned()), client_addr: client, ..RequestMeta::default() };
    if service.rate_limit(None, &meta).await.is_err() {
        return deny("rate_limited");
    }
    if let Some(tool) = tool {
        let policy = service.policy_source().get();
        let req = CheckRequest { tool: tool.to_owned(), ..CheckRequest::default() };
        if service.gate(&policy).check(&req, Direction::Ingress).decision == Decision::Deny {
            return deny("tool_denied");
        }
    }
    Verdict { allow: true, reason: "ok", key_id }
}

fn iam_policy(verdict: &Verdict, method_arn: &str) -> Value {
    json!({
        "principalId": verdict.key_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": if verdict.allow { "Allow" } else { "Deny" },
                "Resource": method_arn,
            }]
        },
        "context": {"key_id": verdict.key_id, "reason": verdict.reason},
    })
}
