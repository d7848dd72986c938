//! Results of governed messages, published to `WARDEN_RESULT_TOPIC` with the attributes
//! `decision`, `policy_id` and `correlation_id` (a subscriber filters on them without reading
//! the body), or only logged when no topic is configured.

use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use serde_json::{Map, Value};
use std::time::Duration;

/// The `decision` attribute of a message that could not be governed.
pub const ERROR_DECISION: &str = "error";

/// One result message: its body and attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultMessage {
    /// The JSON body: the answer (decision, reasons, modified payload...) or `{"error":...}`,
    /// with `messageId`.
    pub body: Value,
    /// `decision`, `policy_id`, `correlation_id` (the request's `corr_id`, else the message
    /// id).
    pub attributes: Vec<(&'static str, String)>,
}

impl ResultMessage {
    /// The result of an answered message: `answer` with `messageId` added; `corr_id` is the
    /// request's, when it named one.
    pub fn answer(answer: Value, message_id: Option<&str>, corr_id: Option<&str>) -> ResultMessage {
        let decision = match answer.get("decision").and_then(Value::as_str) {
            Some(d) => d.to_owned(),
            // A batch answers per item.
            None if answer.get("results").is_some() => String::from("batch"),
            None => String::from("none"),
        };
        let policy_id = answer.get("policy_id").and_then(Value::as_str).map(str::to_owned);
        let correlation = corr_id.or_else(|| answer.get("request_id").and_then(Value::as_str)).or(message_id);
        let correlation = correlation.map(str::to_owned);
        let mut attributes = vec![("decision", decision)];
        attributes.extend(policy_id.map(|p| ("policy_id", p)));
        attributes.extend(correlation.map(|c| ("correlation_id", c)));
        ResultMessage { body: with_message_id(answer, message_id), attributes }
    }

    /// The result of a message that could not be governed: `{"error":{...},"messageId"}` with
    /// `decision=error`.
    pub fn error(error_body: Value, message_id: Option<&str>) -> ResultMessage {
        let mut attributes = vec![("decision", String::from(ERROR_DECISION))];
        attributes.extend(message_id.map(|m| ("correlation_id", m.to_owned())));
        ResultMessage { body: with_message_id(error_body, message_id), attributes }
    }

    /// The `decision` attribute.
    pub fn decision(&self) -> &str {
        self.attributes.iter().find(|(k, _)| *k == "decision").map_or("", |(_, v)| v.as_str())
    }
}

fn with_message_id(body: Value, message_id: Option<&str>) -> Value {
    let mut map = match body {
        Value::Object(map) => map,
        other => Map::from_iter([(String::from("result"), other)]),
    };
    if let Some(id) = message_id {
        map.insert(String::from("messageId"), Value::String(id.to_owned()));
    }
    Value::Object(map)
}

/// Where results go.
#[derive(Debug)]
pub enum Results {
    /// A Pub/Sub topic.
    Topic {
        /// The official client's batching publisher.
        publisher: Publisher,
        /// `projects/P/topics/T`, for logs.
        topic: String,
        /// How long one publish may take before the message is failed (the client's own
        /// retry budget is minutes; the push deadline is seconds).
        timeout: Duration,
    },
    /// Nowhere but the log line every message gets.
    LogOnly,
}

impl Results {
    /// Publishes `result`; an error is transient (the caller fails the message).
    pub async fn publish(&self, result: &ResultMessage) -> Result<(), String> {
        let Results::Topic { publisher, topic, timeout } = self else { return Ok(()) };
        let data = serde_json::to_vec(&result.body).map_err(|e| format!("cannot encode the result: {e}"))?;
        let message = Message::new()
            .set_data(data)
            .set_attributes(result.attributes.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        match tokio::time::timeout(*timeout, publisher.publish(message)).await {
            Ok(Ok(_id)) => Ok(()),
            Ok(Err(e)) => Err(format!("publishing to {topic} failed: {e}")),
            Err(_) => Err(format!("publishing to {topic} took longer than {} s", timeout.as_secs_f64())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answer_attributes() {
        let r = ResultMessage::answer(
            json!({"decision": "transform", "policy_id": "tool-access", "reasons": [], "request_id": "m-1"}),
            Some("m-1"),
            None,
        );
        assert_eq!(
            r.attributes,
            vec![
                ("decision", "transform".to_owned()),
                ("policy_id", "tool-access".to_owned()),
                ("correlation_id", "m-1".to_owned())
            ]
        );
        assert_eq!(r.body["messageId"], "m-1");
        assert_eq!(r.decision(), "transform");
        let r = ResultMessage::answer(json!({"decision": "allow", "request_id": "m"}), Some("m"), Some("c-9"));
        assert!(r.attributes.contains(&("correlation_id", "c-9".to_owned())));
        assert_eq!(ResultMessage::answer(json!({"results": []}), None, None).decision(), "batch");
    }

    #[test]
    fn error_results() {
        let r = ResultMessage::error(json!({"error": {"code": "invalid_json", "message": "bad"}}), Some("m-2"));
        assert_eq!(r.decision(), ERROR_DECISION);
        assert_eq!(r.body, json!({"error": {"code": "invalid_json", "message": "bad"}, "messageId": "m-2"}));
        assert_eq!(ResultMessage::error(json!("x"), None).body, json!({"result": "x"}));
    }
}
