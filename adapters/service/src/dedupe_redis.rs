//! Message dedupe in Redis: one key per message id, shared by every instance, with an expiry
//! on every key (`PX`), so Redis never keeps an id longer than the dedupe window.

use crate::budget::StoreError;
use crate::service::{MessageDedupe, Seen};
use ::redis::aio::ConnectionManager;
use async_trait::async_trait;
use core::time::Duration;
use serde_json::Value;

/// The marker of a claimed message whose answer is not stored yet.
const PENDING: &str = "\u{0}pending";

/// Dedupe keys `warden:msg:<id>` in Redis.
#[derive(Clone)]
pub struct RedisDedupe {
    conn: ConnectionManager,
}

impl core::fmt::Debug for RedisDedupe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RedisDedupe")
    }
}

impl RedisDedupe {
    /// Dedupe over a shared connection.
    pub fn new(conn: ConnectionManager) -> RedisDedupe {
        RedisDedupe { conn }
    }
}

fn key(id: &str) -> String {
    format!("warden:msg:{id}")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn failed(e: ::redis::RedisError) -> StoreError {
    StoreError::new("redis", e.to_string())
}

#[async_trait]
impl MessageDedupe for RedisDedupe {
    async fn claim(&self, id: &str, pending: Duration, _now_ms: i64) -> Result<Seen, StoreError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = ::redis::cmd("SET")
            .arg(key(id))
            .arg(PENDING)
            .arg("NX")
            .arg("PX")
            .arg(millis(pending))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        if set.is_some() {
            return Ok(Seen::New);
        }
        let stored: Option<String> = ::redis::cmd("GET").arg(key(id)).query_async(&mut conn).await.map_err(failed)?;
        Ok(match stored {
            Some(s) if s == PENDING => Seen::Pending,
            Some(s) => Seen::Done(serde_json::from_str(&s).unwrap_or(Value::Null)),
            // Expired between the two commands: a later redelivery will claim it.
            None => Seen::Pending,
        })
    }

    async fn complete(&self, id: &str, answer: &Value, ttl: Duration, _now_ms: i64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        ::redis::cmd("SET")
            .arg(key(id))
            .arg(answer.to_string())
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut conn)
            .await
            .map_err(failed)
    }

    async fn release(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        ::redis::cmd("DEL").arg(key(id)).query_async::<()>(&mut conn).await.map_err(failed)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
