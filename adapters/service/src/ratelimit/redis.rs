//! Rate-limit counters in Redis, shared by every instance: one key per (client, window),
//! incremented and given its expiry by one Lua script, so a crash between the two commands
//! cannot leave a counter that never expires.

use super::{decide, window_start, RateDecision, RateLimiter, WINDOW_MS};
use crate::budget::{connect_redis, StoreError, DEFAULT_REDIS_PREFIX};
use ::redis::aio::ConnectionManager;
use ::redis::Script;
use async_trait::async_trait;
use std::num::NonZeroU32;

/// How long a window's counter outlives the window, absorbing clock skew between instances.
const EXPIRY_GRACE_MS: i64 = 5_000;

/// KEYS: counter. ARGV: expiry in ms. Returns the count including this hit.
const HIT_LUA: &str = r"
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
";

/// Fixed-window counters in Redis: `<prefix>:ratelimit:<key>:<window start ms>`.
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    prefix: String,
    limit: NonZeroU32,
    script: Script,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Connects to `url` (`REDIS_URL`): `limit` requests per minute per key.
    pub async fn connect(url: &str, limit: NonZeroU32) -> Result<RedisRateLimiter, StoreError> {
        Ok(RedisRateLimiter::new(connect_redis(url).await?, limit))
    }

    /// A limiter on an existing connection (e.g. the budget store's), default key prefix.
    pub fn new(conn: ConnectionManager, limit: NonZeroU32) -> RedisRateLimiter {
        RedisRateLimiter { conn, prefix: DEFAULT_REDIS_PREFIX.to_string(), limit, script: Script::new(HIT_LUA) }
    }

    /// Uses `prefix` instead of `warden` for every key.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> RedisRateLimiter {
        self.prefix = prefix.into();
        self
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, now_ms: i64) -> Result<RateDecision, StoreError> {
        let start = window_start(now_ms);
        let expiry_ms = start.saturating_add(WINDOW_MS).saturating_sub(now_ms).saturating_add(EXPIRY_GRACE_MS);
        let mut conn = self.conn.clone();
        let count: u64 = self
            .script
            .key(format!("{}:ratelimit:{key}:{start}", self.prefix))
            .arg(expiry_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::new("redis", e.to_string()))?;
        Ok(decide(self.limit, count, start, now_ms))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let reply: String =
            ::redis::cmd("PING").query_async(&mut conn).await.map_err(|e| StoreError::new("redis", e.to_string()))?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(StoreError::new("redis", format!("unexpected PING reply {reply:?}")))
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
