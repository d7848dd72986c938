//! Reversible PII tokens (the `encrypt` action) and their restoration (detokenize).
//!
//! A token is deterministic authenticated encryption (AES-SIV, RFC 5297) of the value as found,
//! under a key named by a key id, with the PII type bound as associated data:
//!
//! ```text
//! encpii.<kid>.<type>.<body>
//! kid  = [a-z0-9]{1,16}            the key that encrypted it
//! type = [a-z0-9_]{1,64}           the PII type (built-in or custom name)
//! body = [a-z2-7]+                 base32 (RFC 4648, lowercase, unpadded) of SIV tag ‖ ciphertext
//! ```
//!
//! Every part of the syntax is free of characters JSON escapes and of the characters the detector
//! starts values with (digits `0`, `1`, `8`, `9` aside), and the body's alphabet has no `.`,
//! `-`, `_` or upper case: a token ends at the first character outside `[a-z2-7]`, so it can
//! stand in running text followed by punctuation or a space. The associated data is
//! (`warden-encpii-v1`, kid, type): a token relabelled with another type or key id does not
//! authenticate. Equal values of one type give equal tokens under one key (that is the point:
//! joins keep working; it is also what they leak, see docs/security.md).
//!
//! The engine holds no keys of its own: a caller passes a [`Keyring`] (the active key that
//! encrypts, older keys that still decrypt), built from its secret store.
//!
//! ```
//! use warden_engine::{Keyring, PiiKind, PiiType, RestoreOptions};
//!
//! let ring = Keyring::new("k2", &[7u8; 32])?.with_old_key("k1", &[1u8; 64])?;
//! let email = PiiType::Builtin(PiiKind::EmailAddress);
//! let token = ring.encrypt(&email, "alice@example.com").unwrap_or_default();
//! assert!(token.starts_with("encpii.k2.email_address."));
//! let text = format!("Write to {token}.");
//! let restored = ring.restore_text(&text, &RestoreOptions::default());
//! assert_eq!(restored.text, "Write to alice@example.com.");
//! assert_eq!(restored.report.restored, 1);
//! # Ok::<(), warden_engine::KeyringError>(())
//! ```

use crate::pii::{valid_custom_name, PiiType};
use aes_siv::siv::{Aes128Siv, Aes256Siv};
use aes_siv::KeyInit;
use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "encpii.";
/// Longest value (bytes) that is encrypted; a longer one is redacted instead, so every token
/// stays restorable within [`MAX_TOKEN_BODY`].
pub const MAX_VALUE_BYTES: usize = 4096;
/// Longest token body (base32 characters) a restore reads: tag and [`MAX_VALUE_BYTES`].
pub const MAX_TOKEN_BODY: usize = (16 + MAX_VALUE_BYTES).div_ceil(5) * 8;
/// Most keys in a keyring (the active one and old ones).
pub const MAX_KEYS: usize = 16;
/// Default most tokens one restore call looks at; later tokens are kept (`limit_reached`).
pub const DEFAULT_MAX_TOKENS: usize = 10_000;
/// Longest key id.
pub const MAX_KID_LEN: usize = 16;

/// Associated-data domain label: a token of another scheme (or version) cannot authenticate.
const DOMAIN: &[u8] = b"warden-encpii-v1";
const SIV_TAG: usize = 16;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// One key: 32 bytes (AES-128-SIV) or 64 bytes (AES-256-SIV).
#[derive(Clone)]
struct Key {
    kid: String,
    bytes: Vec<u8>,
}

/// The keys of reversible tokens: the active key encrypts, every key decrypts (rotation: add a
/// new active key, keep the old ones until no stored token uses them). Never prints key bytes.
#[derive(Clone)]
pub struct Keyring {
    /// The active key first.
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &kids).finish_non_exhaustive()
    }
}

