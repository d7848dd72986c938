//! `POST /api/v1/postcheck/stream`: a postcheck whose text arrives and leaves as a stream
//! (issue 16). The request's fields come in the query string; the body is governed by a
//! [`FormatStream`] as it arrives; one [`DecisionRecord`](crate::record::DecisionRecord) (one
//! decision event, one audit line) is made when the stream ends, a deny included.
//!
//! A request's own `policy_config` and `tool_config` come URL-encoded in the query string and
//! are validated as for `POST /api/v1/postcheck`. Budgets (a `user_id` with budgets on) are
//! checked before the first byte (a user already over budget gets a deny record and no text)
//! and spent when the stream ends, for the characters of text it governed, as a postcheck of
//! the whole text would spend.

use super::pipeline::{BudgetJoin, IdentityFields, Outcome, Subject};
use super::{RequestMeta, Service};
use crate::error::ApiError;
use crate::settings::RequestPolicyMode;
use crate::stream::{FormatStream, StreamFormat};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use warden_engine::{Decision, Direction, ErrorCode, Policy, RequestPolicy};

/// Longest `policy_config` or `tool_config` in a stream's query string, in bytes (decoded).
pub const MAX_QUERY_JSON: usize = 16 * 1024;

/// The query string of a streaming postcheck.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The tool whose answer is streamed.
    pub tool: String,
    /// Its scope.
    #[serde(default)]
    pub scope: String,
    /// `text` (default), `ndjson`, `openai` or `anthropic`.
    pub format: Option<String>,
    /// NDJSON: the JSON pointer of the text delta.
    pub field: Option<String>,
    /// The end user (rate limit key, decision record).
    pub user_id: Option<String>,
    /// Correlation id.
    pub corr_id: Option<String>,
    /// Tags, comma-separated.
    pub tags: Option<String>,
    /// The request's own policy: JSON, at most [`MAX_QUERY_JSON`] bytes.
    pub policy_config: Option<String>,
    /// Tool configuration (model, purchase metadata) for budgets: JSON, at most
    /// [`MAX_QUERY_JSON`] bytes.
    pub tool_config: Option<String>,
}

/// A JSON query parameter: bounded, strict JSON (no repeated keys), else 422 naming it.
fn json_param(text: Option<&str>, name: &str) -> Result<Option<Value>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    if text.len() > MAX_QUERY_JSON {
        return Err(ApiError::invalid_request(format!("`{name}` is longer than {MAX_QUERY_JSON} bytes"))
            .with_field(name.to_owned()));
    }
    crate::json::from_str(text)
        .map(Some)
        .map_err(|e| ApiError::invalid_request(format!("`{name}` is not valid JSON: {e}")).with_field(name.to_owned()))
}

/// A streaming postcheck in progress: [`push`](Self::push) body bytes, send what it returns,
/// then [`finish`](Self::finish). Owns what it needs (the service and the policy it started
/// with), so a response body can hold it.
#[derive(Debug)]
pub struct PostcheckStream {
    service: Arc<Service>,
    policy: Arc<Policy>,
    /// The request's own valid policy, which replaces `policy` for this stream.
    own: Option<Arc<RequestPolicy>>,
    tool_config: Option<Value>,
    meta: RequestMeta,
    /// A budget that denied before the first byte: the stream sends only its record.
    refused: Option<BudgetJoin>,
    inner: Option<FormatStream>,
    format: StreamFormat,
    query: StreamQuery,
    tags: Vec<String>,
    request_id: String,
    now_ms: i64,
    t0: u64,
}

