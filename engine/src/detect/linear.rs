//! Linear-time proof over every trigger (issue 10, finding 2): for each keyword, prefix, trigger
//! byte and separator the detectors react to, taken from the detectors' own tables, the text made
//! of that trigger repeated, and of the trigger followed by each rejected value repeated, must cost
//! at most `MAX_RATIO` times more work at 1 MiB than at 64 KiB (16 for linear work; quadratic work
//! gives 256). Work is the deterministic counter of `super::work`, not time.

use super::{extra, is_trigger, keywords, work, Detector, Extra};
use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

const SMALL: usize = 64 << 10;
const LARGE: usize = 1 << 20;
/// 16 for exactly linear work; the slack covers the constant cost of the text's edges.
const MAX_RATIO: f64 = 17.0;
/// Work per input byte above which even a linear detector is too slow to keep on a request path.
const MAX_UNITS_PER_BYTE: f64 = 24.0;

/// Every trigger the detectors react to: each automaton pattern, each trigger byte of the byte scan, and each ASCII byte
/// that is neither a letter nor a digit (a superset of every separator a parser tests).
fn triggers() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // The automaton ignores ASCII case where it matters, so one spelling per pattern covers it.
    out.extend(keywords::patterns().map(|(pattern, _)| String::from(pattern)));
    for c in (0u8..=0x7F).filter(|&c| is_trigger(c) || !(c.is_ascii_alphanumeric() || c.is_ascii_control())) {
        out.push(char::from(c).into());
    }
    for c in ['\t', '\n', '\r'] {
        out.push(c.into());
    }
    out
}

/// What follows a trigger so that the value it starts is rejected: nothing (the next repetition
/// is the value), an assignment with a reference, an unclosed quote or bracket, a too-short digit
/// group, a word, and the separators a value may continue with.
const REJECTED: [&str; 10] = ["", "=${", ": \"", "<", "(", "1", "12 ", "a", "-", " is "];

fn units() -> Vec<String> {
    let mut out = Vec::new();
    for t in triggers() {
        for r in REJECTED {
            out.push(format!("{t}{r}"));
        }
    }
    // Unicode look-alikes are folded in a pre-pass before the triggers above see them: each
    // alone and between digits.
    for c in super::unicode::folded_chars() {
        out.push(format!("{c}"));
        out.push(format!("1{c}"));
    }
    out
}

/// Work to detect on `unit` repeated to `len` bytes (with the opt-in detectors when `extra`).
fn cost_with(detector: &Detector, unit: &str, len: usize, extra: Extra) -> u64 {
    let text = unit.repeat(len / unit.len());
    work::take();
    let found = detector.detect_with_extra(None, &text, extra);
    core::hint::black_box(found);
    work::take()
}

fn cost(detector: &Detector, unit: &str, len: usize) -> u64 {
    cost_with(detector, unit, len, Extra::default())
}

/// A unit and its work at 16 KiB, 64 KiB and (unless already superlinear there) 1 MiB.
type Measured = (String, u64, u64, Option<u64>);

/// Work for each unit.
fn measure(detector: &Detector, units: &[String]) -> Vec<Measured> {
    units
        .iter()
        .map(|unit| {
            let (probe, small) = (cost(detector, unit, SMALL / 4), cost(detector, unit, SMALL));
            // A superlinear unit already shows between 16 and 64 KiB: stop there rather than
            // spend hours on it at 1 MiB.
            let large = (small as f64 <= probe.max(1) as f64 * MAX_RATIO / 4.0).then(|| cost(detector, unit, LARGE));
            (unit.clone(), probe, small, large)
        })
        .collect()
}

