//! Validated request policies (`policy_config`), cached by the SHA-256 of their JSON text.
//! Bounded: at most [`CAPACITY`] entries, the oldest evicted first.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use warden_engine::RequestPolicy;

/// Most request policies kept compiled.
pub(crate) const CAPACITY: usize = 256;

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<[u8; 32], Arc<RequestPolicy>>,
    order: VecDeque<[u8; 32]>,
}

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct PolicyCache(Mutex<Entries>);

impl PolicyCache {
    /// The validated `config`, compiled on first sight.
    pub(crate) fn get_or_parse(&self, config: &serde_json::Value) -> Arc<RequestPolicy> {
        let key: [u8; 32] = Sha256::digest(config.to_string().as_bytes()).into();
        if let Some(hit) = self.0.lock().unwrap_or_else(PoisonError::into_inner).map.get(&key) {
            return Arc::clone(hit);
        }
        // Validated outside the lock: compiling recognizers takes a while.
        let parsed = Arc::new(RequestPolicy::parse(config));
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.map.contains_key(&key) {
            while entries.order.len() >= CAPACITY {
                if let Some(old) = entries.order.pop_front() {
                    entries.map.remove(&old);
                }
            }
            entries.order.push_back(key);
            entries.map.insert(key, Arc::clone(&parsed));
        }
        parsed
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).map.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn same_config_is_compiled_once_and_the_cache_is_bounded() {
        let cache = PolicyCache::default();
        let config = serde_json::json!({"custom_pii": [{"type": "emp", "pattern": "EMP-[0-9]{6}"}]});
        let a = cache.get_or_parse(&config);
        let b = cache.get_or_parse(&config);
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..(CAPACITY + 50) {
            cache.get_or_parse(&serde_json::json!({"deny_tools": [format!("t{i}")]}));
        }
        assert_eq!(cache.len(), CAPACITY);
    }
}
