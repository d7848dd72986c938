//! One Pub/Sub message, pushed or pulled, through the core's message seam and onto the result
//! topic. The rule for every path: acknowledge only once the result is published (or the
//! message is a duplicate whose result was published before); a transient failure fails the
//! message so Pub/Sub redelivers it; a malformed message is acknowledged with an error result,
//! since Pub/Sub would otherwise redeliver it forever.

use crate::logging::{log, Trace};
use crate::push::{Incoming, Malformed};
use crate::results::{ResultMessage, Results};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use warden_service::service::{MessageOutcome, Service};

/// What to tell Pub/Sub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledge (push: 204).
    Ack,
    /// Redeliver (push: 503), with why.
    Nack(String),
}

/// Throughput counters (a pull worker logs them; they are totals since start).
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages received.
    pub received: AtomicU64,
    /// Results published (answers and errors).
    pub published: AtomicU64,
    /// Error results among them.
    pub errors: AtomicU64,
    /// Redeliveries of answered messages (acknowledged, nothing published).
    pub duplicates: AtomicU64,
    /// Messages acknowledged.
    pub acked: AtomicU64,
    /// Messages failed for redelivery.
    pub nacked: AtomicU64,
}

impl Counters {
    /// The counters as log fields.
    pub fn fields(&self) -> Map<String, Value> {
        let get = |c: &AtomicU64| Value::from(c.load(Ordering::Relaxed));
        Map::from_iter([
            ("received".to_owned(), get(&self.received)),
            ("published".to_owned(), get(&self.published)),
            ("errors".to_owned(), get(&self.errors)),
            ("duplicates".to_owned(), get(&self.duplicates)),
            ("acked".to_owned(), get(&self.acked)),
            ("nacked".to_owned(), get(&self.nacked)),
        ])
    }
}

/// Governs messages and publishes their results.
#[derive(Debug)]
pub struct Processor {
    /// The core service.
    pub service: Arc<Service>,
    /// Where results go.
    pub results: Results,
    /// `agent_id` of a bare payload whose message has no `agent_id` attribute.
    pub default_agent_id: String,
    /// Counters.
    pub counters: Counters,
}

impl Processor {
    /// Handles one parsed (or unparsable) message.
    pub async fn process(&self, message: Result<Incoming, Malformed>, trace: Option<&Trace>) -> Verdict {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let verdict = match message {
            Ok(m) => self.govern(&m, trace).await,
            Err(bad) => {
                let error = json!({"error": {"code": "invalid_request", "message": bad.problem}});
                let result = ResultMessage::error(error, bad.message_id.as_deref());
                self.finish(result, bad.message_id.as_deref(), trace, &[("problem", Value::from(bad.problem.as_str()))])
                    .await
            }
        };
        let counter = if verdict == Verdict::Ack { &self.counters.acked } else { &self.counters.nacked };
        counter.fetch_add(1, Ordering::Relaxed);
        verdict
    }

    async fn govern(&self, m: &Incoming, trace: Option<&Trace>) -> Verdict {
        let meta = m.meta(&self.default_agent_id);
        let id = m.message_id.as_deref();
        match self.service.handle_message(&m.data, &meta).await {
            MessageOutcome::Done(answer) => {
                let reasons = answer.get("reasons").cloned().unwrap_or(Value::Null);
                let corr_id = corr_id(&m.data);
                let result = ResultMessage::answer(answer, id, corr_id.as_deref());
                self.finish(result, id, trace, &[("reasons", reasons)]).await
            }
            MessageOutcome::Reject(e) => {
                let code = Value::from(e.code.as_str());
                self.finish(ResultMessage::error(e.body(), id), id, trace, &[("code", code)]).await
            }
            MessageOutcome::Duplicate(_) => {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                self.log("INFO", "duplicate message acknowledged", id, trace, &[]);
                Verdict::Ack
            }
            MessageOutcome::Retry(e) => {
                self.log(
                    "WARNING",
                    "transient failure, message will be redelivered",
                    id,
                    trace,
                    &[("code", Value::from(e.code.as_str()))],
                );
                Verdict::Nack(e.message)
            }
        }
    }

    /// Publishes `result`, then acknowledges; a failed publish forgets the answer so that the
    /// redelivery publishes it.
    async fn finish(
        &self,
        result: ResultMessage,
        id: Option<&str>,
        trace: Option<&Trace>,
        extra: &[(&str, Value)],
    ) -> Verdict {
        match self.results.publish(&result).await {
            Ok(()) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                let decision = result.decision();
                let severity = if decision == crate::results::ERROR_DECISION {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    "WARNING"
                } else {
                    "INFO"
                };
                let mut fields = vec![("decision", Value::from(decision))];
                fields.extend(
                    result
                        .attributes
                        .iter()
                        .filter(|(k, _)| *k == "policy_id")
                        .map(|(k, v)| (*k, Value::from(v.as_str()))),
                );
                fields.extend(extra.iter().cloned());
                self.log(severity, "pubsub message governed", id, trace, &fields);
                Verdict::Ack
            }
            Err(e) => {
                if let Some(id) = id {
                    if let Err(store) = self.service.forget_message(id).await {
                        // The claim then expires on its own (the core's pending TTL).
                        self.log(
                            "WARNING",
                            "could not release the message id",
                            Some(id),
                            trace,
                            &[("store", Value::from(store.to_string()))],
                        );
                    }
                }
                self.log(
                    "ERROR",
                    "result not published, message will be redelivered",
                    id,
                    trace,
                    &[("error", Value::from(e.as_str()))],
                );
                Verdict::Nack(e)
            }
        }
    }

    fn log(&self, severity: &str, message: &str, id: Option<&str>, trace: Option<&Trace>, fields: &[(&str, Value)]) {
        let mut map = Map::new();
        if let Some(id) = id {
            map.insert("messageId".into(), Value::from(id));
        }
        for (k, v) in fields {
            map.insert((*k).to_owned(), v.clone());
        }
        log(severity, message, trace, map);
    }
}

/// The request's `corr_id`, for the `correlation_id` attribute (answers do not echo it).
fn corr_id(data: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Corr {
        corr_id: Option<String>,
    }
    serde_json::from_slice::<Corr>(data).ok().and_then(|c| c.corr_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    #[test]
    fn corr_id_of_the_request() {
        assert_eq!(super::corr_id(br#"{"action":"evaluate","corr_id":"c-1","payload":{}}"#).as_deref(), Some("c-1"));
        assert_eq!(super::corr_id(br#"{"corr_id":5}"#), None);
        assert_eq!(super::corr_id(b"not json"), None);
    }
}
