//! HTTP webhook delivery: POST the event JSON with the signature headers.

use super::gateway::redact_url;
use super::signing::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::sink::{error_chain, EventSink, SendError};
use async_trait::async_trait;
use core::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// POSTs events to one URL. Each attempt is signed afresh, so a retry after a long backoff
/// still carries a current `X-Warden-Timestamp`. Any non-2xx answer (redirects included)
/// is a failure.
pub struct WebhookSink {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

impl WebhookSink {
    /// A sink for `url`, signing with `secret`, giving up on an attempt after `timeout`
    /// (connect + send + response headers).
    pub fn new(
        url: impl Into<String>,
        secret: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<WebhookSink, SendError> {
        let url = url.into();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirected POST silently turns into a GET; treat 3xx as failure instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Other(error_chain(&e.without_url())))?;
        Ok(WebhookSink { client, url, secret: secret.into() })
    }

    /// The target URL with secret query values masked.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    fn map_error(&self, error: reqwest::Error) -> SendError {
        if error.is_timeout() {
            return SendError::Timeout;
        }
        let connect = error.is_connect();
        let message = error_chain(&error.without_url()).replace(&self.url, &self.redacted_url());
        if connect {
            SendError::Connect(message)
        } else {
            SendError::Other(message)
        }
    }
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink").field("url", &self.redacted_url()).field("secret", &"***").finish()
    }
}

#[async_trait]
impl EventSink for WebhookSink {
    async fn send(&self, event_json: &str) -> Result<(), SendError> {
        // A clock before 1970 is a broken host; signing with 0 makes receivers reject the
        // request as stale, which surfaces the problem instead of hiding it.
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signature = sign(&self.secret, timestamp, event_json.as_bytes());
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(event_json.to_owned())
            .send()
            .await
            .map_err(|e| self.map_error(e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError::Status(status.as_u16()))
        }
    }
}
