//! Optional API-key auth (SPEC §8): when `WARDEN_API_KEYS` is set, `X-Governs-Key` must
//! match one of its keys.
//!
//! Keys are kept only as SHA-256 digests, and a presented key is compared by digest in
//! constant time against every configured key, so neither a key's content nor its length nor
//! which entry matched leaks through timing. `WARDEN_API_KEYS` entries are comma-separated
//! plain keys or `sha256:<64 hex digits>` (the digest of a key, so the plain key need not be
//! stored in the environment). Nothing here ever prints a key.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Prefix of a hashed `WARDEN_API_KEYS` entry.
pub const SHA256_PREFIX: &str = "sha256:";

/// The configured API keys (possibly none: auth disabled).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").field("keys", &self.digests.len()).finish()
    }
}

/// A malformed `WARDEN_API_KEYS` value. Names the entry by position, never by content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeysError {
    message: String,
}

impl std::fmt::Display for ApiKeysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WARDEN_API_KEYS: {}", self.message)
    }
}

impl std::error::Error for ApiKeysError {}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn decode_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *out = u8::from_str_radix(text, 16).ok()?;
    }
    Some(digest)
}

impl ApiKeys {
    /// No keys: auth disabled.
    pub fn disabled() -> ApiKeys {
        ApiKeys::default()
    }

    /// Parses a `WARDEN_API_KEYS` value: comma-separated entries, each a plain key or
    /// `sha256:<64 hex digits>`; whitespace around entries and empty entries are ignored. A
    /// blank value disables auth; a non-blank value without any key, or a malformed `sha256:`
    /// entry, is an error (a typo must not silently turn auth off).
    pub fn from_env_value(value: &str) -> Result<ApiKeys, ApiKeysError> {
        if value.trim().is_empty() {
            return Ok(ApiKeys::disabled());
        }
        let mut digests = Vec::new();
        for (index, entry) in value.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let digest = match entry.strip_prefix(SHA256_PREFIX) {
                Some(hex) => decode_hex_digest(hex).ok_or_else(|| ApiKeysError {
                    message: format!(
                        "entry {} starts with {SHA256_PREFIX} but is not followed by 64 hex digits",
                        index + 1
                    ),
                })?,
                None => sha256(entry.as_bytes()),
            };
            if !digests.contains(&digest) {
                digests.push(digest);
            }
        }
        if digests.is_empty() {
            return Err(ApiKeysError { message: "set but contains no key".to_string() });
        }
        Ok(ApiKeys { digests })
    }

    /// Whether auth is on (at least one key is configured).
    pub fn is_enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// How many distinct keys are configured.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no key is configured (auth disabled).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether every key of `other` is one of these keys.
    pub fn contains_all(&self, other: &ApiKeys) -> bool {
        other.digests.iter().all(|d| self.digests.contains(d))
    }

    /// Whether `presented` is one of the keys. Constant time in the keys' contents: the
    /// presented key's digest is compared with every configured digest, without early exit.
    pub fn verify(&self, presented: &str) -> bool {
        if presented.is_empty() {
            return false;
        }
        let candidate = sha256(presented.as_bytes());
        let matched = self.digests.iter().fold(Choice::from(0), |acc, digest| acc | digest.ct_eq(&candidate));
        bool::from(matched)
    }
}

/// A stable, non-reversible identifier of an API key for rate-limit keys and logs: the first
/// 16 bytes of its SHA-256, as 32 lowercase hex digits. Never log or store the key itself.
pub fn key_fingerprint(api_key: &str) -> String {
    let digest = sha256(api_key.as_bytes());
    digest.iter().take(16).map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn hex(digest: [u8; 32]) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn plain_and_hashed_keys_verify() {
        let hashed = hex(sha256(b"secret-three"));
        let keys = ApiKeys::from_env_value(&format!(" k1 , k2,sha256:{hashed}")).unwrap();
        assert!(keys.is_enabled());
        assert_eq!(keys.len(), 3);
        assert!(keys.verify("k1"));
        assert!(keys.verify("k2"));
        assert!(keys.verify("secret-three"));
        assert!(!keys.verify(&format!("sha256:{hashed}")));
        assert!(!keys.verify("k3"));
        assert!(!keys.verify("k1 "));
        assert!(!keys.verify("K1"));
        assert!(!keys.verify(""));
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let hashed = hex(sha256(b"abc")).to_uppercase();
        let keys = ApiKeys::from_env_value(&format!("sha256:{hashed}")).unwrap();
        assert!(keys.verify("abc"));
    }

    #[test]
    fn blank_disables_and_garbage_is_an_error() {
        assert!(!ApiKeys::from_env_value("").unwrap().is_enabled());
        assert!(!ApiKeys::from_env_value("  ").unwrap().is_enabled());
        assert!(ApiKeys::from_env_value(",").is_err());
        assert!(ApiKeys::from_env_value(" , , ").is_err());
        let err = ApiKeys::from_env_value("good,sha256:abc").unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
        assert!(!err.to_string().contains("good"));
        assert!(ApiKeys::from_env_value(&format!("sha256:{}", "g".repeat(64))).is_err());
        assert!(ApiKeys::from_env_value(&format!("sha256:{}", "é".repeat(32))).is_err());
        let disabled = ApiKeys::disabled();
        assert!(!disabled.verify("anything"));
        assert!(disabled.is_empty());
    }

    #[test]
    fn duplicates_collapse_and_trailing_commas_are_fine() {
        let keys = ApiKeys::from_env_value("a,a,b,").unwrap();
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn debug_never_prints_keys() {
        let keys = ApiKeys::from_env_value("super-secret-key,other-secret").unwrap();
        let printed = format!("{keys:?} {keys:#?}");
        assert!(!printed.contains("super-secret-key"));
        assert!(!printed.contains("other-secret"));
        assert!(printed.contains("keys: 2"), "{printed}");
    }

    #[test]
    fn fingerprints_are_stable_and_not_the_key() {
        let a = key_fingerprint("my-key");
        assert_eq!(a.len(), 32);
        assert_eq!(a, key_fingerprint("my-key"));
        assert_ne!(a, key_fingerprint("my-key2"));
        assert!(!a.contains("my-key"));
        assert_eq!(a, hex(sha256(b"my-key"))[..32]);
    }
}