#[test]
fn every_trigger_costs_linear_work() {
    let detector = Detector::new();
    let mut worst = (0.0, String::new());
    let mut densest = (0.0, String::new());
    let mut failures = vec![];
    let units = units();
    // Two threads (the counter is per thread): the sweep detects on about 1.3 GB of text.
    let (first, second) = units.split_at(units.len() / 2);
    let results: Vec<Vec<Measured>> = std::thread::scope(|s| {
        let handles = [first, second].map(|part| s.spawn(|| measure(&detector, part)));
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    for (unit, probe, small, large) in results.into_iter().flatten() {
        let Some(large) = large else {
            failures.push(format!("{unit:?}: {probe} units at 16 KiB, {small} at 64 KiB"));
            continue;
        };
        let ratio = large as f64 / small.max(1) as f64;
        let per_byte = large as f64 / LARGE as f64;
        if per_byte > densest.0 {
            densest = (per_byte, unit.clone());
        }
        if ratio > worst.0 {
            worst = (ratio, unit.clone());
        }
        if ratio > MAX_RATIO || per_byte > MAX_UNITS_PER_BYTE {
            failures
                .push(format!("{unit:?}: {small} units at 64 KiB, {large} at 1 MiB ({ratio:.1}x, {per_byte:.1}/byte)"));
        }
    }
    std::println!(
        "{} units; worst 1 MiB / 64 KiB work ratio {:.2} for {:?}; most work per byte {:.2} for {:?}",
        units.len(),
        worst.0,
        worst.1,
        densest.0,
        densest.1
    );
    assert!(units.len() > 500, "the trigger tables came back nearly empty: {} units", units.len());
    assert!(failures.is_empty(), "superlinear detection:\n{}", failures.join("\n"));
}

/// The opt-in detectors' triggers (issue 14): each cue, title, closing, street type, unit and
/// particle word, lower case and capitalized, alone and before a capitalized word and a number;
/// the shapes their grammars read (house number + words, name runs, postcodes, `S/N`); and every
/// trigger byte and separator of the sweep above, with the opt-in detectors on.
/// Smaller sizes than above (8 → 128 KiB, still ×16) keep the sweep of ~2,000 units in seconds.
#[test]
fn every_opt_in_trigger_costs_linear_work() {
    let detector = Detector::new();
    let mut units: Vec<String> = Vec::new();
    for w in extra::patterns() {
        let mut cap = String::new();
        let mut chars = w.chars();
        if let Some(c) = chars.next() {
            cap.extend(c.to_uppercase());
            cap.push_str(chars.as_str());
        }
        units.push(format!("{w} "));
        units.push(format!("{cap} Ab 1 "));
    }
    units.extend(triggers().into_iter().flat_map(|t| [t.clone(), format!("{t}1 Ab "), format!("{t}Ab ")]));
    for u in [
        "Ab ",
        "Ab Cd ",
        "Ab-Cd ",
        "A. ",
        "1 Ab ",
        "12 Ab Cd ",
        "1 Ab Street ",
        "1, rue Ab ",
        "Abstraße 1 ",
        "Ab 1, ",
        "S/N ",
        "1234 AB ",
        "12345 Ab ",
        "Ab, AB 12345 ",
        "Ab
",
        "Ab,
",
        "\nAb ",
        "Ab O'Cd ",
        "Éa ",
        "1/2 ",
        "1-2 ",
        "Ab, 1 ",
        "Ab St. ",
        "Dear Ab ",
        "name: Ab ",
        "Mr. Ab Cd ",
    ] {
        units.push(u.into());
    }
    let (small, large) = (8 << 10, 128 << 10);
    let mut failures = Vec::new();
    let mut worst = (0.0, String::new());
    for unit in &units {
        let (a, b) = (cost_with(&detector, unit, small, Extra::ALL), cost_with(&detector, unit, large, Extra::ALL));
        let ratio = b as f64 / a.max(1) as f64;
        let per_byte = b as f64 / large as f64;
        if ratio > worst.0 {
            worst = (ratio, unit.clone());
        }
        if ratio > MAX_RATIO || per_byte > MAX_UNITS_PER_BYTE {
            failures.push(format!("{unit:?}: {a} units at 8 KiB, {b} at 128 KiB ({ratio:.1}x, {per_byte:.1}/byte)"));
        }
    }
    std::println!("{} opt-in units; worst 128 / 8 KiB work ratio {:.2} for {:?}", units.len(), worst.0, worst.1);
    assert!(units.len() > 1000, "the opt-in trigger tables came back nearly empty: {} units", units.len());
    assert!(failures.is_empty(), "superlinear detection:\n{}", failures.join("\n"));
}

#[test]
fn the_reported_quadratic_input_is_linear() {
    // Issue 10: `pwd=${` repeated took 0.35 / 1.6 / 5.8 / 23 s at 8 / 16 / 32 / 64 KiB.
    let detector = Detector::new();
    let (probe, small) = (cost(&detector, "pwd=${", SMALL / 4), cost(&detector, "pwd=${", SMALL));
    assert!(small <= probe * 5, "{probe} units at 16 KiB, {small} at 64 KiB");
    let large = cost(&detector, "pwd=${", LARGE);
    assert!(large <= small * 17, "{small} units at 64 KiB, {large} at 1 MiB");
}

/// Work to stream `len` bytes of `unit` repeated in 7-byte chunks (split inside characters and
/// triggers), under a policy that redacts every value.
fn stream_cost(detector: &Detector, unit: &str, len: usize) -> u64 {
    let (policy, key) = (crate::Policy::default(), crate::TokenKey::new("salt"));
    let gate = crate::Gate::new(&policy, &key, detector);
    let text = unit.repeat(len / unit.len());
    work::take();
    // A small cap, so that whitespace-free texts are cut at both sizes measured.
    let mut s = gate.postcheck_stream("web.search", "").with_max_hold(4096);
    let mut out = 0usize;
    for chunk in text.as_bytes().chunks(7) {
        out += s.push(&gate, chunk).map_or(0, |o| o.len());
    }
    out += s.finish(&gate).map_or(0, |end| end.rest.len());
    core::hint::black_box(out);
    work::take()
}

#[test]
fn streaming_in_tiny_chunks_costs_linear_work() {
    // A sample of the units (every 16th: the full sweep above covers detection itself), plus
    // prose with values and whitespace-free runs that only the cap cuts.
    let detector = Detector::new();
    let mut sample: Vec<String> = units().into_iter().step_by(16).collect();
    sample.extend(["mail bob@example.com now. ", "a", "\u{200B}", "SSN 123-45-6789\n", "x1 "].map(String::from));
    let mut failures = vec![];
    let mut worst = (0.0, String::new());
    for unit in &sample {
        let (small, large) = (stream_cost(&detector, unit, SMALL), stream_cost(&detector, unit, LARGE));
        let one_shot = cost(&detector, unit, LARGE);
        let ratio = large as f64 / small.max(1) as f64;
        // Streaming evaluates each byte about three times, plus the cut and context searches.
        let overhead = large as f64 / one_shot.max(LARGE as u64) as f64;
        if ratio > worst.0 {
            worst = (ratio, unit.clone());
        }
        if ratio > MAX_RATIO || overhead > 8.0 {
            failures.push(format!(
                "{unit:?}: {small} units at 64 KiB, {large} at 1 MiB ({ratio:.1}x), one-shot {one_shot}"
            ));
        }
    }
    std::println!("{} streamed units; worst 1 MiB / 64 KiB work ratio {:.2} for {:?}", sample.len(), worst.0, worst.1);
    assert!(failures.is_empty(), "superlinear streaming:\n{}", failures.join("\n"));
}
