//! Streaming postcheck against one-shot postcheck on the same text (issue 16): ~64 KB of an AI
//! answer with some PII (the corpus' `some` 1 KB request, repeated), under network redaction.
//! The stream is fed in chunks of 16 bytes (an LLM token or a few), 256 bytes and 4 KiB; the
//! added latency per chunk is (stream time − one-shot time) / chunks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

// Only the corpus texts of the shared workloads are used here.
#[allow(dead_code)]
mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use warden_engine::{Detector, Direction, Gate, Policy, TokenKey};

fn text() -> String {
    let some = common::requests_1k().into_iter().find(|(k, _)| *k == "some").unwrap().1;
    let mut t = String::new();
    while t.len() < 64 << 10 {
        t.push_str(&some);
        t.push('\n');
    }
    t
}

fn stream_vs_one_shot(c: &mut Criterion) {
    let (policy, key, detector) = (Policy::default(), TokenKey::new("bench-salt"), Detector::new());
    let gate = Gate::new(&policy, &key, &detector);
    let text = text();
    let mut g = c.benchmark_group("postcheck_stream");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("one_shot", |b| b.iter(|| gate.check_text(Direction::Egress, "web.chat", "", black_box(&text))));
    for chunk in [16usize, 256, 4096] {
        g.bench_with_input(BenchmarkId::new("stream", chunk), &chunk, |b, &chunk| {
            b.iter(|| {
                let mut s = gate.postcheck_stream("web.chat", "");
                let mut out = 0;
                for piece in text.as_bytes().chunks(chunk) {
                    out += s.push(&gate, black_box(piece)).unwrap().len();
                }
                out + s.finish(&gate).unwrap().rest.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stream_vs_one_shot);
criterion_main!(benches);
