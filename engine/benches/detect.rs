//! Engine benchmarks (criterion): a 1 KB precheck without, with some and with dense PII; the
//! detector alone on the same texts and on ~1 MB of prose (also with the opt-in detectors on);
//! adversarial inputs at three sizes (throughput that stays flat as the input grows is the
//! linear-time check); building the detector. `scripts/bench` runs these and prints a summary table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use warden_engine::{Detector, Direction, Extra, Gate, TokenKey};

fn precheck_1k(c: &mut Criterion) {
    let policy = common::policy();
    let key = TokenKey::new("bench-salt");
    let detector = Detector::new();
    let gate = Gate::new(&policy, &key, &detector);
    let mut g = c.benchmark_group("precheck_1k");
    for (name, text) in common::requests_1k() {
        let req = common::precheck(&text);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| b.iter(|| gate.check(black_box(&req), Direction::Ingress)));
    }
    g.finish();
}

fn detect_1k(c: &mut Criterion) {
    let detector = Detector::new();
    let mut g = c.benchmark_group("detect_1k");
    for (name, text) in common::requests_1k() {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| b.iter(|| detector.detect(black_box(&text))));
    }
    g.finish();
}

fn detect_prose(c: &mut Criterion) {
    let detector = Detector::new();
    let text = common::prose();
    let mut g = c.benchmark_group("detect_prose");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("1mb", |b| b.iter(|| detector.detect(black_box(&text))));
    // With the opt-in person and street-address detectors, as `warden detect` runs them.
    g.bench_function("1mb_extra", |b| b.iter(|| detector.detect_with_extra(None, black_box(&text), Extra::ALL)));
    g.finish();
}

fn adversarial(c: &mut Criterion) {
    let detector = Detector::new();
    let mut g = c.benchmark_group("adversarial");
    g.sample_size(15).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for len in [64 << 10, 256 << 10, 1 << 20] {
        for (name, text) in common::adversarial(len) {
            g.throughput(Throughput::Bytes(text.len() as u64));
            g.bench_with_input(BenchmarkId::new(name, format!("{}k", len >> 10)), &text, |b, t| {
                b.iter(|| detector.detect(black_box(t)))
            });
        }
    }
    g.finish();
}

fn build(c: &mut Criterion) {
    c.bench_function("detector_new", |b| b.iter(Detector::new));
}

criterion_group!(benches, precheck_1k, detect_1k, detect_prose, adversarial, build);
criterion_main!(benches);
