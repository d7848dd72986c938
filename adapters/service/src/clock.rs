//! Time, injected: `SystemTime`/`Instant` panic on wasm32-unknown-unknown, so the Worker
//! passes a JS clock and native servers pass [`SystemClock`].

/// Wall-clock and monotonic time.
pub trait Clock: Send + Sync {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;
    /// A monotonic reading in microseconds (for latencies).
    fn monotonic_us(&self) -> u64;
}

/// The operating system's clocks.
#[cfg(feature = "native")]
#[derive(Debug)]
pub struct SystemClock {
    start: std::time::Instant,
}

#[cfg(feature = "native")]
impl SystemClock {
    /// A clock whose monotonic readings start now.
    pub fn new() -> SystemClock {
        SystemClock { start: std::time::Instant::now() }
    }
}

#[cfg(feature = "native")]
impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

#[cfg(feature = "native")]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    fn monotonic_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A clock that stands still unless moved: for tests and deterministic replays.
#[derive(Debug, Default)]
pub struct FixedClock {
    ms: std::sync::atomic::AtomicI64,
}

impl FixedClock {
    /// A clock reading `ms` unix milliseconds.
    pub fn new(ms: i64) -> FixedClock {
        FixedClock { ms: std::sync::atomic::AtomicI64::new(ms) }
    }

    /// Moves the clock to `ms`.
    pub fn set(&self, ms: i64) {
        self.ms.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn monotonic_us(&self) -> u64 {
        u64::try_from(self.now_ms()).unwrap_or(0).saturating_mul(1000)
    }
}

/// JavaScript's clock (`Date.now()`), for the wasm package and the Worker: `SystemTime`
/// panics on wasm32-unknown-unknown. Workers freeze time during synchronous execution (a
/// Spectre mitigation), so latencies read 0 unless I/O happened; that is the platform's truth.
#[cfg(feature = "js")]
#[derive(Debug, Default)]
pub struct JsClock;

#[cfg(feature = "js")]
impl Clock for JsClock {
    fn now_ms(&self) -> i64 {
        // `Date.now()` is an integral number of milliseconds, far inside i64.
        #[allow(clippy::cast_possible_truncation)]
        let ms = js_sys::Date::now() as i64;
        ms
    }

    fn monotonic_us(&self) -> u64 {
        u64::try_from(self.now_ms()).unwrap_or(0).saturating_mul(1000)
    }
}
