//! The server's current policy, swappable at run time (hot reload keeps the last good one).

use std::sync::{Arc, RwLock};
use warden_engine::Policy;

/// Holds the active policy and where it came from.
#[derive(Debug)]
pub struct PolicySource {
    current: RwLock<Arc<Policy>>,
    origin: String,
    last_error: RwLock<Option<String>>,
}

impl PolicySource {
    /// A source serving `policy`, loaded from `origin` (a file path, `embedded`, a KV key...).
    pub fn new(policy: Policy, origin: impl Into<String>) -> PolicySource {
        PolicySource { current: RwLock::new(Arc::new(policy)), origin: origin.into(), last_error: RwLock::new(None) }
    }

    /// The active policy.
    pub fn get(&self) -> Arc<Policy> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the active policy and clears the last error.
    pub fn replace(&self, policy: Policy) {
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(policy),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(policy),
        }
        self.set_error(None);
    }

    /// Records why the latest reload failed (the previous policy stays active).
    pub fn set_error(&self, error: Option<String>) {
        match self.last_error.write() {
            Ok(mut g) => *g = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }

    /// Why the latest reload failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        match self.last_error.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Where the policy came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}
