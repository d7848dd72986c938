//! Per-client rate limits (SPEC §8, `RATE_LIMIT_PER_MINUTE`, default 100) → 429 with
//! `Retry-After`.
//!
//! Fixed one-minute windows aligned to the Unix clock: a key may make `limit` requests in
//! each UTC minute; the next request waits until the minute ends. Simple, exact, and the same
//! in memory and in Redis (where every instance shares the counters). A burst can reach twice
//! the limit across a minute boundary; that is the usual fixed-window trade-off.

#[cfg(feature = "native")]
mod redis;

#[cfg(feature = "native")]
pub use redis::RedisRateLimiter;

use crate::auth::key_fingerprint;
use crate::budget::StoreError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};

/// The window length in milliseconds.
pub const WINDOW_MS: i64 = 60_000;

/// `RATE_LIMIT_PER_MINUTE` when unset.
pub const DEFAULT_PER_MINUTE: NonZeroU32 = match NonZeroU32::new(100) {
    Some(limit) => limit,
    None => NonZeroU32::MIN,
};

/// The verdict on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed (otherwise: 429).
    pub allowed: bool,
    /// Requests allowed per window (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in this window after this one (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Whole seconds until the window resets, at least 1: `Retry-After` when denied,
    /// `X-RateLimit-Reset` otherwise.
    pub retry_after_secs: u64,
}

/// The start (ms) of the window containing `now_ms`.
fn window_start(now_ms: i64) -> i64 {
    now_ms.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// The decision for the `count`-th request of the window starting at `start`.
fn decide(limit: NonZeroU32, count: u64, start: i64, now_ms: i64) -> RateDecision {
    let limit = limit.get();
    let remaining_ms = start.saturating_add(WINDOW_MS).saturating_sub(now_ms).max(0);
    let remaining_ms = u64::try_from(remaining_ms).unwrap_or(0);
    RateDecision {
        allowed: count <= u64::from(limit),
        limit,
        remaining: u32::try_from(u64::from(limit).saturating_sub(count)).unwrap_or(0),
        retry_after_secs: remaining_ms.div_ceil(1000).max(1),
    }
}

/// Counts requests per key and decides whether each may proceed.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request by `key` at `now_ms` (Unix milliseconds) and decides on it.
    async fn hit(&self, key: &str, now_ms: i64) -> Result<RateDecision, StoreError>;

    /// Whether the limiter's store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// `"memory"` or `"redis"`.
    fn kind(&self) -> &'static str;
}

/// Who is calling, for rate limits and budgets: a fingerprint of its API key (never the key
/// itself), else its client address (IPv6 clients by their /64, which one client typically
/// controls whole), else one shared anonymous bucket. Request fields never choose it.
pub fn caller_identity(api_key: Option<&str>, addr: Option<IpAddr>) -> String {
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        return format!("key:{}", key_fingerprint(key));
    }
    match addr.map(|a| a.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("ip:{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        None => "anonymous".to_string(),
    }
}

/// The per-user rate-limit key of a request: its `user_id` within its caller's identity (so a
/// caller cannot spend another caller's user's allowance), else the caller alone.
pub fn rate_key(user_id: Option<&str>, api_key: Option<&str>, addr: Option<IpAddr>) -> String {
    let caller = caller_identity(api_key, addr);
    match user_id.filter(|u| !u.is_empty()) {
        Some(user) => format!("{caller}|user:{user}"),
        None => caller,
    }
}

/// The per-caller rate-limit key (`RATE_LIMIT_PER_KEY_PER_MINUTE`): every request of the caller
/// counts, whatever `user_id` it names, so rotating user ids does not escape it.
pub fn caller_key(api_key: Option<&str>, addr: Option<IpAddr>) -> String {
    format!("caller|{}", caller_identity(api_key, addr))
}