impl Service {
    /// Starts a streaming postcheck: checks the query and the rate limit (errors here are
    /// answered as usual, before any streaming).
    ///
    /// # Errors
    ///
    /// 422 for an unknown `format`, a bad identifier, or a `policy_config` that
    /// `POST /api/v1/postcheck` would refuse (`WARDEN_REQUEST_POLICY=off`, over a limit,
    /// `encrypt` without keys), is invalid (postcheck applies `on_error` to the whole text,
    /// which a stream cannot), or under `WARDEN_REQUEST_POLICY=tighten` (combining two
    /// policies' verdicts needs the whole text); 429 when rate limited; 503 when the budget
    /// store fails on a message channel.
    pub async fn postcheck_stream(
        self: &Arc<Self>,
        query: StreamQuery,
        meta: &RequestMeta,
    ) -> Result<PostcheckStream, ApiError> {
        let format = match query.format.as_deref() {
            None => StreamFormat::Text,
            Some(f) => StreamFormat::parse(f).ok_or_else(|| {
                ApiError::invalid_request("`format` must be one of text, ndjson, openai, anthropic")
                    .with_field("format")
            })?,
        };
        let tags: Vec<String> =
            query.tags.as_deref().map(|t| t.split(',').map(str::to_owned).collect()).unwrap_or_default();
        IdentityFields {
            tool: Some(&query.tool),
            scope: Some(&query.scope),
            user_id: query.user_id.as_deref(),
            corr_id: query.corr_id.as_deref(),
            agent_id: None,
            tags: &tags,
        }
        .check()?;
        if let Some(field) = query.field.as_deref() {
            if !(field.starts_with('/') && field.len() <= 256) {
                return Err(ApiError::invalid_request("`field` must be a JSON pointer such as /message/content")
                    .with_field("field"));
            }
        }
        let policy_config = json_param(query.policy_config.as_deref(), "policy_config")?;
        let tool_config = json_param(query.tool_config.as_deref(), "tool_config")?;
        self.rate_limit(query.user_id.as_deref(), meta).await?;
        let (now_ms, t0) = self.now();
        let own = self.request_policy(policy_config.as_ref())?;
        match own.as_deref() {
            Some(RequestPolicy::Invalid { message, .. }) => {
                return Err(
                    ApiError::invalid_request(format!("invalid policy_config: {message}")).with_field("policy_config")
                );
            }
            Some(_) if self.config.request_policy == RequestPolicyMode::Tighten => {
                return Err(ApiError::new(
                    ErrorCode::PolicyConfigDisabled,
                    "a stream cannot apply a policy_config under WARDEN_REQUEST_POLICY=tighten (tightening needs both \
                     policies' verdicts on the whole text); use POST /api/v1/postcheck",
                )
                .with_field("policy_config"));
            }
            _ => {}
        }
        // Check only: is the user already over budget before any text is sent? (A `confirm`
        // decision never records spend; the stream's own spend comes at its end.)
        let refused = match query.user_id.as_deref() {
            Some(user) => self
                .budget(user, 0, tool_config.as_ref(), &query.tool, None, Decision::Confirm, now_ms, meta)
                .await?
                .filter(BudgetJoin::denies),
            None => None,
        };
        let policy = self.policy.get();
        let inner = FormatStream::new(
            &self.gate(governing(own.as_deref(), &policy)),
            &query.tool,
            &query.scope,
            format,
            query.field.as_deref(),
        );
        let request_id = meta.request_id.clone().unwrap_or_else(|| self.generated_request_id());
        Ok(PostcheckStream {
            service: Arc::clone(self),
            policy,
            own,
            tool_config,
            meta: meta.clone(),
            refused,
            inner: Some(inner),
            format,
            query,
            tags,
            request_id,
            now_ms,
            t0,
        })
    }
}