/// Why a keyring cannot be built. Names key ids and lengths, never key bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyringError {
    /// A key id is not 1-16 characters of `a-z` and `0-9`.
    BadKeyId,
    /// A key is not 32 or 64 bytes long.
    KeyLength {
        /// The key's id.
        kid: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Two keys share an id.
    DuplicateKeyId(String),
    /// More than [`MAX_KEYS`] keys.
    TooManyKeys,
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::BadKeyId => write!(f, "a key id must be 1-{MAX_KID_LEN} characters of a-z and 0-9"),
            KeyringError::KeyLength { kid, len } => {
                write!(f, "key `{kid}` is {len} bytes; AES-SIV keys are 32 or 64 bytes")
            }
            KeyringError::DuplicateKeyId(kid) => write!(f, "key id `{kid}` is given twice"),
            KeyringError::TooManyKeys => write!(f, "at most {MAX_KEYS} keys"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for KeyringError {}

/// Whether `kid` may name a key.
pub fn valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Keyring {
    /// A keyring whose active key is `key` (32 or 64 bytes) named `kid`.
    pub fn new(kid: &str, key: &[u8]) -> Result<Keyring, KeyringError> {
        Keyring { keys: Vec::new() }.with_old_key(kid, key)
    }

    /// Adds an older key that still decrypts (never encrypts).
    pub fn with_old_key(mut self, kid: &str, key: &[u8]) -> Result<Keyring, KeyringError> {
        if !valid_kid(kid) {
            return Err(KeyringError::BadKeyId);
        }
        if key.len() != 32 && key.len() != 64 {
            return Err(KeyringError::KeyLength { kid: kid.to_owned(), len: key.len() });
        }
        if self.keys.iter().any(|k| k.kid == kid) {
            return Err(KeyringError::DuplicateKeyId(kid.to_owned()));
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyringError::TooManyKeys);
        }
        self.keys.push(Key { kid: kid.to_owned(), bytes: key.to_vec() });
        Ok(self)
    }

    /// The id of the key that encrypts.
    pub fn active_kid(&self) -> &str {
        self.keys.first().map_or("", |k| k.kid.as_str())
    }

    /// Every key id, the active one first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// The token of `value` of type `ty` under the active key; `None` when the value is longer
    /// than [`MAX_VALUE_BYTES`] (the caller redacts it instead).
    pub fn encrypt(&self, ty: &PiiType, value: &str) -> Option<String> {
        let key = self.keys.first()?;
        if value.len() > MAX_VALUE_BYTES {
            return None;
        }
        let sealed = siv(key, ty.name(), value.as_bytes(), true)?;
        let mut out =
            String::with_capacity(TOKEN_PREFIX.len() + key.kid.len() + ty.name().len() + 2 + sealed.len() * 8 / 5 + 1);
        out.push_str(TOKEN_PREFIX);
        out.push_str(&key.kid);
        out.push('.');
        out.push_str(ty.name());
        out.push('.');
        push_base32(&mut out, &sealed);
        Some(out)
    }

    /// Restores every token in `text`; tokens that cannot be restored stay as they are, each
    /// with its [`KeptReason`]. One pass over the text.
    pub fn restore_text(&self, text: &str, options: &RestoreOptions) -> Restored {
        let mut report = RestoreReport::default();
        let text = self.restore_into(text, options, &mut report);
        Restored { text, report }
    }

    /// Restores the tokens in every string of a JSON value (member names are left as they are);
    /// one report for the whole value, the token limit shared by all its strings.
    pub fn restore_json(&self, value: &Value, options: &RestoreOptions) -> (Value, RestoreReport) {
        let mut report = RestoreReport::default();
        let out = self.walk(value, options, &mut report);
        (out, report)
    }

    // Recursion depth is bounded by the JSON parser's nesting limit (128 in serde_json).
    fn walk(&self, v: &Value, options: &RestoreOptions, report: &mut RestoreReport) -> Value {
        match v {
            Value::String(s) => Value::String(self.restore_into(s, options, report)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.walk(i, options, report)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, i)| (k.clone(), self.walk(i, options, report))).collect())
            }
            other => other.clone(),
        }
    }

    fn restore_into(&self, text: &str, options: &RestoreOptions, report: &mut RestoreReport) -> String {
        let mut out = String::with_capacity(text.len());
        let mut pos = 0usize;
        for token in scan(text) {
            out.push_str(text.get(pos..token.start).unwrap_or_default());
            let raw = text.get(token.start..token.end).unwrap_or_default();
            let seen = report.restored + report.kept;
            let result =
                if seen >= options.max_tokens { Err(KeptReason::LimitReached) } else { self.open(&token, options) };
            match result {
                Ok(value) => {
                    out.push_str(&value);
                    report.note_restored(token.ty, token.kid);
                }
                Err(reason) => {
                    out.push_str(raw);
                    report.note_kept(raw, reason);
                }
            }
            pos = token.end;
        }
        out.push_str(text.get(pos..).unwrap_or_default());
        out
    }

    fn open(&self, token: &Token<'_>, options: &RestoreOptions) -> Result<String, KeptReason> {
        if token.body.len() > MAX_TOKEN_BODY {
            return Err(KeptReason::Malformed);
        }
        let sealed = decode_base32(token.body).ok_or(KeptReason::Malformed)?;
        if sealed.len() < SIV_TAG {
            return Err(KeptReason::Malformed);
        }
        if let Some(types) = &options.types {
            if !types.iter().any(|t| t == token.ty) {
                return Err(KeptReason::TypeNotAllowed);
            }
        }
        let key = self.keys.iter().find(|k| k.kid == token.kid).ok_or(KeptReason::UnknownKeyId)?;
        let plain = siv(key, token.ty, &sealed, false).ok_or(KeptReason::Tampered)?;
        String::from_utf8(plain).map_err(|_| KeptReason::Malformed)
    }
}

