//! Native twin of `tests/edge/bench.mjs`: the latency of one precheck of the same ~1 KB
//! requests as the engine's criterion bench (`tests/corpus/requests_1k.json`: no, some and
//! dense PII) and `tests/edge/bench-request.json`, through `Core::check_request` (a typed
//! request in, a typed response out: what a Rust caller pays), so that `scripts/test-edge
//! --bench` can print the wasm / native ratio of one run.
//!
//! `cargo bench -p warden-wasm --bench precheck` prints one JSON line per request:
//! `{"runtime":"native","request":"some",...,"p50_us":..}`. Each sample is the mean of a
//! batch of calls, so that the timer's own cost does not count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Instant;
use warden_engine::{CheckRequest, Direction};
use warden_service::clock::FixedClock;
use warden_wasm::api::Core;

const REQUESTS_1K: &str = include_str!("../../../tests/corpus/requests_1k.json");
const BENCH_REQUEST: &str = include_str!("../../../tests/edge/bench-request.json");
/// Calls per sample, samples per request: the same as tests/edge/bench.mjs.
const BATCH: usize = 50;
const SAMPLES: usize = 400;

fn main() {
    let core = Core::new(serde_json::json!({"piiTokenSalt": "bench-salt"}), Arc::new(FixedClock::new(0))).unwrap();
    let corpus: serde_json::Value = serde_json::from_str(REQUESTS_1K).unwrap();
    let bench: CheckRequest = serde_json::from_str(BENCH_REQUEST).unwrap();
    let mut requests = vec![("bench-request", bench)];
    for name in ["none", "some", "dense"] {
        let text = corpus[name].as_str().unwrap().to_owned();
        requests
            .push((name, CheckRequest { tool: "verify_identity".into(), raw_text: text, ..CheckRequest::default() }));
    }
    for (name, req) in &requests {
        let once = || core.check_request(std::hint::black_box(req), Direction::Ingress);
        for _ in 0..3_000 {
            std::hint::black_box(once());
        }
        let mut samples: Vec<f64> = (0..SAMPLES)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..BATCH {
                    std::hint::black_box(once());
                }
                t.elapsed().as_secs_f64() * 1e6 / BATCH as f64
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
        println!(
            "{}",
            serde_json::json!({
                "runtime": "native",
                "request": name,
                "request_bytes": req.raw_text.len(),
                "decision": once().decision.name(),
                "p50_us": (pct(50) * 100.0).round() / 100.0,
                "p90_us": (pct(90) * 100.0).round() / 100.0,
            })
        );
    }
}