impl PostcheckStream {
    /// The response's content type.
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }

    /// The request id, also in the metadata record.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Governs body bytes; returns the bytes to send now.
    pub fn push(&mut self, input: &[u8]) -> Vec<u8> {
        if self.refused.is_some() {
            return Vec::new();
        }
        let gate = self.service.gate(governing(self.own.as_deref(), &self.policy));
        self.inner.as_mut().map(|s| s.push(&gate, input)).unwrap_or_default()
    }

    /// Whether the stream has stopped (denied, or bad input): [`finish`](Self::finish) now.
    pub fn is_stopped(&self) -> bool {
        self.refused.is_some() || self.inner.as_ref().is_none_or(FormatStream::is_stopped)
    }

    /// Ends the stream: the last governed bytes and the metadata record (and the input's
    /// terminator); spends the budget and records the decision. `cut_short`: the body could
    /// not be read to its end (the record says so, as an error; nothing is spent).
    pub async fn finish(mut self, cut_short: Option<&str>) -> Vec<u8> {
        let Some(finished) = self.end(cut_short) else { return Vec::new() };
        let join = match (self.refused.take(), self.query.user_id.as_deref()) {
            (Some(refused), _) => Some(refused),
            (None, Some(user)) if cut_short.is_none() => {
                let chars = usize::try_from(finished.outcome.text_chars).unwrap_or(usize::MAX);
                let spent = self.service.budget(
                    user,
                    chars,
                    self.tool_config.as_ref(),
                    &self.query.tool,
                    self.query.corr_id.as_deref(),
                    finished.outcome.decision,
                    self.now_ms,
                    &self.meta,
                );
                // Err only on message channels, where a stream is not served.
                spent.await.ok().flatten()
            }
            (None, _) => None,
        };
        self.close(finished, join)
    }

    /// Ends the format stream under the governing policy; a stream cut short keeps no
    /// governed bytes and says why, as an error. None once ended.
    fn end(&mut self, cut_short: Option<&str>) -> Option<crate::stream::Finished> {
        let inner = self.inner.take()?;
        let mut finished = inner.finish(&self.service.gate(governing(self.own.as_deref(), &self.policy)));
        if let Some(why) = cut_short {
            finished.outcome.fail(format!("the stream was cut short: {why}"));
            finished.body.clear();
        }
        Some(finished)
    }

    /// Frames the record (with the budget's outcome joined in) after the last bytes, and
    /// records the decision.
    fn close(&mut self, mut finished: crate::stream::Finished, join: Option<BudgetJoin>) -> Vec<u8> {
        let budget = join.map(|j| j.join_stream(&mut finished));
        if finished.outcome.decision == Decision::Deny {
            finished.body.clear();
        }
        let mut record = finished.outcome.record(Some(&self.request_id));
        if let (Value::Object(m), Some((status, info))) = (&mut record, budget) {
            if let Some(status) = status {
                m.insert("budget_status".into(), super::pipeline::to_json(&status));
            }
            if let Some(info) = info {
                m.insert("budget_info".into(), super::pipeline::to_json(&info));
            }
        }
        let mut out = std::mem::take(&mut finished.body);
        out.extend(finished.close(&record));
        let o = finished.outcome;
        let outcome = Outcome {
            decision: o.decision,
            policy_id: o.policy_id,
            reasons: o.reasons,
            // The text was streamed, never held whole: records carry neither text.
            raw_text_out: None,
            pii_counts: o.pii_counts,
        };
        let subject = Subject {
            operation: "postcheck_stream",
            direction: Direction::Egress,
            tool: std::mem::take(&mut self.query.tool),
            scope: std::mem::take(&mut self.query.scope),
            raw_text: String::new(),
            corr_id: self.query.corr_id.take(),
            tags: std::mem::take(&mut self.tags),
            user_id: self.query.user_id.take(),
            context: None,
        };
        self.service.record(subject, outcome, self.t0, self.now_ms);
        out
    }
}

/// The policy governing a stream: the request's own valid one, else the server's.
fn governing<'p>(own: Option<&'p RequestPolicy>, server: &'p Policy) -> &'p Policy {
    match own {
        Some(RequestPolicy::Valid(p)) => p,
        _ => server,
    }
}

impl Drop for PostcheckStream {
    /// A stream dropped before its end (the client went away) is still recorded, once (and
    /// not charged: a drop cannot wait for the budget store).
    fn drop(&mut self) {
        let Some(finished) = self.end(Some("the response was dropped before the end (client gone)")) else { return };
        let refused = self.refused.take();
        self.close(finished, refused);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn json_query_parameters_are_bounded_strict_json() {
        assert_eq!(json_param(None, "policy_config").unwrap(), None);
        assert_eq!(json_param(Some(r#"{"a":1}"#), "tool_config").unwrap(), Some(serde_json::json!({"a": 1})));
        for (bad, why) in [("{", "not valid JSON"), (r#"{"a":1,"a":2}"#, "not valid JSON")] {
            let e = json_param(Some(bad), "policy_config").unwrap_err().body();
            assert_eq!(e["error"]["field"], "policy_config");
            assert!(e["error"]["message"].as_str().unwrap().contains(why), "{e}");
        }
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_QUERY_JSON));
        let e = json_param(Some(&long), "tool_config").unwrap_err().body();
        assert!(e["error"]["message"].as_str().unwrap().contains("longer than"), "{e}");
        assert_eq!(e["error"]["field"], "tool_config");
    }
}