/// AES-SIV seal (`encrypt`) or open of `data` under `key` with the associated data of type `ty`.
fn siv(key: &Key, ty: &str, data: &[u8], encrypt: bool) -> Option<Vec<u8>> {
    let headers: [&[u8]; 3] = [DOMAIN, key.kid.as_bytes(), ty.as_bytes()];
    macro_rules! run {
        ($cipher:ty) => {{
            let mut c = <$cipher>::new_from_slice(&key.bytes).ok()?;
            if encrypt {
                c.encrypt(headers, data).ok()
            } else {
                c.decrypt(headers, data).ok()
            }
        }};
    }
    match key.bytes.len() {
        32 => run!(Aes128Siv),
        64 => run!(Aes256Siv),
        _ => None,
    }
}

/// Options of a restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Only tokens of these types are restored (others are kept, `type_not_allowed`); `None`:
    /// every type.
    pub types: Option<Vec<String>>,
    /// Most tokens looked at; later ones are kept (`limit_reached`).
    pub max_tokens: usize,
}

impl Default for RestoreOptions {
    fn default() -> RestoreOptions {
        RestoreOptions { types: None, max_tokens: DEFAULT_MAX_TOKENS }
    }
}

/// Why a token was left as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptReason {
    /// No key with the token's key id (retired, or never this deployment's).
    UnknownKeyId,
    /// The token does not authenticate: altered, relabelled (type or key id) or forged.
    Tampered,
    /// Not a well-formed body (bad base32, too short or too long).
    Malformed,
    /// Its type is not among the types the caller asked to restore.
    TypeNotAllowed,
    /// Over the call's token limit.
    LimitReached,
}

impl KeptReason {
    /// Every reason, for parsing.
    pub const ALL: [KeptReason; 5] = [
        KeptReason::UnknownKeyId,
        KeptReason::Tampered,
        KeptReason::Malformed,
        KeptReason::TypeNotAllowed,
        KeptReason::LimitReached,
    ];

    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            KeptReason::UnknownKeyId => "unknown_key_id",
            KeptReason::Tampered => "tampered",
            KeptReason::Malformed => "malformed",
            KeptReason::TypeNotAllowed => "type_not_allowed",
            KeptReason::LimitReached => "limit_reached",
        }
    }

    /// Parses a wire name.
    pub fn from_name(s: &str) -> Option<KeptReason> {
        KeptReason::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl fmt::Display for KeptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A token left as it is, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptToken {
    /// The token as it stands in the input (ciphertext, never a value).
    pub token: String,
    /// Why it was kept.
    pub reason: KeptReason,
}

/// Most kept tokens listed one by one in a report (all are counted).
pub const MAX_LISTED: usize = 100;

/// What a restore did, without any restored value: counts per type, per key id and per reason,
/// and the first [`MAX_LISTED`] kept tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// Tokens restored.
    pub restored: usize,
    /// Tokens kept.
    pub kept: usize,
    /// Restored tokens per PII type, in order of first occurrence.
    pub types: Vec<(String, usize)>,
    /// Restored tokens per key id, in order of first occurrence.
    pub key_ids: Vec<(String, usize)>,
    /// Kept tokens per reason, in order of first occurrence.
    pub reasons: Vec<(KeptReason, usize)>,
    /// The first kept tokens.
    pub kept_tokens: Vec<KeptToken>,
}

fn bump<T: PartialEq>(list: &mut Vec<(T, usize)>, item: T) {
    match list.iter_mut().find(|(t, _)| *t == item) {
        Some((_, n)) => *n += 1,
        None => list.push((item, 1)),
    }
}

