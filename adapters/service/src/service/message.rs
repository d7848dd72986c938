//! The message seam: one call for every redeliverable message a platform hands over (SQS
//! records, Pub/Sub pushes and pulls, Azure queue messages, direct invokes).
//!
//! Delivery is at least once everywhere, so the seam deduplicates on the message id through
//! a [`MessageDedupe`] store: the first delivery *claims* the id, runs, and stores its answer
//! for [`Settings::dedupe_ttl`](crate::settings::Settings::dedupe_ttl); a redelivery within
//! that window gets the stored answer back as [`MessageOutcome::Duplicate`] (nothing is
//! evaluated, published or charged again). A claim whose run never finished (the instance
//! died) expires after [`PENDING_TTL`], after which a redelivery runs again. Budget spend of
//! a message is recorded under its id (the transaction's correlation id when the request has
//! none).

use super::{Channel, RequestMeta, Service};
use crate::budget::StoreError;
use crate::error::ApiError;
use async_trait::async_trait;
use core::time::Duration;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use warden_engine::ErrorCode;

/// How long a claim of a message that is being processed blocks redeliveries.
pub const PENDING_TTL: Duration = Duration::from_secs(300);

/// What the platform says about a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageMeta {
    /// The platform's message id (SQS `messageId`, Pub/Sub `messageId`, queue `Id`); the
    /// dedupe key. `None` turns deduplication off for this message.
    pub id: Option<String>,
    /// Delivery attempt, 1 for the first (from the platform when it says).
    pub attempt: u32,
    /// `agent_id` of an `evaluate` that names none (the platform's default, e.g. `lambda-default`).
    pub default_agent_id: String,
    /// The invocation's request id, echoed into the answer.
    pub request_id: Option<String>,
}

/// What to do with a message.
#[derive(Clone, Debug, PartialEq)]
pub enum MessageOutcome {
    /// Answered: publish the result, acknowledge the message.
    Done(Value),
    /// Answered before (a redelivery): acknowledge; the result was published the first time.
    Duplicate(Value),
    /// Malformed: acknowledge (never retry) and publish or log the error.
    Reject(ApiError),
    /// Transient failure (a store or sink is down): fail the message so it is redelivered.
    Retry(ApiError),
}

/// A message id's state in the dedupe store.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// Not seen: claimed now by the caller.
    New,
    /// Claimed by a run that has not finished.
    Pending,
    /// Answered; the stored answer.
    Done(Value),
}

/// Remembers message ids and their answers for a while (memory, Redis, DynamoDB...).
#[async_trait]
pub trait MessageDedupe: Send + Sync {
    /// Claims `id` for `pending` unless it is known; says what it was.
    async fn claim(&self, id: &str, pending: Duration, now_ms: i64) -> Result<Seen, StoreError>;
    /// Stores the answer of `id` for `ttl`.
    async fn complete(&self, id: &str, answer: &Value, ttl: Duration, now_ms: i64) -> Result<(), StoreError>;
    /// Drops the claim of `id` (its run failed transiently: the redelivery must run).
    async fn release(&self, id: &str) -> Result<(), StoreError>;
    /// `memory`, `redis`, ...
    fn kind(&self) -> &'static str;
}

/// In-process dedupe, for one instance; at most `max_ids` ids are kept (expired ones go
/// first, then the oldest), so memory stays bounded under any message rate.
#[derive(Debug)]
pub struct MemoryDedupe {
    entries: Mutex<HashMap<String, (i64, Seen)>>,
    max_ids: usize,
}

impl MemoryDedupe {
    /// A store keeping at most `max_ids` ids.
    pub fn new(max_ids: usize) -> MemoryDedupe {
        MemoryDedupe { entries: Mutex::new(HashMap::new()), max_ids: max_ids.max(1) }
    }
}

