//! Load-independent cross-check of the criterion numbers: runs one workload a given number of
//! times so that `valgrind --tool=callgrind` can count its instructions. `scripts/bench
//! --callgrind` runs each workload with 1 and with 6 repetitions and reports the difference / 5
//! (instructions per run, set-up excluded).
//!
//! Usage: `instructions WORKLOAD REPS`, WORKLOAD one of `instructions --list`. Under `cargo bench`
//! (arguments `--bench` and maybe a filter) it runs every workload once, as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::hint::black_box;
use warden_engine::{Detector, Direction, Gate, TokenKey};

const SIZES: [usize; 2] = [64 << 10, 1 << 20];

/// Every workload: name and input bytes.
fn workloads() -> Vec<(String, String)> {
    let mut w: Vec<(String, String)> =
        common::requests_1k().into_iter().map(|(k, t)| (format!("precheck_1k/{k}"), t)).collect();
    w.push(("detect_prose/1mb".into(), common::prose()));
    for len in SIZES {
        for (name, text) in common::adversarial(len) {
            w.push((format!("adversarial/{name}/{}k", len >> 10), text));
        }
    }
    w
}

fn run(name: &str, text: &str, reps: usize) {
    let policy = common::policy();
    let key = TokenKey::new("bench-salt");
    let detector = Detector::new();
    let gate = Gate::new(&policy, &key, &detector);
    let req = common::precheck(text);
    for _ in 0..reps {
        if name.starts_with("precheck_1k/") {
            black_box(gate.check(black_box(&req), Direction::Ingress));
        } else {
            black_box(detector.detect(black_box(text)));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = workloads();
    if args.first().map(String::as_str) == Some("--list") {
        for (name, text) in &all {
            println!("{name} {}", text.len());
        }
        return;
    }
    let reps = args.get(1).and_then(|r| r.parse::<usize>().ok());
    match (args.first().and_then(|n| all.iter().find(|(name, _)| name == n)), reps) {
        (Some((name, text)), Some(reps)) => run(name, text, reps),
        _ => {
            for (name, text) in &all {
                run(name, text, 1);
            }
            println!("instructions: ran {} workloads once (use scripts/bench --callgrind to count)", all.len());
        }
    }
}