/// [`bump`] for names, allocating only a new name.
fn bump_name(list: &mut Vec<(String, usize)>, name: &str) {
    match list.iter_mut().find(|(t, _)| t == name) {
        Some((_, n)) => *n += 1,
        None => list.push((name.to_owned(), 1)),
    }
}

impl RestoreReport {
    fn note_restored(&mut self, ty: &str, kid: &str) {
        self.restored += 1;
        bump_name(&mut self.types, ty);
        bump_name(&mut self.key_ids, kid);
    }

    fn note_kept(&mut self, token: &str, reason: KeptReason) {
        self.kept += 1;
        bump(&mut self.reasons, reason);
        if self.kept_tokens.len() < MAX_LISTED {
            self.kept_tokens.push(KeptToken { token: token.to_owned(), reason });
        }
    }
}

/// A restored text and what was done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The text with every restorable token replaced by its value.
    pub text: String,
    /// Counts and kept tokens.
    pub report: RestoreReport,
}

/// A token's parts as found in a text (byte offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'t> {
    /// Offset of `encpii.`.
    pub start: usize,
    /// Offset one past the body.
    pub end: usize,
    /// The key id.
    pub kid: &'t str,
    /// The PII type name.
    pub ty: &'t str,
    /// The base32 body (not yet decoded).
    pub body: &'t str,
}

/// Every token-shaped span of `text`, in order, non-overlapping: `encpii.`, a key id, `.`, a
/// type, `.`, then the longest run of base32 characters (at least one). Text that starts
/// like a token but does not have that shape is not a token. Linear in the text: each byte is
/// read a bounded number of times.
pub fn scan(text: &str) -> impl Iterator<Item = Token<'_>> {
    let b = text.as_bytes();
    let mut from = 0usize;
    core::iter::from_fn(move || loop {
        let rest = b.get(from..)?;
        let at = from + memchr::memmem::find(rest, TOKEN_PREFIX.as_bytes())?;
        let after = at + TOKEN_PREFIX.len();
        match parse_at(text, at) {
            Some(token) => {
                from = token.end;
                return Some(token);
            }
            None => from = after,
        }
    })
}

/// Whether `v` is exactly one token-shaped span (the detector treats such a value after a
/// password keyword as a stand-in, not as a password).
pub(crate) fn is_token(v: &[u8]) -> bool {
    v.starts_with(TOKEN_PREFIX.as_bytes())
        && core::str::from_utf8(v).ok().and_then(|s| parse_at(s, 0)).is_some_and(|t| t.end == v.len())
}

/// The token starting at `at` (which holds `encpii.`), if the text has the token's shape there.
fn parse_at(text: &str, at: usize) -> Option<Token<'_>> {
    let b = text.as_bytes();
    let kid_start = at + TOKEN_PREFIX.len();
    let kid_end = run(b, kid_start, MAX_KID_LEN, |c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if kid_end == kid_start || b.get(kid_end) != Some(&b'.') {
        return None;
    }
    let ty_start = kid_end + 1;
    let ty_end = run(b, ty_start, 64, |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if ty_end == ty_start || b.get(ty_end) != Some(&b'.') {
        return None;
    }
    let body_start = ty_end + 1;
    // Read the whole run (a body over the limit is reported, not split): linear, consumed.
    let body_end = run(b, body_start, usize::MAX, is_base32);
    if body_end == body_start {
        return None;
    }
    let ty = text.get(ty_start..ty_end)?;
    if !valid_custom_name(ty) {
        return None;
    }
    Some(Token {
        start: at,
        end: body_end,
        kid: text.get(kid_start..kid_end)?,
        ty,
        body: text.get(body_start..body_end)?,
    })
}

/// End of the run of bytes satisfying `ok` from `start`, at most `max` long; a run longer than
/// `max` ends at `start` (no match) so that a longer identifier is not cut into a token.
fn run(b: &[u8], start: usize, max: usize, ok: impl Fn(u8) -> bool) -> usize {
    let len = b.get(start..).unwrap_or_default().iter().take_while(|&&c| ok(c)).count();
    if len > max {
        start
    } else {
        start + len
    }
}

fn is_base32(c: u8) -> bool {
    c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)
}

