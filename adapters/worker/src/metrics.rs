//! `GET /api/metrics` on Workers: the server's Prometheus metric names and labels, counted by
//! this isolate since it started. Workers run many isolates (per location, recycled at will),
//! each with its own counters, and a scrape reaches whichever isolate serves it: the numbers
//! are per isolate, never a global total (`warden_isolate_start_seconds` tells isolates apart
//! and shows resets). For fleet-wide numbers use the audit lines in Workers Logs (docs/edge.md).
//!
//! The server's registry (`warden_service::metrics::Metrics`) lives behind the core's native
//! feature (it shares counters with the tokio dispatcher), so the Worker keeps these few
//! families itself. Labels hold only bounded values, as on the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use warden_engine::{PiiKind, Reason};
use warden_service::record::DecisionRecord;
use warden_service::service::Observer;

/// `precheck_duration_seconds` buckets: the server's.
const DURATION_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Error codes are labels; anything that does not look like a code is counted as this.
const OTHER: &str = "other";

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Counts {
    /// `operation="…",decision="…",policy_id="…"` → count.
    requests: BTreeMap<String, u64>,
    /// `type="…"` → count.
    pii: BTreeMap<&'static str, u64>,
    duration: BTreeMap<&'static str, Histogram>,
    errors: BTreeMap<String, u64>,
    budget_checks: BTreeMap<&'static str, u64>,
    rate_limited: u64,
}

/// This isolate's counters.
#[derive(Debug)]
pub struct IsolateMetrics {
    started_ms: i64,
    counts: Mutex<Counts>,
}

impl IsolateMetrics {
    /// Counters of an isolate that started at `started_ms` (Unix milliseconds).
    pub fn new(started_ms: i64) -> IsolateMetrics {
        IsolateMetrics { started_ms, counts: Mutex::new(Counts::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Counters are plain numbers: whatever a panic left is still a valid count.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> String {
        let c = self.lock();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write(&c, &mut out);
        out
    }

    fn write(&self, c: &Counts, out: &mut String) -> std::fmt::Result {
        #[allow(clippy::cast_precision_loss)]
        let started = self.started_ms as f64 / 1000.0;
        writeln!(out, "# HELP warden_isolate_start_seconds When this isolate started (every number below is this isolate's since then)")?;
        writeln!(out, "# TYPE warden_isolate_start_seconds gauge")?;
        writeln!(out, "warden_isolate_start_seconds {started}")?;
        counter(out, "precheck_requests", "Governed requests by operation, decision and deciding policy level")?;
        for (labels, n) in &c.requests {
            writeln!(out, "precheck_requests_total{{{labels}}} {n}")?;
        }
        counter(out, "pii_detections", "PII values detected, by type")?;
        for (ty, n) in &c.pii {
            writeln!(out, "pii_detections_total{{type=\"{ty}\"}} {n}")?;
        }
        writeln!(out, "# HELP precheck_duration_seconds Time spent deciding, by operation")?;
        writeln!(out, "# TYPE precheck_duration_seconds histogram")?;
        for (op, h) in &c.duration {
            let mut cumulative = 0;
            for (bound, n) in DURATION_BUCKETS.iter().zip(h.buckets.iter()) {
                cumulative += n;
                writeln!(out, "precheck_duration_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {cumulative}")?;
            }
            writeln!(out, "precheck_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}", h.count)?;
            writeln!(out, "precheck_duration_seconds_sum{{operation=\"{op}\"}} {}", h.sum)?;
            writeln!(out, "precheck_duration_seconds_count{{operation=\"{op}\"}} {}", h.count)?;
        }
        counter(out, "precheck_errors", "Errors by code")?;
        for (code, n) in &c.errors {
            writeln!(out, "precheck_errors_total{{code=\"{code}\"}} {n}")?;
        }
        counter(out, "budget_checks", "Budget checks by outcome (passed, warning, exceeded)")?;
        for (outcome, n) in &c.budget_checks {
            writeln!(out, "budget_checks_total{{outcome=\"{outcome}\"}} {n}")?;
        }
        counter(out, "rate_limited", "Requests rejected with 429")?;
        writeln!(out, "rate_limited_total {}", c.rate_limited)
    }
}

fn counter(out: &mut String, name: &str, help: &str) -> std::fmt::Result {
    writeln!(out, "# HELP {name}_total {help}")?;
    writeln!(out, "# TYPE {name}_total counter")
}

/// Operations are a closed set.
fn operation_label(operation: &'static str) -> &'static str {
    match operation {
        "precheck" | "postcheck" | "evaluate" | "redact" | "batch" => operation,
        _ => OTHER,
    }
}

impl Observer for IsolateMetrics {
    fn observe(&self, record: &DecisionRecord) {
        let operation = operation_label(record.operation);
        let labels = format!(
            "operation=\"{operation}\",decision=\"{}\",policy_id=\"{}\"",
            record.decision.name(),
            record.policy_id.name()
        );
        let mut c = self.lock();
        *c.requests.entry(labels).or_default() += 1;
        for (kind, count) in &record.pii_counts {
            // Custom (policy-defined) types fold into one label, so a policy cannot grow the set.
            let ty = PiiKind::from_name(kind).map_or("custom", PiiKind::name);
            let n = c.pii.entry(ty).or_default();
            *n = n.saturating_add(u64::try_from(*count).unwrap_or(u64::MAX));
        }
        let seconds = record.latency_ms / 1_000.0;
        if seconds.is_finite() && seconds >= 0.0 {
            let h = c.duration.entry(operation).or_default();
            if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
                if let Some(slot) = h.buckets.get_mut(i) {
                    *slot += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
        let budget = record.reasons.iter().find_map(|r| match r {
            Reason::BudgetCheckPassed => Some("passed"),
            Reason::BudgetWarning => Some("warning"),
            Reason::BudgetExceeded => Some("exceeded"),
            _ => None,
        });
        if let Some(outcome) = budget {
            *c.budget_checks.entry(outcome).or_default() += 1;
        }
    }

    fn error(&self, code: &str, _message: &str) {
        let looks_like_code = !code.is_empty()
            && code.len() <= 48
            && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let code = if looks_like_code { code } else { OTHER };
        *self.lock().errors.entry(code.to_owned()).or_default() += 1;
    }

    fn rate_limited(&self) {
        self.lock().rate_limited += 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn errors_fold_unknown_codes_and_text_has_every_family() {
        let m = IsolateMetrics::new(1_700_000_000_000);
        m.error("bad_request", "x");
        m.error("Not A Code", "x");
        m.rate_limited();
        let text = m.encode();
        assert!(text.contains("warden_isolate_start_seconds 1700000000\n"), "{text}");
        assert!(text.contains("precheck_errors_total{code=\"bad_request\"} 1"), "{text}");
        assert!(text.contains("precheck_errors_total{code=\"other\"} 1"), "{text}");
        assert!(text.contains("rate_limited_total 1"), "{text}");
        for family in
            ["precheck_requests_total", "pii_detections_total", "precheck_duration_seconds", "budget_checks_total"]
        {
            assert!(text.contains(&format!("# TYPE {family}")), "{family}: {text}");
        }
    }
}
