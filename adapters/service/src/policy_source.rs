//! The server's current policy, swappable at run time. One reloader for every runtime: the
//! file watcher of `warden serve` and the Worker's KV refresh both [`offer`](PolicySource::offer)
//! the text they read; a valid change applies, an invalid one is kept as readiness' warning
//! and the last good policy stays.

use std::sync::{Arc, RwLock};
use warden_engine::policy_file::parse_policy;
use warden_engine::Policy;

/// The policy shipped with Warden (`policies/policy.tool_access.yaml`), served when no other
/// policy is configured.
pub const BUNDLED_POLICY: &str = include_str!("../../../policies/policy.tool_access.yaml");

/// Where the bundled policy comes from, as readiness and error messages name it.
pub const BUNDLED_ORIGIN: &str = "embedded:policy.tool_access.yaml";

/// What [`PolicySource::offer`] did with a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Same text as the active policy: nothing to do.
    Unchanged,
    /// Parsed, validated and now active.
    Applied,
    /// Invalid: the previous policy stays; the error (with line and field) is kept for
    /// readiness.
    Rejected(String),
}

#[derive(Debug)]
struct State {
    policy: Arc<Policy>,
    text: Option<String>,
    last_error: Option<String>,
}

/// Holds the active policy and where it came from.
#[derive(Debug)]
pub struct PolicySource {
    state: RwLock<State>,
    origin: String,
    /// Whether the service has token keys: without them a reloaded policy that encrypts is
    /// rejected like an invalid one.
    can_encrypt: std::sync::atomic::AtomicBool,
}