fn push_base32(out: &mut String, data: &[u8]) {
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &byte in data {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_char(acc >> bits));
            acc &= (1 << bits) - 1;
        }
    }
    if bits > 0 {
        out.push(base32_char(acc << (5 - bits)));
    }
}

fn base32_char(v: u32) -> char {
    BASE32.get((v & 31) as usize).map_or('a', |&c| char::from(c))
}

/// Decodes unpadded lowercase base32; `None` for a length no encoding produces or non-zero
/// padding bits (so each byte string has exactly one body).
fn decode_base32(s: &str) -> Option<Vec<u8>> {
    if matches!(s.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::PiiKind;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    fn email() -> PiiType {
        PiiType::Builtin(PiiKind::EmailAddress)
    }

    fn ring() -> Keyring {
        Keyring::new("k2", &[2u8; 64]).and_then(|r| r.with_old_key("k1", &[1u8; 32])).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn base32_round_trips_and_rejects_non_canonical() {
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut s = String::new();
            push_base32(&mut s, &data);
            assert_eq!(decode_base32(&s), Some(data), "{len}");
        }
        assert_eq!(decode_base32("mzxw6"), Some(b"foo".to_vec()));
        assert_eq!(decode_base32("mzxw7"), None);
        assert_eq!(decode_base32("a"), None);
        assert_eq!(decode_base32("MZXW6"), None);
    }

    #[test]
    fn equal_values_give_equal_tokens_and_restore() {
        let r = ring();
        let a = r.encrypt(&email(), "alice@example.com").unwrap_or_default();
        let b = r.encrypt(&email(), "alice@example.com").unwrap_or_default();
        let c = r.encrypt(&email(), "bob@example.com").unwrap_or_default();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let text = format!("{{\"to\": \"{a}\"}}, cc {c}.");
        let out = r.restore_text(&text, &RestoreOptions::default());
        assert_eq!(out.text, "{\"to\": \"alice@example.com\"}, cc bob@example.com.");
        assert_eq!(out.report.restored, 2);
        assert_eq!(out.report.types, vec![("email_address".to_string(), 2)]);
        assert_eq!(out.report.key_ids, vec![("k2".to_string(), 2)]);
    }

    #[test]
    fn rotation_old_keys_decrypt_unknown_kept() {
        let old = Keyring::new("k1", &[1u8; 32]).unwrap_or_else(|_| unreachable!());
        let t = old.encrypt(&email(), "a@b.io").unwrap_or_default();
        assert!(t.starts_with("encpii.k1.email_address."));
        assert_eq!(ring().restore_text(&t, &RestoreOptions::default()).text, "a@b.io");
        let other = Keyring::new("k9", &[9u8; 32]).unwrap_or_else(|_| unreachable!());
        let out = other.restore_text(&t, &RestoreOptions::default());
        assert_eq!(out.text, t);
        assert_eq!(out.report.reasons, vec![(KeptReason::UnknownKeyId, 1)]);
    }

    #[test]
    fn tampering_and_relabelling_are_detected() {
        let r = ring();
        let t = r.encrypt(&email(), "alice@example.com").unwrap_or_default();
        let opts = RestoreOptions::default();
        // Flip one body character.
        let mut flipped = t.clone().into_bytes();
        if let Some(last) = flipped.get_mut(30) {
            *last = if *last == b'a' { b'b' } else { b'a' };
        }
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        let relabelled = t.replacen("email_address", "us_ssn", 1);
        let rekeyed = t.replacen("encpii.k2.", "encpii.k1.", 1);
        for bad in [flipped, relabelled, rekeyed] {
            let out = r.restore_text(&bad, &opts);
            assert_eq!(out.text, bad);
            assert_eq!(out.report.kept_tokens, vec![KeptToken { token: bad.clone(), reason: KeptReason::Tampered }]);
        }
        let short = r.restore_text("encpii.k2.email_address.abcd", &opts);
        assert_eq!(short.report.reasons, vec![(KeptReason::Malformed, 1)]);
    }

    #[test]
    fn shapes_that_are_not_tokens_are_plain_text() {
        for text in ["encpii.", "encpii..x.abc", "encpii.K1.t.abc", "encpii.k1.t.", "encpii.k1.T.abc", "encpii.k1.t"] {
            assert_eq!(scan(text).count(), 0, "{text}");
        }
        let long_kid = format!("encpii.{}.t.abc", "k".repeat(17));
        assert_eq!(scan(&long_kid).count(), 0);
        // The body ends at the first character outside the alphabet.
        let t: Vec<_> = scan("(encpii.k1.t.abc7xyz9), encpii.k2.u.zz").collect();
        assert_eq!(t.iter().map(|t| t.body).collect::<Vec<_>>(), ["abc7xyz", "zz"]);
    }

    #[test]
    fn adversarial_texts_are_one_pass() {
        // Each shape makes a naive rescan quadratic: prefixes inside long runs, bodies that
        // never authenticate, a kid run over the limit.
        let opts = RestoreOptions { types: None, max_tokens: 5 };
        let r = ring();
        let many = "encpii.k1.t.".repeat(100_000);
        let out = r.restore_text(&many, &opts);
        assert_eq!(out.text, many);
        assert_eq!((out.report.kept, out.report.kept_tokens.len()), (scan(&many).count(), MAX_LISTED));
        assert_eq!(out.report.reasons.last(), Some(&(KeptReason::LimitReached, out.report.kept - 5)));
        let long = format!("encpii.{}", "a".repeat(1 << 20));
        assert_eq!(scan(&long).count(), 0);
        let body = format!("encpii.k2.t.{}", "a".repeat(1 << 20));
        assert_eq!(r.restore_text(&body, &opts).report.reasons, vec![(KeptReason::Malformed, 1)]);
    }

    #[test]
    fn type_filter_and_limit() {
        let r = ring();
        let ssn = PiiType::Builtin(PiiKind::UsSsn);
        let text = format!(
            "{} {} {}",
            r.encrypt(&email(), "a@b.io").unwrap_or_default(),
            r.encrypt(&ssn, "123-45-6789").unwrap_or_default(),
            r.encrypt(&email(), "c@d.io").unwrap_or_default()
        );
        let only_email = RestoreOptions { types: Some(vec!["email_address".into()]), ..RestoreOptions::default() };
        let out = r.restore_text(&text, &only_email);
        assert!(out.text.starts_with("a@b.io encpii.k2.us_ssn.") && out.text.ends_with(" c@d.io"));
        assert_eq!(out.report.reasons, vec![(KeptReason::TypeNotAllowed, 1)]);
        let two = RestoreOptions { types: None, max_tokens: 2 };
        let out = r.restore_text(&text, &two);
        assert_eq!((out.report.restored, out.report.reasons.clone()), (2, vec![(KeptReason::LimitReached, 1)]));
    }

    #[test]
    fn json_strings_are_restored() {
        let r = ring();
        let t = r.encrypt(&email(), "a@b.io").unwrap_or_default();
        let v = serde_json::json!({"to": t, "list": [1, format!("cc {t}")], "n": null});
        let (out, report) = r.restore_json(&v, &RestoreOptions::default());
        assert_eq!(out, serde_json::json!({"to": "a@b.io", "list": [1, "cc a@b.io"], "n": null}));
        assert_eq!(report.restored, 2);
    }

    #[test]
    fn keyring_errors_never_show_keys() {
        assert_eq!(Keyring::new("", &[0u8; 32]).err(), Some(KeyringError::BadKeyId));
        assert_eq!(Keyring::new("Key", &[0u8; 32]).err(), Some(KeyringError::BadKeyId));
        let e = Keyring::new("k1", &[0x41u8; 31]).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, "key `k1` is 31 bytes; AES-SIV keys are 32 or 64 bytes");
        let dup = ring().with_old_key("k1", &[0u8; 32]).err();
        assert_eq!(dup, Some(KeyringError::DuplicateKeyId("k1".into())));
        let printed = format!("{:?}", ring());
        assert_eq!(printed, "Keyring { key_ids: [\"k2\", \"k1\"], .. }");
        assert_eq!(ring().encrypt(&email(), &"x".repeat(MAX_VALUE_BYTES + 1)), None);
    }

    #[test]
    fn rfc_5297_deterministic_vector() {
        // RFC 5297 A.1: AES-SIV-CMAC-256, one header, 14-byte plaintext.
        let key: Vec<u8> = (0..16u8).map(|i| 0xff - i).chain(0xf0..=0xffu8).collect();
        let mut c = Aes128Siv::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        let header: Vec<u8> = (0x10..=0x27u8).collect();
        let pt = [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
        let ct = c.encrypt([header.as_slice()], &pt).unwrap_or_default();
        assert_eq!(crate::encode::hex_lower(&ct), "85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c");
    }
}
