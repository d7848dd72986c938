//! What Warden writes about a decision (events, audit lines) must not carry the PII it
//! governs: identifiers the caller chose (`user_id`, `corr_id`, `tool`, `tags`, ...) are
//! scrubbed by the built-in detector, and the input is described only by a keyed hash, so a
//! reader of the logs cannot confirm a guess (an SSN has only 10⁹ values) without the key.

use super::signing::keyed;
use crate::settings::DEFAULT_SALT;
use core::fmt;
use hmac::Mac;
use std::borrow::Cow;
use warden_engine::encode::hex_lower;
use warden_engine::{Detector, PiiKind};

/// Prefix of payload hashes (SPEC §7): `hmac-sha256:<hex>`.
pub const PAYLOAD_HASH_PREFIX: &str = "hmac-sha256:";

/// Separates this key from every other use of the operator's secret (token derivation).
const KEY_LABEL: &[u8] = b"warden/decision-hash/v1";

/// The key of payload hashes and idempotency keys, derived from the operator's secret
/// (`PII_TOKEN_SALT`): HMAC-SHA256(secret, "warden/decision-hash/v1"). The default derives
/// from the public default salt and is only fit for development. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct HashKey([u8; 32]);

impl HashKey {
    /// The key derived from `secret`.
    pub fn from_secret(secret: &str) -> HashKey {
        let mut mac = keyed(secret.as_bytes());
        mac.update(KEY_LABEL);
        HashKey(mac.finalize().into_bytes().into())
    }

    /// `hmac-sha256:<hex>` of the UTF-8 bytes of `text`.
    pub fn payload_hash(&self, text: &str) -> String {
        let mut mac = self.mac();
        mac.update(text.as_bytes());
        format!("{PAYLOAD_HASH_PREFIX}{}", hex_lower(&mac.finalize().into_bytes()))
    }

    /// HMAC-SHA256 keyed with this key.
    pub(crate) fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        keyed(&self.0)
    }
}

impl Default for HashKey {
    fn default() -> HashKey {
        HashKey::from_secret(DEFAULT_SALT)
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(***)")
    }
}

/// Keyed hashing and PII scrubbing for events and audit lines. Holds the detector (built
/// once: build the scrubber once, not per record).
#[derive(Clone, Debug, Default)]
pub struct Scrubber {
    key: HashKey,
    detector: Detector,
}

impl Scrubber {
    /// A scrubber hashing with `key`.
    pub fn new(key: HashKey) -> Scrubber {
        Scrubber { key, detector: Detector::new() }
    }

    /// The hash key.
    pub fn key(&self) -> &HashKey {
        &self.key
    }

    /// `hmac-sha256:<hex>` of the UTF-8 bytes of `text`.
    pub fn payload_hash(&self, text: &str) -> String {
        self.key.payload_hash(text)
    }

    /// `text` with every value the built-in detector finds replaced by its placeholder
    /// (`<USER_EMAIL>`, `<USER_SSN>`, ...).
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.replace(text, |_| true)
    }

    /// `text` with only provider API keys replaced by `<API_KEY>`: what is left of an event
    /// when the operator opted into raw text, since keys never appear in events.
    pub fn scrub_api_keys<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.replace(text, |kind| kind == PiiKind::ApiKey)
    }

    fn replace<'t>(&self, text: &'t str, which: impl Fn(PiiKind) -> bool) -> Cow<'t, str> {
        let found: Vec<_> = self.detector.detect(text).into_iter().filter(|f| which(f.kind)).collect();
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for value in found {
            match text.get(last..value.start) {
                Some(before) => out.push_str(before),
                // The detector guarantees sorted char-boundary offsets; if that were ever
                // violated, fail closed rather than risk echoing part of a value.
                None => return Cow::Borrowed(value.kind.placeholder()),
            }
            out.push_str(value.kind.placeholder());
            last = value.end;
        }
        match text.get(last..) {
            Some(rest) => out.push_str(rest),
            None => return Cow::Borrowed("<PII>"),
        }
        Cow::Owned(out)
    }
}
