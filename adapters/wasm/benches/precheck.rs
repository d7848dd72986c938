//! Native twin of `tests/edge/bench.mjs`: the latency of one precheck of the same ~1 KB request
//! through the same code path as the wasm package (JSON text in → `Core::check` → JSON text
//! out), so that `docs/benchmarks.md` can put the wasm and native numbers side by side.
//!
//! `cargo bench -p warden-wasm --bench precheck` prints one JSON line:
//! `{"runtime":"native",...,"mean_us":..,"p50_us":..,"p99_us":..}`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Instant;
use warden_engine::Direction;
use warden_service::clock::FixedClock;
use warden_wasm::api::Core;

const REQUEST: &str = include_str!("../../../tests/edge/bench-request.json");

fn main() {
    let core = Core::new(serde_json::json!({"piiTokenSalt": "bench-salt"}), Arc::new(FixedClock::new(0))).unwrap();
    // Compact, as `JSON.stringify` hands it to the wasm build.
    let compact = serde_json::from_str::<serde_json::Value>(REQUEST).unwrap().to_string();
    let once = || {
        let body: serde_json::Value = serde_json::from_str(&compact).unwrap();
        let resp = core.check(body, Direction::Ingress).unwrap();
        serde_json::to_string(&resp).unwrap()
    };
    let sample = once();
    assert!(sample.contains("\"decision\":\"transform\""), "{sample}");
    for _ in 0..2_000 {
        std::hint::black_box(once());
    }
    let iterations = 20_000usize;
    let mut samples = Vec::with_capacity(iterations);
    let start = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        std::hint::black_box(once());
        samples.push(t.elapsed().as_nanos());
    }
    let total = start.elapsed();
    samples.sort_unstable();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)] as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "runtime": "native",
            "request_bytes": compact.len(),
            "iterations": iterations,
            "mean_us": total.as_secs_f64() * 1e6 / iterations as f64,
            "p50_us": pct(50),
            "p99_us": pct(99),
        })
    );
}
