//! What plugs into the service besides stores: observers of every decision (audit, metrics,
//! events) and readiness probes.

use crate::record::DecisionRecord;
use serde::Serialize;

/// Sees every decision: audit writers, metrics, event dispatchers.
pub trait Observer: Send + Sync {
    /// Called once per governed request, after the decision, off the decision's critical path
    /// as far as the implementation can make it (e.g. enqueue, don't send).
    fn observe(&self, record: &DecisionRecord);

    /// Called when a component failed but the request was still answered (a store is down).
    fn error(&self, code: &str, message: &str) {
        let _ = (code, message);
    }

    /// Called when a request was refused by the rate limiter.
    fn rate_limited(&self) {}
}

/// The state of one readiness component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Working.
    Ok,
    /// Working, but an operator should look (default secrets, undelivered events...).
    Warning,
    /// Not working: the instance is not ready (503).
    Error,
    /// Not configured.
    Disabled,
}

impl CheckStatus {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warning => "warning",
            CheckStatus::Error => "error",
            CheckStatus::Disabled => "disabled",
        }
    }
}

impl PartialEq<&str> for CheckStatus {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// One readiness component (SPEC §2 `/api/v1/ready`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Its state.
    pub status: CheckStatus,
    /// Details for operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    /// A check with a status and optional detail.
    pub fn new(status: CheckStatus, detail: Option<String>) -> Check {
        Check { status, detail }
    }
}

/// A readiness probe contributed by a platform component (DLQ, stores, ...).
#[async_trait::async_trait]
pub trait Probe: Send + Sync {
    /// The component name in `checks`.
    fn name(&self) -> &'static str;
    /// Its current state.
    async fn check(&self) -> Check;
}

/// A probe with a fixed answer: what a platform knows at start-up (bindings present or not).
#[derive(Clone, Debug)]
pub struct StaticProbe {
    name: &'static str,
    check: Check,
}

impl StaticProbe {
    /// A probe named `name` that always answers `check`.
    pub fn new(name: &'static str, check: Check) -> StaticProbe {
        StaticProbe { name, check }
    }
}

#[async_trait::async_trait]
impl Probe for StaticProbe {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self) -> Check {
        self.check.clone()
    }
}
