//! Deterministic PII tokens (SPEC §5): `pii_` + hex HMAC-SHA256(salt, canonical value).

use crate::encode::{hmac_sha256, push_hex};
use crate::pii::{PiiKind, PiiType};
use alloc::string::String;
use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The salt tokens are keyed with (SPEC §5); comes from the environment or a secret store.
/// Tokens are `pii_` + the first `token_hex_len` hex characters of
/// HMAC-SHA256(salt, canonical value), so equal values get equal tokens under one salt.
#[derive(Clone)]
pub struct TokenKey {
    salt: Vec<u8>,
    /// The HMAC already keyed with the salt (its inner and outer pads hashed once), cloned
    /// per token: half the SHA-256 work of keying every token afresh, which matters where
    /// SHA-256 has no hardware help (wasm).
    keyed: Option<Hmac<Sha256>>,
}

impl TokenKey {
    /// Wraps a salt.
    pub fn new(salt: impl AsRef<[u8]>) -> TokenKey {
        let salt = salt.as_ref().to_vec();
        let keyed = Hmac::<Sha256>::new_from_slice(&salt).ok();
        TokenKey { salt, keyed }
    }

    /// Token for `value` of type `ty`, `hex_len` hex characters long (8..=64, clamped).
    pub fn token(&self, ty: &PiiType, value: &str, hex_len: usize) -> String {
        let canonical = canonical(ty, value);
        let digest = self.mac(canonical.as_bytes());
        let n = hex_len.clamp(8, 64);
        let mut out = String::with_capacity(4 + n);
        out.push_str("pii_");
        push_hex(&mut out, &digest, n);
        out
    }

    /// Raw HMAC-SHA256 of `msg` under this key.
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        match &self.keyed {
            Some(keyed) => {
                let mut mac = keyed.clone();
                mac.update(msg);
                mac.finalize().into_bytes().into()
            }
            // HMAC takes keys of any length, so keying cannot fail; the plain path stays correct if it ever did.
            None => hmac_sha256(&self.salt, msg),
        }
    }
}

impl core::fmt::Debug for TokenKey {
    // Never print the salt.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// The canonical form a value is tokenized in, so that format variants share a token:
/// emails lowercased; SSNs, cards and phones as digits only (a leading `+` is dropped too);
/// everything else as found.
fn canonical(ty: &PiiType, value: &str) -> String {
    match ty {
        PiiType::Builtin(PiiKind::EmailAddress) => value.to_lowercase(),
        PiiType::Builtin(PiiKind::UsSsn | PiiKind::CreditCard | PiiKind::PhoneNumber) => {
            value.chars().filter(char::is_ascii_digit).collect()
        }
        _ => String::from(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssn_formats_share_a_token() {
        let k = TokenKey::new("conformance-salt");
        let ty = PiiType::Builtin(PiiKind::UsSsn);
        assert_eq!(k.token(&ty, "123-45-6789", 8), "pii_cd6e3b04");
        assert_eq!(k.token(&ty, "123 45 6789", 8), "pii_cd6e3b04");
        assert_eq!(k.token(&ty, "123456789", 8), "pii_cd6e3b04");
    }

    #[test]
    fn token_length_is_clamped() {
        let k = TokenKey::new("s");
        let ty = PiiType::Builtin(PiiKind::ApiKey);
        assert_eq!(k.token(&ty, "x", 3).len(), 4 + 8);
        assert_eq!(k.token(&ty, "x", 13).len(), 4 + 13);
        assert_eq!(k.token(&ty, "x", 100).len(), 4 + 64);
    }

    #[test]
    fn emails_are_case_insensitive() {
        let k = TokenKey::new("s");
        let ty = PiiType::Builtin(PiiKind::EmailAddress);
        assert_eq!(k.token(&ty, "Alice@Example.com", 8), k.token(&ty, "alice@example.com", 8));
    }
}
