//! Helpers of the native sinks.

pub use super::delivery::{EventSink, SendError};

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
