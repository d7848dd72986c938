//! Webhook signatures: `X-Warden-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>`
//! with `X-Warden-Timestamp: <unix seconds>`.

use core::fmt;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use warden_engine::encode::hex_lower;

/// Header carrying the signing time, unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Warden-Timestamp";

/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Warden-Signature";

/// A sensible receiver tolerance for [`verify`]: five minutes either way.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// SHA-256 block size: the HMAC key length after RFC 2104 normalisation.
const BLOCK_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `"<timestamp_secs>.<body>"`); send it as
/// [`SIGNATURE_HEADER`] together with `timestamp_secs` as [`TIMESTAMP_HEADER`].
pub fn sign(secret: &[u8], timestamp_secs: u64, body: &[u8]) -> String {
    let tag = signed_mac(secret, timestamp_secs, body).finalize().into_bytes();
    format!("sha256={}", hex_lower(&tag))
}

/// Why a signed request was rejected by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The timestamp header is not a unix-seconds integer.
    MalformedTimestamp,
    /// The timestamp is further than the tolerance from now (replay or clock skew).
    StaleTimestamp {
        /// Seconds between the timestamp and now (positive: in the past).
        age_secs: i64,
    },
    /// The signature header is not `sha256=` followed by 64 hex digits.
    MalformedSignature,
    /// The signature does not match the body, timestamp and secret.
    SignatureMismatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::MalformedTimestamp => f.write_str("malformed timestamp"),
            VerifyError::StaleTimestamp { age_secs } => {
                write!(f, "stale timestamp ({age_secs} s from now)")
            }
            VerifyError::MalformedSignature => f.write_str("malformed signature"),
            VerifyError::SignatureMismatch => f.write_str("signature mismatch"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Checks a Warden webhook delivery, for receivers.
///
/// Pass the raw `X-Warden-Timestamp` and `X-Warden-Signature` header values, the raw request
/// body bytes (before any JSON parsing, since re-serialising changes the bytes), the current
/// unix time and a tolerance (e.g. [`DEFAULT_TOLERANCE_SECS`]). Timestamps further than the
/// tolerance in the past or the future are rejected so a captured request cannot be
/// replayed later; the signature is compared in constant time.
///
/// ```
/// use warden_service::events::{sign, verify, DEFAULT_TOLERANCE_SECS};
///
/// let body = br#"{"type":"INGEST"}"#;
/// let signature = sign(b"webhook-secret", 1_700_000_000, body);
/// assert!(verify(b"webhook-secret", "1700000000", &signature, body,
///                1_700_000_030, DEFAULT_TOLERANCE_SECS).is_ok());
/// ```
///
/// A receiver in another language computes the same thing: hex(HMAC-SHA256(secret,
/// timestamp + "." + body)), compares it in constant time to the header without its
/// `sha256=` prefix, and checks `|now - timestamp| <= tolerance`.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let timestamp: u64 = timestamp_header.trim().parse().map_err(|_| VerifyError::MalformedTimestamp)?;
    if now_secs.abs_diff(timestamp) > tolerance_secs {
        let age = i128::from(now_secs) - i128::from(timestamp);
        let age_secs = i64::try_from(age).unwrap_or(if age < 0 { i64::MIN } else { i64::MAX });
        return Err(VerifyError::StaleTimestamp { age_secs });
    }
    let expected = signature_header
        .trim()
        .strip_prefix("sha256=")
        .and_then(decode_hex32)
        .ok_or(VerifyError::MalformedSignature)?;
    signed_mac(secret, timestamp, body).verify_slice(&expected).map_err(|_| VerifyError::SignatureMismatch)
}

/// The MAC state after absorbing `"<timestamp>.<body>"`.
fn signed_mac(secret: &[u8], timestamp_secs: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = keyed(secret);
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// HMAC-SHA256 keyed with `secret`. RFC 2104 pads short keys with zeros and hashes keys
/// longer than a block; doing that here lets us use the infallible block-sized constructor
/// instead of `new_from_slice`, whose error case cannot occur but would need a panic path.
pub(super) fn keyed(secret: &[u8]) -> HmacSha256 {
    let mut block = [0u8; BLOCK_LEN];
    let hashed;
    let key: &[u8] = if secret.len() > BLOCK_LEN {
        hashed = Sha256::digest(secret);
        &hashed
    } else {
        secret
    };
    for (slot, byte) in block.iter_mut().zip(key) {
        *slot = *byte;
    }
    <HmacSha256 as KeyInit>::new(&block.into())
}

/// 64 hex digits → 32 bytes; `None` for any other input.
fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let mut value = 0u8;
        for digit in pair {
            value = value * 16 + u8::try_from(char::from(*digit).to_digit(16)?).ok()?;
        }
        *slot = value;
    }
    Some(out)
}
