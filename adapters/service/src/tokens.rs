//! Settings of reversible tokens (SPEC §5a): the keyring of the `encrypt` action
//! (`WARDEN_ENCRYPT_KEYS`) and the API keys allowed to restore tokens
//! (`WARDEN_DETOKENIZE_KEYS`). Errors name entries by position and key id, never key bytes.

use crate::auth::ApiKeys;
use crate::settings::ConfigError;
use warden_engine::{valid_kid, Keyring};

/// The variable holding the token keys.
pub const ENCRYPT_KEYS_VAR: &str = "WARDEN_ENCRYPT_KEYS";
/// The variable holding the API keys that may detokenize.
pub const DETOKENIZE_KEYS_VAR: &str = "WARDEN_DETOKENIZE_KEYS";

/// Parses `WARDEN_ENCRYPT_KEYS`: comma-separated `kid:base64key` entries, the first one active
/// (it encrypts), the others old keys that still decrypt. Keys are 32 bytes (AES-128-SIV) or
/// 64 bytes (AES-256-SIV), in standard or URL-safe base64, padded or not.
pub fn parse_encrypt_keys(value: &str) -> Result<Keyring, ConfigError> {
    let err = |problem: String| ConfigError::new(ENCRYPT_KEYS_VAR, problem);
    let mut ring: Option<Keyring> = None;
    for (i, entry) in value.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        let n = i + 1;
        // The entry is not repeated: a key pasted without its id would be echoed.
        let (kid, key) = entry.split_once(':').ok_or_else(|| err(format!("entry {n} is not `kid:base64key`")))?;
        let kid = kid.trim();
        if !valid_kid(kid) {
            return Err(err(format!("entry {n}: a key id is 1-16 characters of a-z and 0-9")));
        }
        let bytes =
            decode_base64(key.trim()).ok_or_else(|| err(format!("entry {n} (`{kid}`): the key is not base64")))?;
        let next = match ring.take() {
            None => Keyring::new(kid, &bytes),
            Some(r) => r.with_old_key(kid, &bytes),
        };
        ring = Some(next.map_err(|e| err(format!("entry {n}: {e}")))?);
    }
    ring.ok_or_else(|| err(String::from("set but contains no key")))
}

/// Parses `WARDEN_DETOKENIZE_KEYS` (plain API keys or `sha256:<hex>` digests, as in
/// `WARDEN_API_KEYS`) and checks it against the rest: every entry must be an API key, and
/// restoring needs token keys.
pub fn parse_detokenize_keys(
    value: Option<&str>,
    api_keys: &ApiKeys,
    encrypt: Option<&Keyring>,
) -> Result<ApiKeys, ConfigError> {
    let Some(value) = value else { return Ok(ApiKeys::disabled()) };
    let keys = ApiKeys::from_env_value(value).map_err(|e| {
        let message = e.to_string();
        let problem = message.strip_prefix("WARDEN_API_KEYS: ").unwrap_or(&message);
        ConfigError::new(DETOKENIZE_KEYS_VAR, problem)
    })?;
    if encrypt.is_none() {
        return Err(ConfigError::new(
            DETOKENIZE_KEYS_VAR,
            format!("needs {ENCRYPT_KEYS_VAR}: there is nothing to restore with"),
        ));
    }
    if !api_keys.is_enabled() {
        return Err(ConfigError::new(DETOKENIZE_KEYS_VAR, "needs WARDEN_API_KEYS: without auth nobody may detokenize"));
    }
    if !api_keys.contains_all(&keys) {
        return Err(ConfigError::new(DETOKENIZE_KEYS_VAR, "every entry must also be one of WARDEN_API_KEYS"));
    }
    Ok(keys)
}

/// Decodes standard or URL-safe base64, padded or not; `None` on anything else.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const K32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn base64_variants() {
        let bytes: Vec<u8> = (0..32).collect();
        assert_eq!(decode_base64(K32), Some(bytes.clone()));
        assert_eq!(decode_base64(K32.trim_end_matches('=')), Some(bytes));
        assert_eq!(decode_base64("-_-_"), Some(vec![0xfb, 0xff, 0xbf]));
        assert_eq!(decode_base64("+/+/"), Some(vec![0xfb, 0xff, 0xbf]));
        assert_eq!(decode_base64("abc!"), None);
        assert_eq!(decode_base64("a"), None);
    }

    #[test]
    fn first_key_is_active_and_errors_never_echo_keys() {
        let k64 = format!("{}{}", K32.trim_end_matches('='), K32.trim_end_matches('='));
        let ring = parse_encrypt_keys(&format!("k2:{K32}, k1:{k64}")).unwrap();
        assert_eq!(ring.kids().collect::<Vec<_>>(), ["k2", "k1"]);
        for (value, expected) in [
            (K32.to_string(), "entry 1 is not `kid:base64key`"),
            (format!("K2:{K32}"), "entry 1: a key id is 1-16 characters of a-z and 0-9"),
            (format!("k2:{K32},k3:SECRET!"), "entry 2 (`k3`): the key is not base64"),
            (String::from("k2:U0VDUkVUU0VDUkVU"), "entry 1: key `k2` is 12 bytes; AES-SIV keys are 32 or 64 bytes"),
            (format!("k2:{K32},k2:{K32}"), "entry 2: key id `k2` is given twice"),
            (String::from(" , "), "set but contains no key"),
        ] {
            let e = parse_encrypt_keys(&value).unwrap_err();
            assert_eq!(e.variable, ENCRYPT_KEYS_VAR);
            assert_eq!(e.problem, expected);
            assert!(!e.to_string().contains("SECRET") && !e.to_string().contains("AAEC"), "{e}");
        }
    }

    #[test]
    fn detokenize_keys_must_be_api_keys_and_need_token_keys() {
        let api = ApiKeys::from_env_value("alpha,beta").unwrap();
        let ring = parse_encrypt_keys(&format!("k1:{K32}")).unwrap();
        let ok = parse_detokenize_keys(Some("beta"), &api, Some(&ring)).unwrap();
        assert!(ok.verify("beta") && !ok.verify("alpha"));
        assert!(!parse_detokenize_keys(None, &api, None).unwrap().is_enabled());
        let problem = |v: &str, api: &ApiKeys, ring: Option<&Keyring>| {
            parse_detokenize_keys(Some(v), api, ring).unwrap_err().problem
        };
        assert_eq!(problem("gamma", &api, Some(&ring)), "every entry must also be one of WARDEN_API_KEYS");
        assert!(problem("beta", &api, None).starts_with("needs WARDEN_ENCRYPT_KEYS"));
        assert!(problem("beta", &ApiKeys::disabled(), Some(&ring)).starts_with("needs WARDEN_API_KEYS"));
        assert!(problem("sha256:zz", &api, Some(&ring)).contains("entry 1"));
    }
}
