//! Metrics (SPEC §7): Prometheus metrics with the GovernsAI names for long-running servers
//! (`native`), and CloudWatch Embedded Metric Format lines for Lambda (always available).
//!
//! Labels hold only bounded values (operation, decision, policy id, built-in PII type,
//! outcome); user ids, tools and correlation ids never become labels.

use crate::record::DecisionRecord;
use serde_json::json;

/// Metric names used in EMF lines.
const EMF_REQUESTS: &str = "precheck_requests";
const EMF_DURATION: &str = "precheck_duration";
const EMF_PII: &str = "pii_detections";

/// One CloudWatch Embedded Metric Format log line (JSON, no trailing newline) for
/// `record`: `precheck_requests` (Count, 1), `precheck_duration` (Milliseconds) and
/// `pii_detections` (Count) in `namespace`, dimensioned by operation and decision. Print it
/// to stdout on Lambda and CloudWatch extracts the metrics.
pub fn emf_line(record: &DecisionRecord, namespace: &str) -> String {
    let duration = if record.latency_ms.is_finite() { record.latency_ms.max(0.0) } else { 0.0 };
    let pii: usize = record.pii_counts.iter().map(|(_, count)| count).sum();
    json!({
        "_aws": {
            "Timestamp": record.ts_unix_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["operation", "decision"]],
                "Metrics": [
                    {"Name": EMF_REQUESTS, "Unit": "Count"},
                    {"Name": EMF_DURATION, "Unit": "Milliseconds"},
                    {"Name": EMF_PII, "Unit": "Count"},
                ],
            }],
        },
        "operation": record.operation,
        "decision": record.decision.name(),
        "policy_id": record.policy_id.name(),
        "direction": record.direction.name(),
        EMF_REQUESTS: 1,
        EMF_DURATION: duration,
        EMF_PII: pii,
    })
    .to_string()
}

#[cfg(feature = "native")]
pub use prometheus::{ActiveRequest, Metrics, CONTENT_TYPE, DURATION_BUCKETS};