/// How many keys [`MemoryRateLimiter`] tracks before sharing one overflow window.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// In-process fixed-window counters, for single-instance servers, wasm and tests. Memory is
/// bounded: windows of past minutes are evicted when the table is full, and if it is still
/// full every new key of the current minute shares one overflow window (so flooding with
/// fresh keys is limited as one client instead of growing memory).
#[derive(Debug)]
pub struct MemoryRateLimiter {
    limit: NonZeroU32,
    max_keys: usize,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    windows: HashMap<String, Window>,
    /// Shared by new keys while the table is full of current windows.
    overflow: Window,
    /// Start of the last window in which stale windows were purged.
    purged_window: Option<i64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Window {
    start: i64,
    count: u64,
}

impl Window {
    /// Counts a hit at `now_ms`, starting a new window if this one is over. A clock that
    /// steps back keeps counting in the newer window rather than granting a fresh one.
    fn hit(&mut self, now_ms: i64) {
        let start = window_start(now_ms);
        if start > self.start {
            *self = Window { start, count: 0 };
        }
        self.count = self.count.saturating_add(1);
    }
}

impl MemoryRateLimiter {
    /// `limit` requests per minute per key, tracking up to [`DEFAULT_MAX_KEYS`] keys.
    pub fn new(limit: NonZeroU32) -> MemoryRateLimiter {
        MemoryRateLimiter::with_max_keys(limit, DEFAULT_MAX_KEYS)
    }

    /// `limit` requests per minute per key, tracking up to `max_keys` keys (at least 1).
    pub fn with_max_keys(limit: NonZeroU32, max_keys: usize) -> MemoryRateLimiter {
        MemoryRateLimiter { limit, max_keys: max_keys.max(1), state: Mutex::new(MemoryState::default()) }
    }

    /// How many keys currently hold a window (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).windows.len()
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, now_ms: i64) -> Result<RateDecision, StoreError> {
        // Counters are plain integers updated in one step: safe to recover after a panic.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        if let Some(window) = state.windows.get_mut(key) {
            window.hit(now_ms);
            return Ok(decide(self.limit, window.count, window.start, now_ms));
        }
        let current = window_start(now_ms);
        // Purge at most once per window: past windows are all stale at once, and a flood of
        // fresh keys must not turn every request into a full-table scan.
        if state.windows.len() >= self.max_keys && state.purged_window.is_none_or(|purged| purged < current) {
            state.windows.retain(|_, window| window.start >= current);
            state.purged_window = Some(current);
        }
        let window = if state.windows.len() < self.max_keys {
            state.windows.entry(key.to_string()).or_default()
        } else {
            &mut state.overflow
        };
        window.hit(now_ms);
        Ok(decide(self.limit, window.count, window.start, now_ms))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn users_are_scoped_by_the_callers_key_or_address() {
        let v4 = Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
        let fp = key_fingerprint("secret-key");
        assert_eq!(rate_key(Some("u1"), Some("secret-key"), v4), format!("key:{fp}|user:u1"));
        // The same user id under another key, or from another address, is another bucket.
        assert_ne!(rate_key(Some("u1"), Some("other-key"), v4), rate_key(Some("u1"), Some("secret-key"), v4));
        assert_eq!(rate_key(Some("u1"), None, v4), "ip:203.0.113.7|user:u1");
        let by_key = rate_key(None, Some("secret-key"), v4);
        assert_eq!(by_key, format!("key:{fp}"));
        assert!(!by_key.contains("secret-key"));
        assert_eq!(rate_key(Some(""), Some(""), v4), "ip:203.0.113.7");
        assert_eq!(rate_key(None, None, None), "anonymous");
        // The per-caller key ignores user ids.
        assert_eq!(caller_key(Some("secret-key"), v4), format!("caller|key:{fp}"));
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_v4_is_v4() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        let key = |ip: Ipv6Addr| rate_key(None, None, Some(IpAddr::V6(ip)));
        assert_eq!(key(a), "ip:2001:db8:1:2::/64");
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
        let mapped: Ipv6Addr = "::ffff:198.51.100.1".parse().unwrap();
        assert_eq!(key(mapped), "ip:198.51.100.1");
    }

    #[test]
    fn decide_computes_remaining_and_retry_after() {
        let limit = NonZeroU32::new(3).unwrap();
        let d = decide(limit, 1, 60_000, 60_000);
        assert_eq!((d.allowed, d.remaining, d.retry_after_secs), (true, 2, 60));
        let d = decide(limit, 3, 60_000, 119_001);
        assert_eq!((d.allowed, d.remaining, d.retry_after_secs), (true, 0, 1));
        let d = decide(limit, 4, 60_000, 100_500);
        assert_eq!((d.allowed, d.remaining, d.retry_after_secs), (false, 0, 20));
        assert_eq!(window_start(-1), -60_000);
    }
}