impl PolicySource {
    /// A source serving `policy`, loaded from `origin` (a file path, `embedded`, a KV key...).
    pub fn new(policy: Policy, origin: impl Into<String>) -> PolicySource {
        PolicySource {
            state: RwLock::new(State { policy: Arc::new(policy), text: None, last_error: None }),
            origin: origin.into(),
            can_encrypt: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// A source serving `text` (YAML or JSON) read from `origin`; errors read
    /// `origin:line:col: field `x`: problem`.
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<PolicySource, String> {
        let origin = origin.into();
        let policy = parse_policy(&origin, text).map_err(|e| e.to_string())?;
        let source = PolicySource::new(policy, origin);
        source.write(|s| s.text = Some(text.to_owned()));
        Ok(source)
    }

    /// The bundled policy.
    pub fn bundled() -> Result<PolicySource, String> {
        PolicySource::parse(BUNDLED_POLICY, BUNDLED_ORIGIN)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        // Every write replaces whole values, so a poisoned lock still holds a valid state.
        match self.state.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write(&self, f: impl FnOnce(&mut State)) {
        match self.state.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The active policy.
    pub fn get(&self) -> Arc<Policy> {
        self.read(|s| Arc::clone(&s.policy))
    }

    /// Offers a new text of the policy: applied when it differs from the active one and is
    /// valid; rejected (previous policy kept, error recorded) when invalid.
    pub fn offer(&self, text: &str) -> Offered {
        if self.read(|s| s.text.as_deref() == Some(text)) {
            return Offered::Unchanged;
        }
        let parsed = parse_policy(&self.origin, text).map_err(|e| e.to_string()).and_then(|policy| {
            match policy.encrypt_field().filter(|_| !self.can_encrypt.load(std::sync::atomic::Ordering::Relaxed)) {
                Some(field) => Err(format!(
                    "{}: field `{field}` is `encrypt`, which needs reversible-token keys (WARDEN_ENCRYPT_KEYS)",
                    self.origin
                )),
                None => Ok(policy),
            }
        });
        match parsed {
            Ok(policy) => {
                self.write(|s| {
                    s.policy = Arc::new(policy);
                    s.text = Some(text.to_owned());
                    s.last_error = None;
                });
                Offered::Applied
            }
            Err(message) => {
                self.write(|s| {
                    // Remember the rejected text too, so the same bad text is reported once,
                    // not re-parsed on every poll.
                    s.text = Some(text.to_owned());
                    s.last_error = Some(message.clone());
                });
                Offered::Rejected(message)
            }
        }
    }

    /// Says whether the service has token keys (set by the service builder).
    pub fn set_can_encrypt(&self, can: bool) {
        self.can_encrypt.store(can, std::sync::atomic::Ordering::Relaxed);
    }

    /// Replaces the active policy and clears the last error.
    pub fn replace(&self, policy: Policy) {
        self.write(|s| {
            s.policy = Arc::new(policy);
            s.text = None;
            s.last_error = None;
        });
    }

    /// The text the active policy was parsed from (or the last rejected text), if known.
    pub fn text(&self) -> Option<String> {
        self.read(|s| s.text.clone())
    }

    /// Records why the latest reload failed (the previous policy stays active).
    pub fn set_error(&self, error: Option<String>) {
        self.write(|s| s.last_error = error);
    }

    /// Why the latest reload failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.read(|s| s.last_error.clone())
    }

    /// Where the policy came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Decides when a policy file being watched has settled: a content is offered only once two
/// polls in a row read it, so a file rewritten in place is never loaded half written (a
/// truncated prefix can itself be a valid policy that allows too much).
#[derive(Debug, Default)]
pub struct Settler {
    settled: Option<Vec<u8>>,
    candidate: Option<Vec<u8>>,
}

impl Settler {
    /// A settler for a file whose current (already loaded) content is `initial`.
    pub fn new(initial: Option<Vec<u8>>) -> Settler {
        Settler { settled: initial, candidate: None }
    }

    /// The content read by one poll; returns it when it is a settled change to offer.
    pub fn observe(&mut self, bytes: Vec<u8>) -> Option<Vec<u8>> {
        if self.settled.as_deref() == Some(bytes.as_slice()) {
            self.candidate = None;
            return None;
        }
        if self.candidate.as_deref() != Some(bytes.as_slice()) {
            self.candidate = Some(bytes);
            return None;
        }
        self.candidate = None;
        self.settled = Some(bytes.clone());
        Some(bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn offer_applies_valid_changes_and_keeps_the_last_good_policy() {
        let source = PolicySource::bundled().unwrap();
        assert_eq!(source.offer(BUNDLED_POLICY), Offered::Unchanged);
        assert_eq!(source.offer("version: v1\ndeny_tools: [a.exec]\n"), Offered::Applied);
        assert_eq!(source.get().deny_tools(), ["a.exec"]);
        let Offered::Rejected(e) = source.offer("version: v1\ndeny_tools: 7\n") else { panic!() };
        assert!(e.contains("deny_tools"), "{e}");
        assert_eq!(source.get().deny_tools(), ["a.exec"]);
        assert_eq!(source.last_error(), Some(e));
        // The same bad text again is not re-reported as a change.
        assert_eq!(source.offer("version: v1\ndeny_tools: 7\n"), Offered::Unchanged);
        assert_eq!(source.offer("version: v1\n"), Offered::Applied);
        assert_eq!(source.last_error(), None);
    }

    #[test]
    fn only_settled_content_is_offered() {
        let full = b"version: v1\ndeny_tools: [python.exec, bash.exec]\n".to_vec();
        let half = b"version: v1\n".to_vec();
        let mut s = Settler::new(Some(b"old".to_vec()));
        assert_eq!(s.observe(b"old".to_vec()), None);
        // A write in progress: each poll sees something new, nothing is offered.
        assert_eq!(s.observe(half.clone()), None);
        assert_eq!(s.observe(full.clone()), None);
        // The same content twice: settled.
        assert_eq!(s.observe(full.clone()), Some(full.clone()));
        assert_eq!(s.observe(full.clone()), None);
        // A prefix seen once and then replaced is never offered.
        assert_eq!(s.observe(half), None);
        assert_eq!(s.observe(full.clone()), None);
        assert_eq!(s.observe(full), None);
    }
}
