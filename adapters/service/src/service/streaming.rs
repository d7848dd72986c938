//! `POST /api/v1/postcheck/stream`: a postcheck whose text arrives and leaves as a stream
//! (issue 16). The request's fields come in the query string; the body is governed by a
//! [`FormatStream`] as it arrives; one [`DecisionRecord`](crate::record::DecisionRecord) (one
//! decision event, one audit line) is made when the stream ends, a deny included.

use super::pipeline::{IdentityFields, Outcome, Subject};
use super::{RequestMeta, Service};
use crate::error::ApiError;
use crate::stream::{FormatStream, StreamFormat};
use serde::Deserialize;
use std::sync::Arc;
use warden_engine::{Direction, Policy};

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
}

/// A streaming postcheck in progress: [`push`](Self::push) body bytes, send what it returns,
/// then [`finish`](Self::finish). Owns what it needs (the service and the policy it started
/// with), so a response body can hold it.
#[derive(Debug)]
pub struct PostcheckStream {
    service: Arc<Service>,
    policy: Arc<Policy>,
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
    /// 422 for an unknown `format` or a bad identifier, 429 when rate limited.
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
        self.rate_limit(query.user_id.as_deref(), meta).await?;
        let (now_ms, t0) = self.now();
        let policy = self.policy.get();
        let inner = FormatStream::new(&self.gate(&policy), &query.tool, &query.scope, format, query.field.as_deref());
        let request_id = meta.request_id.clone().unwrap_or_else(|| self.generated_request_id());
        Ok(PostcheckStream {
            service: Arc::clone(self),
            policy,
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
        let gate = self.service.gate(&self.policy);
        self.inner.as_mut().map(|s| s.push(&gate, input)).unwrap_or_default()
    }

    /// Whether the stream has stopped (denied, or bad input): [`finish`](Self::finish) now.
    pub fn is_stopped(&self) -> bool {
        self.inner.as_ref().is_none_or(FormatStream::is_stopped)
    }

    /// Ends the stream: the last governed bytes and the metadata record (and the input's
    /// terminator); records the decision. `cut_short`: the body could not be read to its end
    /// (the record says so, as an error).
    pub fn finish(mut self, cut_short: Option<&str>) -> Vec<u8> {
        self.end(cut_short)
    }

    fn end(&mut self, cut_short: Option<&str>) -> Vec<u8> {
        let Some(inner) = self.inner.take() else { return Vec::new() };
        let gate = self.service.gate(&self.policy);
        let mut finished = inner.finish(&gate);
        if let Some(why) = cut_short {
            finished.outcome.fail(format!("the stream was cut short: {why}"));
            finished.body.clear();
        }
        let mut out = std::mem::take(&mut finished.body);
        out.extend(finished.close(&finished.outcome.record(Some(&self.request_id))));
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

impl Drop for PostcheckStream {
    /// A stream dropped before its end (the client went away) is still recorded, once.
    fn drop(&mut self) {
        if self.inner.is_some() {
            self.end(Some("the response was dropped before the end (client gone)"));
        }
    }
}