#[cfg(feature = "native")]
mod prometheus {
    use crate::events::DeliveryStats;
    use crate::record::DecisionRecord;
    use crate::service::Observer;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::{MetricType, TypedMetric};
    use prometheus_client::registry::Registry;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};
    use warden_engine::PiiKind;
    use warden_engine::{Decision, PiiOutcome, PolicyId, Reason};

    /// `Content-Type` of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus
    /// scrapes natively).
    pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// `precheck_duration_seconds` buckets: 50 µs to 10 s. Decisions usually take
    /// microseconds; the top buckets catch stalls (budget stores, huge payloads).
    pub const DURATION_BUCKETS: [f64; 17] = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0,
    ];

    /// Error codes are labels; anything that does not look like a code is folded into this.
    const OTHER: &str = "other";

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct RequestLabels {
        operation: &'static str,
        decision: &'static str,
        policy_id: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct PiiLabels {
        r#type: &'static str,
        action: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct OperationLabels {
        operation: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct CodeLabels {
        code: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct OutcomeLabels {
        outcome: &'static str,
    }

    type HistogramFamily = Family<OperationLabels, Histogram, fn() -> Histogram>;

    fn duration_histogram() -> Histogram {
        Histogram::default()
    }

    /// The operations counted under their own label (anything else is `other`).
    const OPERATIONS: [&str; 8] =
        ["precheck", "postcheck", "postcheck_stream", "evaluate", "redact", "batch", "detokenize", OTHER];
    const DECISIONS: usize = 4;
    const POLICIES: usize = 7;

    /// A `precheck_duration_seconds` histogram with [`DURATION_BUCKETS`], updated with atomics
    /// only (prometheus-client's own takes a lock per observation). A scrape reads each
    /// field separately, so it may see an observation in the count and not yet in the sum.
    #[derive(Clone, Debug, Default)]
    pub(super) struct Histogram {
        inner: Arc<HistogramInner>,
    }

    #[derive(Debug, Default)]
    struct HistogramInner {
        /// The sum's `f64` bits.
        sum: AtomicU64,
        count: AtomicU64,
        /// Observations per bucket (not cumulative), the last one above every bound.
        buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    }

    impl Histogram {
        pub(super) fn observe(&self, seconds: f64) {
            let i = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(DURATION_BUCKETS.len());
            if let Some(bucket) = self.inner.buckets.get(i) {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
            self.inner.count.fetch_add(1, Ordering::Relaxed);
            // An f64 add as a compare-and-swap loop: lock-free, retried only on a race.
            let _ = self.inner.sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
        }
    }

    impl TypedMetric for Histogram {
        const TYPE: MetricType = MetricType::Histogram;
    }

    impl EncodeMetric for Histogram {
        fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
            let bounds = DURATION_BUCKETS.iter().copied().chain(std::iter::once(f64::MAX));
            let buckets: Vec<(f64, u64)> =
                bounds.zip(self.inner.buckets.iter().map(|b| b.load(Ordering::Relaxed))).collect();
            let sum = f64::from_bits(self.inner.sum.load(Ordering::Relaxed));
            let count = self.inner.count.load(Ordering::Relaxed);
            encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
        }

        fn metric_type(&self) -> MetricType {
            Self::TYPE
        }
    }

    /// The children of the request counter and duration histogram, looked up once per label
    /// set: counting is then atomics only, without the family's lock.
    #[derive(Debug)]
    struct Cached {
        requests: [[[OnceLock<Counter>; POLICIES]; DECISIONS]; OPERATIONS.len()],
        duration: [OnceLock<Histogram>; OPERATIONS.len()],
    }

    fn decision_index(decision: Decision) -> usize {
        match decision {
            Decision::Allow => 0,
            Decision::Transform => 1,
            Decision::Confirm => 2,
            Decision::Deny => 3,
        }
    }

    fn policy_index(policy: PolicyId) -> usize {
        match policy {
            PolicyId::DenyExec => 0,
            PolicyId::ToolAccess => 1,
            PolicyId::Defaults => 2,
            PolicyId::NetRedactRegex => 3,
            PolicyId::StrictFallback => 4,
            PolicyId::OnError => 5,
            PolicyId::Detokenize => 6,
        }
    }

    /// All of Warden's Prometheus metrics, in a registry of their own (no global state).
    /// Share it behind an `Arc`; every method takes `&self`.
    #[derive(Debug)]
    pub struct Metrics {
        registry: Registry,
        requests: Family<RequestLabels, Counter>,
        pii: Family<PiiLabels, Counter>,
        duration: HistogramFamily,
        errors: Family<CodeLabels, Counter>,
        budget_checks: Family<OutcomeLabels, Counter>,
        rate_limited: Counter,
        active_requests: Gauge,
        policy_reloads: Family<OutcomeLabels, Counter>,
        delivery: DeliveryStats,
        cached: Cached,
    }

    impl Default for Metrics {
        fn default() -> Self {
            Metrics::new()
        }
    }

    impl Metrics {
        /// A registry with every metric registered.
        pub fn new() -> Metrics {
            let mut registry = Registry::default();
            let requests = Family::<RequestLabels, Counter>::default();
            registry.register(
                "precheck_requests",
                "Governed requests by operation, decision and deciding policy level",
                requests.clone(),
            );
            let pii = Family::<PiiLabels, Counter>::default();
            registry.register(
                "pii_detections",
                "PII values detected, by type and what was done with them",
                pii.clone(),
            );
            let duration = HistogramFamily::new_with_constructor(duration_histogram);
            registry.register("precheck_duration_seconds", "Time spent deciding, by operation", duration.clone());
            let errors = Family::<CodeLabels, Counter>::default();
            registry.register(
                "precheck_errors",
                "Errors by code (invalid policies, bad requests, internal failures)",
                errors.clone(),
            );
            let webhook_events = Family::<OutcomeLabels, Counter>::default();
            registry.register(
                "webhook_events",
                "Decision events: delivered, failed after all retries, written to the DLQ",
                webhook_events.clone(),
            );
            let dlq_size = Gauge::default();
            registry.register("dlq_size", "Lines in the dead-letter queue file", dlq_size.clone());
            let budget_checks = Family::<OutcomeLabels, Counter>::default();
            registry.register(
                "budget_checks",
                "Budget checks by outcome (passed, warning, exceeded)",
                budget_checks.clone(),
            );
            let rate_limited = Counter::default();
            registry.register("rate_limited", "Requests rejected with 429", rate_limited.clone());
            let active_requests = Gauge::default();
            registry.register("active_requests", "Requests being processed", active_requests.clone());
            let policy_reloads = Family::<OutcomeLabels, Counter>::default();
            registry.register(
                "policy_reloads",
                "Policy file reloads (error: the last good policy stays)",
                policy_reloads.clone(),
            );
            // Creating the children up front makes them appear as 0 before the first event,
            // so rate() and absent() alerts work from the start.
            let delivery = DeliveryStats {
                delivered: webhook_events.get_or_create_owned(&OutcomeLabels { outcome: "delivered" }),
                failed: webhook_events.get_or_create_owned(&OutcomeLabels { outcome: "failed" }),
                dead_lettered: webhook_events.get_or_create_owned(&OutcomeLabels { outcome: "dlq" }),
                dlq_size,
            };
            for outcome in ["ok", "error"] {
                policy_reloads.get_or_create_owned(&OutcomeLabels { outcome });
            }
            Metrics {
                registry,
                requests,
                pii,
                duration,
                errors,
                budget_checks,
                rate_limited,
                active_requests,
                policy_reloads,
                delivery,
                cached: Cached {
                    requests: std::array::from_fn(|_| {
                        std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new()))
                    }),
                    duration: std::array::from_fn(|_| OnceLock::new()),
                },
            }
        }

        /// Counts one decision: `precheck_requests_total`, `precheck_duration_seconds`,
        /// `pii_detections_total` (action read from the PII reasons) and, when the reasons
        /// carry a budget outcome, `budget_checks_total`.
        pub fn observe(&self, record: &DecisionRecord) {
            let operation = operation_label(record.operation);
            let op = OPERATIONS.iter().position(|o| *o == operation).unwrap_or(OPERATIONS.len() - 1);
            let requests = self
                .cached
                .requests
                .get(op)
                .and_then(|d| d.get(decision_index(record.decision)))
                .and_then(|p| p.get(policy_index(record.policy_id)));
            let labels =
                || RequestLabels { operation, decision: record.decision.name(), policy_id: record.policy_id.name() };
            match requests {
                Some(slot) => slot.get_or_init(|| self.requests.get_or_create_owned(&labels())).inc(),
                None => self.requests.get_or_create(&labels()).inc(),
            };
            let seconds = record.latency_ms / 1_000.0;
            if seconds.is_finite() && seconds >= 0.0 {
                let labels = OperationLabels { operation };
                match self.cached.duration.get(op) {
                    Some(slot) => slot.get_or_init(|| self.duration.get_or_create_owned(&labels)).observe(seconds),
                    None => self.duration.get_or_create(&labels).observe(seconds),
                }
            }
            for (kind, count) in &record.pii_counts {
                let labels = PiiLabels { r#type: type_label(kind), action: pii_action(&record.reasons, kind) };
                self.pii.get_or_create(&labels).inc_by(u64::try_from(*count).unwrap_or(u64::MAX));
            }
            if let Some(outcome) = record.reasons.iter().find_map(budget_outcome) {
                self.budget_checks.get_or_create(&OutcomeLabels { outcome }).inc();
            }
        }

        /// Counts an error by code (`precheck_errors_total{code}`). Codes must come from a
        /// fixed set (`policy_invalid`, `bad_request`, ...); anything that does not look
        /// like a code is counted as `other`.
        pub fn error(&self, code: &str) {
            let looks_like_code = !code.is_empty()
                && code.len() <= 48
                && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            let code = if looks_like_code { code } else { OTHER };
            self.errors.get_or_create(&CodeLabels { code: code.to_owned() }).inc();
        }

        /// Counts a request rejected by the rate limiter.
        pub fn rate_limited(&self) {
            self.rate_limited.inc();
        }

        /// Counts a policy reload.
        pub fn policy_reload(&self, ok: bool) {
            let outcome = if ok { "ok" } else { "error" };
            self.policy_reloads.get_or_create(&OutcomeLabels { outcome }).inc();
        }

        /// Marks a request as active until the returned guard is dropped.
        pub fn active_request(&self) -> ActiveRequest {
            self.active_requests.inc();
            ActiveRequest { gauge: self.active_requests.clone() }
        }

        /// Sets `dlq_size`, e.g. from a readiness check's line count after an offline replay.
        pub fn set_dlq_size(&self, lines: u64) {
            self.delivery.dlq_size.set(i64::try_from(lines).unwrap_or(i64::MAX));
        }

        /// Counters for the event dispatcher and DLQ, exported as
        /// `webhook_events_total{outcome}` and `dlq_size`.
        pub fn delivery_stats(&self) -> DeliveryStats {
            self.delivery.clone()
        }

        /// Everything, in the OpenMetrics text format (see [`CONTENT_TYPE`]).
        pub fn encode(&self) -> String {
            let mut out = String::new();
            if let Err(error) = encode(&mut out, &self.registry) {
                // Writing into a String cannot fail and every metric here is a built-in
                // type, so this is unreachable in practice; say so rather than hide it.
                out.push_str(&format!("# encoding error: {error}\n"));
            }
            out
        }
    }

    impl Observer for Metrics {
        fn observe(&self, record: &DecisionRecord) {
            Metrics::observe(self, record);
        }

        fn error(&self, code: &str, _message: &str) {
            Metrics::error(self, code);
        }

        fn rate_limited(&self) {
            Metrics::rate_limited(self);
        }
    }

    /// Decrements `active_requests` when dropped.
    #[derive(Debug)]
    pub struct ActiveRequest {
        gauge: Gauge,
    }

    impl Drop for ActiveRequest {
        fn drop(&mut self) {
            self.gauge.dec();
        }
    }

    /// Operations are a closed set; the record's field is `&'static str` from the router.
    fn operation_label(operation: &'static str) -> &'static str {
        match operation {
            "precheck" | "postcheck" | "postcheck_stream" | "evaluate" | "redact" | "batch" | "detokenize" => operation,
            _ => OTHER,
        }
    }

    /// Built-in PII types by name; policy-defined custom types are folded into `custom`
    /// so a policy cannot grow the label set without bound.
    fn type_label(kind: &str) -> &'static str {
        PiiKind::from_name(kind).map_or("custom", PiiKind::name)
    }

    /// What happened to values of `kind`, from the first PII reason naming it
    /// (`pii.<outcome>:PII:<type>` or `strict_pii_blocked:PII:<type>`); `detected` when no
    /// reason names it.
    fn pii_action(reasons: &[Reason], kind: &str) -> &'static str {
        reasons
            .iter()
            .find_map(|reason| match reason {
                Reason::StrictPiiBlocked(ty) if ty.name() == kind => Some("blocked"),
                Reason::Pii { outcome, ty } if ty.name() == kind => Some(match outcome {
                    PiiOutcome::Allowed => "allowed",
                    PiiOutcome::Tokenized => "tokenized",
                    PiiOutcome::Redacted => "redacted",
                    PiiOutcome::Denied => "denied",
                    PiiOutcome::Encrypted => "encrypted",
                }),
                _ => None,
            })
            .unwrap_or("detected")
    }

    fn budget_outcome(reason: &Reason) -> Option<&'static str> {
        match reason {
            Reason::BudgetCheckPassed => Some("passed"),
            Reason::BudgetWarning => Some("warning"),
            Reason::BudgetExceeded => Some("exceeded"),
            _ => None,
        }
    }
}
