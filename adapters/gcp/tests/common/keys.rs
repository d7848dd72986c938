//! RSA keys generated per test run and RS256 ID tokens signed with them, shaped like the ones
//! Pub/Sub push sends, for the OIDC tests (shared by `tests/oidc.rs` and the emulator suite).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://accounts.google.com";
pub const PUSH_ACCOUNT: &str = "warden-push@warden-test.iam.gserviceaccount.com";

/// A signing key with its key id.
pub struct TestKey {
    pub kid: String,
    pair: KeyPair,
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        TestKey { kid: kid.to_owned(), pair: KeyPair::generate(KeySize::Rsa2048).unwrap() }
    }

    /// The public key as a JWKS entry, as Google publishes it.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// An RS256 token with `header` (its `alg` and `kid` added unless given) and `claims`.
    pub fn sign(&self, mut header: Value, claims: &Value) -> String {
        header.as_object_mut().unwrap().entry("alg").or_insert(json!("RS256"));
        header.as_object_mut().unwrap().entry("kid").or_insert(json!(self.kid));
        header.as_object_mut().unwrap().entry("typ").or_insert(json!("JWT"));
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A valid push token for `audience` from [`PUSH_ACCOUNT`].
    pub fn push_token(&self, audience: &str) -> String {
        self.sign(json!({}), &push_claims(audience))
    }
}

/// A key set of `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The claims of a Pub/Sub push token.
pub fn push_claims(audience: &str) -> Value {
    let now = now();
    json!({
        "aud": audience, "iss": ISSUER, "azp": "1234567890", "sub": "1234567890",
        "email": PUSH_ACCOUNT, "email_verified": true, "iat": now, "exp": now + 3600,
    })
}
