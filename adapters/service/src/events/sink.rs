//! Where events go: the [`EventSink`] trait and its error.

use async_trait::async_trait;
use core::fmt;

/// Why one delivery attempt failed. Messages never contain URLs, keys or secrets, so they
/// can be logged and written to the DLQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No answer within the configured timeout.
    Timeout,
    /// The connection could not be opened or broke.
    Connect(String),
    /// The webhook answered with a non-2xx status.
    Status(u16),
    /// Anything else (TLS, protocol, invalid URL, ...).
    Other(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Timeout => f.write_str("timeout"),
            SendError::Connect(message) => write!(f, "connect: {message}"),
            SendError::Status(code) => write!(f, "http status {code}"),
            SendError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SendError {}

/// A destination for decision events. One call is one attempt: retries, backoff and the DLQ
/// are the [`Dispatcher`](super::Dispatcher)'s job.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Delivers one event (compact JSON). `Ok` only when the receiver accepted it.
    async fn send(&self, event_json: &str) -> Result<(), SendError>;
}

/// `error` and its `source()` chain joined with `: `, since the top-level messages of
/// reqwest and tungstenite errors alone ("error sending request") do not say what failed.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
