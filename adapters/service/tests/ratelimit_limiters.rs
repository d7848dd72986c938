//! Rate limiters against real backends (memory and a real redis-server): limits hold, also
//! under concurrency, Retry-After points at the end of the window, windows reset, keys are
//! independent, and the memory limiter's table stays bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[cfg(feature = "native")]
#[path = "budget_support/redis_server.rs"]
mod redis_server;

use std::num::NonZeroU32;
use std::sync::Arc;
use warden_service::ratelimit::{MemoryRateLimiter, RateLimiter, WINDOW_MS};

/// The start of some minute: 2025-09-24T20:28:00Z.
const MINUTE: i64 = 1_758_745_680_000;

fn per_minute(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// Limit 5: five pass with falling `remaining`, the sixth gets 429 with Retry-After to the end
/// of the minute; a new minute starts afresh; other keys are unaffected.
async fn limit_and_reset(limiter: &dyn RateLimiter) {
    let t = MINUTE + 15_200;
    for expected_remaining in (0..5).rev() {
        let d = limiter.hit("user:alice", t).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.limit, 5);
        assert_eq!(d.remaining, expected_remaining);
        assert_eq!(d.retry_after_secs, 45); // 44.8 s left, rounded up
    }
    let d = limiter.hit("user:alice", t + 30_000).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.retry_after_secs, 15); // 14.8 s left
    let d = limiter.hit("user:alice", MINUTE + WINDOW_MS - 1).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after_secs, 1);

    // Another key has its own budget.
    let d = limiter.hit("user:bob", t).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 4);

    // The next minute resets.
    let d = limiter.hit("user:alice", MINUTE + WINDOW_MS).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 4);
    assert_eq!(d.retry_after_secs, 60);

    limiter.ping().await.unwrap();
}

/// 100 concurrent hits against a limit of 10: exactly 10 pass.
async fn concurrent_hits(limiter: Arc<dyn RateLimiter>) {
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let limiter = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move { limiter.hit("key:shared", MINUTE + 1_000).await.unwrap() }));
    }
    let mut allowed = 0;
    let mut remaining = Vec::new();
    for task in tasks {
        let d = task.await.unwrap();
        if d.allowed {
            allowed += 1;
            remaining.push(d.remaining);
        }
    }
    assert_eq!(allowed, 10);
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<u32>>());
}

#[tokio::test]
async fn memory_limiter_limits_and_resets() {
    let limiter = MemoryRateLimiter::new(per_minute(5));
    assert_eq!(limiter.kind(), "memory");
    limit_and_reset(&limiter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn memory_limiter_is_exact_under_concurrency() {
    concurrent_hits(Arc::new(MemoryRateLimiter::new(per_minute(10)))).await;
}

#[tokio::test]
async fn memory_limiter_memory_is_bounded() {
    let limiter = MemoryRateLimiter::with_max_keys(per_minute(1), 3);
    for key in ["a", "b", "c"] {
        assert!(limiter.hit(key, MINUTE).await.unwrap().allowed);
    }
    assert_eq!(limiter.tracked_keys(), 3);
    // Full of current windows: new keys share one overflow window.
    assert!(limiter.hit("d", MINUTE + 1).await.unwrap().allowed);
    assert!(!limiter.hit("e", MINUTE + 2).await.unwrap().allowed);
    assert_eq!(limiter.tracked_keys(), 3);
    // Known keys keep their own windows.
    assert!(!limiter.hit("a", MINUTE + 3).await.unwrap().allowed);
    // A minute later the stale windows are evicted to make room.
    assert!(limiter.hit("f", MINUTE + WINDOW_MS).await.unwrap().allowed);
    assert_eq!(limiter.tracked_keys(), 1);
    assert!(limiter.hit("e", MINUTE + WINDOW_MS).await.unwrap().allowed);
}

#[tokio::test]
async fn memory_limiter_does_not_reset_when_the_clock_steps_back() {
    let limiter = MemoryRateLimiter::new(per_minute(1));
    assert!(limiter.hit("k", MINUTE + WINDOW_MS).await.unwrap().allowed);
    let d = limiter.hit("k", MINUTE + WINDOW_MS - 5_000).await.unwrap();
    assert!(!d.allowed);
    assert!(d.retry_after_secs >= 60);
}

/// The shared limiter, on a real redis-server.
#[cfg(feature = "native")]
mod redis_limiter {
    use super::redis_server::{redis_server, unique_prefix};
    use super::*;
    use warden_service::ratelimit::RedisRateLimiter;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_limiter_limits_and_resets() {
        let Some(server) = redis_server("redis_limiter_limits_and_resets") else {
            return;
        };
        let limiter =
            RedisRateLimiter::connect(&server.url, per_minute(5)).await.unwrap().with_prefix(unique_prefix("limits"));
        assert_eq!(limiter.kind(), "redis");
        limit_and_reset(&limiter).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn redis_limiter_is_exact_across_instances() {
        let Some(server) = redis_server("redis_limiter_is_exact_across_instances") else {
            return;
        };
        let prefix = unique_prefix("concurrent");
        let limiter = RedisRateLimiter::connect(&server.url, per_minute(10)).await.unwrap().with_prefix(&prefix);
        concurrent_hits(Arc::new(limiter)).await;
        // A second instance on the same prefix sees the same counter.
        let other = RedisRateLimiter::connect(&server.url, per_minute(10)).await.unwrap().with_prefix(&prefix);
        assert!(!other.hit("key:shared", MINUTE + 2_000).await.unwrap().allowed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_limiter_counters_expire_after_their_window() {
        let Some(server) = redis_server("redis_limiter_counters_expire_after_their_window") else {
            return;
        };
        let prefix = unique_prefix("expiry");
        let limiter = RedisRateLimiter::connect(&server.url, per_minute(5)).await.unwrap().with_prefix(&prefix);
        limiter.hit("ip:192.0.2.1", MINUTE + 40_000).await.unwrap();
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("{prefix}:ratelimit:ip:192.0.2.1:{MINUTE}");
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
        // 20 s left in the window plus 5 s grace.
        assert!(pttl > 20_000 && pttl <= 25_000, "pttl {pttl}");
        let count: i64 = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
        assert_eq!(count, 1);
    }
}
