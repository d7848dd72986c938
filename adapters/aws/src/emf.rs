//! CloudWatch metrics as Embedded Metric Format lines: one JSON line per invocation on stdout,
//! which CloudWatch Logs turns into metrics in namespace `Warden/Governance` without any API
//! call. Dimensions are bounded: the function name and the event source (a fixed set).

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use warden_engine::Decision;
use warden_service::record::DecisionRecord;
use warden_service::service::Observer;

/// The CloudWatch namespace.
pub const NAMESPACE: &str = "Warden/Governance";

/// Counters of one invocation, drained by [`Emf::line`].
#[derive(Debug, Default)]
pub struct Emf {
    allow: AtomicU64,
    deny: AtomicU64,
    transform: AtomicU64,
    confirm: AtomicU64,
    pii: AtomicU64,
    violations: AtomicU64,
    errors: AtomicU64,
}

impl Observer for Emf {
    fn observe(&self, record: &DecisionRecord) {
        let counter = match record.decision {
            Decision::Allow => &self.allow,
            Decision::Deny => &self.deny,
            Decision::Transform => &self.transform,
            Decision::Confirm => &self.confirm,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let pii: usize = record.pii_counts.iter().map(|(_, n)| *n).sum();
        self.pii.fetch_add(u64::try_from(pii).unwrap_or(u64::MAX), Ordering::Relaxed);
        if matches!(record.decision, Decision::Deny | Decision::Confirm) {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn error(&self, _code: &str, _message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl Emf {
    /// Counts an invocation-level error (a failed AWS call, a malformed event).
    pub fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The EMF line of one invocation, draining the counters. Concurrent invocations of one
    /// instance would share them, but Lambda runs one invocation per instance at a time.
    pub fn line(&self, function: &str, source: &str, duration_ms: f64, cold_start: bool, now_ms: i64) -> Value {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let mut names = vec!["Invocations", "Duration"];
        let mut fields = Map::new();
        fields.insert("Invocations".into(), json!(1));
        fields.insert("Duration".into(), json!(duration_ms));
        for (name, counter) in [
            ("Decision_Allow", &self.allow),
            ("Decision_Deny", &self.deny),
            ("Decision_Transform", &self.transform),
            ("Decision_Confirm", &self.confirm),
            ("PIIDetected", &self.pii),
            ("ViolationCount", &self.violations),
            ("Errors", &self.errors),
        ] {
            names.push(name);
            fields.insert(name.into(), json!(take(counter)));
        }
        names.push("ColdStart");
        fields.insert("ColdStart".into(), json!(u8::from(cold_start)));
        let metrics: Vec<Value> = names
            .iter()
            .map(|n| json!({"Name": n, "Unit": if *n == "Duration" { "Milliseconds" } else { "Count" }}))
            .collect();
        fields.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["FunctionName", "EventSource"], ["FunctionName"]],
                    "Metrics": metrics,
                }]
            }),
        );
        fields.insert("FunctionName".into(), json!(function));
        fields.insert("EventSource".into(), json!(source));
        Value::Object(fields)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn line_is_emf_and_drains() {
        let emf = Emf::default();
        emf.count_error();
        let line = emf.line("fn", "sqs", 12.5, true, 1000);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(line["Errors"], 1);
        assert_eq!(line["Invocations"], 1);
        assert_eq!(line["ColdStart"], 1);
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for n in names {
            assert!(line.get(n).is_some(), "{n} has a value");
        }
        assert_eq!(emf.line("fn", "sqs", 1.0, false, 1000)["Errors"], 0);
    }
}