fn expiry(now_ms: i64, ttl: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait]
impl MessageDedupe for MemoryDedupe {
    async fn claim(&self, id: &str, pending: Duration, now_ms: i64) -> Result<Seen, StoreError> {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(id) {
            Some((until, seen)) if *until > now_ms => return Ok(seen.clone()),
            _ => {}
        }
        if map.len() >= self.max_ids {
            map.retain(|_, (until, _)| *until > now_ms);
            while map.len() >= self.max_ids {
                let oldest = map.iter().min_by_key(|(_, (until, _))| *until).map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => map.remove(&k),
                    None => break,
                };
            }
        }
        map.insert(id.to_owned(), (expiry(now_ms, pending), Seen::Pending));
        Ok(Seen::New)
    }

    async fn complete(&self, id: &str, answer: &Value, ttl: Duration, now_ms: i64) -> Result<(), StoreError> {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(id.to_owned(), (expiry(now_ms, ttl), Seen::Done(answer.clone())));
        Ok(())
    }

    async fn release(&self, id: &str) -> Result<(), StoreError> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

impl Service {
    /// Handles one message: its bytes are an invoke envelope (SPEC §2 `POST /`). Malformed
    /// input is rejected (never retried); a failing store makes it retried; a redelivery of
    /// an answered message is a duplicate.
    pub async fn handle_message(&self, body: &[u8], meta: &MessageMeta) -> MessageOutcome {
        // Parsed after the claim, so that a redelivered malformed message is a duplicate too
        // (its error result is published once).
        let parsed: Result<Value, ApiError> = if body.len() > self.config.body_limit {
            Err(ApiError::too_large(self.config.body_limit))
        } else {
            crate::json::from_slice(body).map_err(|e| ApiError::invalid_json(format!("message is not valid JSON: {e}")))
        };
        let now_ms = self.clock.now_ms();
        let dedupe = self.plugins.dedupe.as_ref().zip(meta.id.as_deref());
        if let Some((store, id)) = dedupe {
            match store.claim(id, PENDING_TTL, now_ms).await {
                Ok(Seen::New) => {}
                Ok(Seen::Done(answer)) => return MessageOutcome::Duplicate(answer),
                Ok(Seen::Pending) => {
                    return MessageOutcome::Retry(ApiError::new(
                        ErrorCode::Unavailable,
                        "an earlier delivery of this message is still being processed",
                    ))
                }
                // A malformed message is rejected even while the store is down: retrying it
                // could never succeed (at worst its error result is published twice).
                Err(e) => match parsed {
                    Ok(_) => return self.retry(ErrorCode::StoreUnavailable, &e),
                    Err(malformed) => return self.rejected(malformed),
                },
            }
        }
        let request = RequestMeta {
            channel: Channel::Message,
            request_id: meta.request_id.clone().or_else(|| meta.id.clone()),
            idempotency_key: meta.id.clone(),
            default_agent_id: Some(meta.default_agent_id.clone()).filter(|a| !a.is_empty()),
            ..RequestMeta::default()
        };
        let result = match parsed {
            Ok(value) => self.invoke(value, &request).await,
            Err(e) => Err(e),
        };
        let (outcome, answer) = match result {
            Ok(v) => (MessageOutcome::Done(v.clone()), v),
            Err(e) if e.code.retryable() => {
                if let Some((store, id)) = dedupe {
                    // If the release fails too, the claim expires after PENDING_TTL.
                    let _ = store.release(id).await;
                }
                return MessageOutcome::Retry(e);
            }
            Err(e) => {
                let body = e.body();
                (self.rejected(e), body)
            }
        };
        if let Some((store, id)) = dedupe {
            if let Err(e) = store.complete(id, &answer, self.config.dedupe_ttl, self.clock.now_ms()).await {
                // The answer stands; a redelivery would run again, which is the at-least-once
                // behaviour the platform already has.
                self.report_error(ErrorCode::StoreUnavailable, &e.to_string());
            }
        }
        outcome
    }

    /// Forgets message `id`, so that its redelivery runs again: for an adapter whose own step
    /// after the answer (publishing it to a result topic) failed and that fails the message.
    pub async fn forget_message(&self, id: &str) -> Result<(), StoreError> {
        match &self.plugins.dedupe {
            Some(store) => store.release(id).await,
            None => Ok(()),
        }
    }

    fn rejected(&self, e: ApiError) -> MessageOutcome {
        self.report_error(e.code, &e.message);
        MessageOutcome::Reject(e)
    }

    fn retry(&self, code: ErrorCode, e: &StoreError) -> MessageOutcome {
        self.report_error(code, &e.to_string());
        MessageOutcome::Retry(ApiError::new(code, format!("{} store unavailable", e.store())))
    }
}
