//! OIDC verification of push requests (Pub/Sub push subscriptions and Eventarc triggers send
//! `Authorization: Bearer <Google-signed ID token>` when they have a push service account).
//! On when `WARDEN_PUSH_AUDIENCE` is set:
//!
//! - RS256 only (`none`, HS*, ES*... are refused before any key is looked up);
//! - issuer `https://accounts.google.com` or `accounts.google.com`; audience one of
//!   `WARDEN_PUSH_AUDIENCE`; `exp`, `iat` and `nbf` checked with [`LEEWAY`];
//! - `email` one of `WARDEN_PUSH_SERVICE_ACCOUNT` with `email_verified` true. It is required:
//!   anyone can obtain a Google-signed token for any audience, so the audience alone proves
//!   nothing about the sender;
//! - keys from `WARDEN_PUSH_JWKS_URL` (default Google's), cached for the response's
//!   `Cache-Control: max-age`, or from `WARDEN_PUSH_JWKS_FILE`. A token naming an unknown `kid`
//!   refreshes the set (Google rotates its keys), at most once per [`MIN_REFRESH`], so made-up
//!   key ids cannot turn into a flood of fetches.
//!
//! A refused request is answered 401 (no, bad or expired token) or 403 (a valid token from
//! another sender). Pub/Sub retries every non-2xx and then dead-letters: a misconfigured
//! audience or account therefore parks messages instead of losing them, which is intended.
//! A key set that cannot be fetched is a transient failure (503).

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, RwLock};
use warden_engine::ErrorCode;
use warden_service::error::ApiError;
use warden_service::settings::{ConfigError, Vars};

/// Google's key set for the ID tokens it signs.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// The issuers of Google-signed ID tokens.
const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Clock difference tolerated on `exp`, `iat` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Longest token read (Google's are about 1 KB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Least time between two key-set fetches caused by unknown key ids or failures.
pub const MIN_REFRESH: Duration = Duration::from_secs(30);

/// Largest key set read, and most keys kept from it (Google publishes two or three).
const MAX_JWKS_BYTES: usize = 64 * 1024;
const MAX_KEYS: usize = 32;

/// Key-set lifetime without `max-age`, its bounds, and a file's re-read interval.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
const FILE_TTL: Duration = Duration::from_secs(300);

/// One key-set fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS URL (https, or http on loopback).
    Url(String),
    /// A JWKS file.
    File(PathBuf),
}

/// The push authentication settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushAuth {
    /// Accepted `aud` values (`WARDEN_PUSH_AUDIENCE`, comma-separated).
    pub audiences: Vec<String>,
    /// Accepted `email` values (`WARDEN_PUSH_SERVICE_ACCOUNT`, comma-separated).
    pub service_accounts: Vec<String>,
    /// `WARDEN_PUSH_JWKS_URL` or `WARDEN_PUSH_JWKS_FILE`.
    pub keys: KeySource,
}

impl PushAuth {
    /// The settings, or `None` when push authentication is off (no `WARDEN_PUSH_AUDIENCE`).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<PushAuth>, ConfigError> {
        let vars = Vars::new(lookup);
        let list = |var: &str| -> Vec<String> {
            vars.get(var)
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let audiences = list("WARDEN_PUSH_AUDIENCE");
        let service_accounts = list("WARDEN_PUSH_SERVICE_ACCOUNT");
        let (url, file) = (vars.get("WARDEN_PUSH_JWKS_URL"), vars.get("WARDEN_PUSH_JWKS_FILE"));
        if audiences.is_empty() {
            if !service_accounts.is_empty() || url.is_some() || file.is_some() {
                return Err(ConfigError::new(
                    "WARDEN_PUSH_AUDIENCE",
                    "push authentication is configured but has no audience (the push endpoint URL)",
                ));
            }
            return Ok(None);
        }
        if service_accounts.is_empty() {
            return Err(ConfigError::new(
                "WARDEN_PUSH_SERVICE_ACCOUNT",
                "required with WARDEN_PUSH_AUDIENCE: any Google account can get a token for any audience",
            ));
        }
        let keys = match (url, file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("WARDEN_PUSH_JWKS_FILE", "set WARDEN_PUSH_JWKS_URL or this, not both"))
            }
            (None, Some(file)) => KeySource::File(PathBuf::from(file)),
            (Some(url), None) if !acceptable_url(&url) => {
                return Err(ConfigError::new(
                    "WARDEN_PUSH_JWKS_URL",
                    "expected an https:// URL (http only on loopback)",
                ))
            }
            (Some(url), None) => KeySource::Url(url),
            (None, None) => KeySource::Url(GOOGLE_JWKS_URL.to_owned()),
        };
        Ok(Some(PushAuth { audiences, service_accounts, keys }))
    }
}

fn acceptable_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else { return false };
    ["127.0.0.1:", "127.0.0.1/", "localhost:", "localhost/", "[::1]:", "[::1]/"].iter().any(|p| rest.starts_with(p))
}

/// Why a push request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No valid token: 401.
    Unauthorized(String),
    /// A valid token from a sender that is not allowed: 403.
    Forbidden(String),
    /// The key set could not be had: 503 (Pub/Sub redelivers).
    Unavailable(String),
}

impl Refusal {
    /// The reason, for the log line (never token contents).
    pub fn reason(&self) -> &str {
        match self {
            Refusal::Unauthorized(r) | Refusal::Forbidden(r) | Refusal::Unavailable(r) => r,
        }
    }

    /// The JSON error answer.
    pub fn into_api_error(self) -> ApiError {
        match self {
            Refusal::Unauthorized(r) => ApiError::new(ErrorCode::Unauthorized, r),
            Refusal::Forbidden(r) => ApiError::new(ErrorCode::Forbidden, r),
            Refusal::Unavailable(r) => ApiError::new(ErrorCode::Unavailable, r),
        }
    }
}

fn unauthorized(reason: impl Into<String>) -> Refusal {
    Refusal::Unauthorized(reason.into())
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    expires: Option<Instant>,
    last_fetch: Option<Instant>,
    last_error: Option<String>,
}

/// Verifies push tokens against the configured key set.
pub struct Verifier {
    auth: PushAuth,
    http: reqwest::Client,
    validation: Validation,
    min_refresh: Duration,
    cache: RwLock<KeyCache>,
    /// One fetch at a time: concurrent requests with a new `kid` share it.
    fetching: Mutex<()>,
    fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("auth", &self.auth).finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `auth`; keys are fetched on first use.
    pub fn new(auth: PushAuth) -> Result<Verifier, String> {
        Verifier::with_min_refresh(auth, MIN_REFRESH)
    }

    /// A verifier that refetches the key set at most once per `min_refresh` for unknown key
    /// ids or after a failure ([`MIN_REFRESH`] in the service; tests use less).
    pub fn with_min_refresh(auth: PushAuth, min_refresh: Duration) -> Result<Verifier, String> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("cannot create the key-set client: {e}"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&ISSUERS);
        validation.set_audience(&auth.audiences);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
        Ok(Verifier {
            auth,
            http,
            validation,
            min_refresh,
            cache: RwLock::new(KeyCache::default()),
            fetching: Mutex::new(()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many times the key set was fetched (or read) so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks a request's `Authorization` header.
    pub async fn verify(&self, authorization: Option<&http::HeaderValue>) -> Result<(), Refusal> {
        let value = authorization.ok_or_else(|| unauthorized("push request without an OIDC token (Authorization)"))?;
        if value.len() > MAX_TOKEN_LEN + 16 {
            return Err(unauthorized(format!("token longer than {MAX_TOKEN_LEN} bytes")));
        }
        let value = value.to_str().map_err(|_| unauthorized("Authorization is not ASCII"))?;
        let token = match value.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(unauthorized("Authorization is not a Bearer token")),
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(unauthorized(format!("token longer than {MAX_TOKEN_LEN} bytes")));
        }
        // `alg: none` and unknown algorithms already fail here: they are not `Algorithm`s.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthorized(format!("token header unreadable or algorithm unsupported: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(unauthorized(format!("token algorithm {:?} refused (RS256 only)", header.alg)));
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or_else(|| unauthorized("token without a usable key id (kid)"))?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation).map_err(refusal)?;
        let claims = data.claims;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let iat = claims.get("iat").and_then(Value::as_f64).unwrap_or(f64::MAX);
        #[allow(clippy::cast_precision_loss)] // seconds since 1970 fit an f64 exactly
        if iat > (now + LEEWAY).as_secs() as f64 {
            return Err(unauthorized("token issued in the future (iat)"));
        }
        let email = claims.get("email").and_then(Value::as_str);
        if !email.is_some_and(|e| self.auth.service_accounts.iter().any(|a| a == e)) {
            return Err(Refusal::Forbidden("token email is not an allowed push service account".into()));
        }
        let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
            || claims.get("email_verified").and_then(Value::as_str) == Some("true");
        if !verified {
            return Err(Refusal::Forbidden("token email is not verified (email_verified)".into()));
        }
        Ok(())
    }

    /// The key for `kid`: cached, or from a (rate-limited) fetch of the key set.
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        {
            let cache = self.cache.read().await;
            if cache.expires.is_some_and(|e| Instant::now() < e) {
                if let Some(key) = cache.keys.get(kid) {
                    return Ok(key.clone());
                }
            }
        }
        let _one = self.fetching.lock().await;
        let (fresh, known, recent, failing) = {
            let cache = self.cache.read().await;
            (
                cache.expires.is_some_and(|e| Instant::now() < e),
                cache.keys.get(kid).cloned(),
                cache.last_fetch.is_some_and(|t| t.elapsed() < self.min_refresh),
                // No key at all and the last fetch failed: the set is unavailable, not the kid unknown.
                cache.last_error.clone().filter(|_| cache.keys.is_empty()),
            )
        };
        match known {
            // Another request refreshed the set while this one waited, or the set is stale
            // and was fetched (or failed) moments ago: use what there is.
            Some(key) if fresh || recent => return Ok(key),
            None if recent => {
                return Err(match failing {
                    Some(e) => Refusal::Unavailable(e),
                    None => unauthorized("token key id (kid) is not in the push key set"),
                })
            }
            _ => {}
        }
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.last_fetch = Some(Instant::now());
        match fetched {
            Ok((keys, ttl)) => {
                cache.keys = keys;
                cache.expires = Some(Instant::now() + ttl);
                cache.last_error = None;
                cache
                    .keys
                    .get(kid)
                    .cloned()
                    .ok_or_else(|| unauthorized("token key id (kid) is not in the push key set"))
            }
            Err(e) => {
                crate::logging::log(
                    "WARNING",
                    "push key set not refreshed",
                    None,
                    Map::from_iter([("error".to_owned(), Value::from(e.as_str()))]),
                );
                cache.last_error = Some(format!("push key set unavailable: {e}"));
                // A stale key still verifies until the set can be fetched again.
                cache.keys.get(kid).cloned().ok_or(Refusal::Unavailable(format!("push key set unavailable: {e}")))
            }
        }
    }

    async fn fetch(&self) -> Result<(HashMap<String, DecodingKey>, Duration), String> {
        match &self.auth.keys {
            KeySource::File(path) => {
                let path = path.clone();
                let bytes = tokio::task::spawn_blocking(move || read_bounded(&path))
                    .await
                    .map_err(|e| format!("reading the key file failed: {e}"))??;
                Ok((parse_jwks(&bytes)?, FILE_TTL))
            }
            KeySource::Url(url) => {
                let mut resp = self.http.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("GET {url}: status {}", resp.status()));
                }
                let ttl = resp
                    .headers()
                    .get(http::header::CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok())
                    .map_or(DEFAULT_TTL, max_age);
                if resp.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
                    return Err(format!("GET {url}: key set larger than {MAX_JWKS_BYTES} bytes"));
                }
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(format!("GET {url}: key set larger than {MAX_JWKS_BYTES} bytes"));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok((parse_jwks(&body)?, ttl))
            }
        }
    }
}

fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_JWKS_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("{}: key set larger than {MAX_JWKS_BYTES} bytes", path.display()));
    }
    Ok(bytes)
}

/// The RS256 signing keys of a JWKS, by `kid`. Keys of other types or uses are skipped one by
/// one (a set may mix them), so one unknown entry does not void the others.
fn parse_jwks(bytes: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    let set: Value = serde_json::from_slice(bytes).map_err(|e| format!("key set is not JSON: {e}"))?;
    let Some(entries) = set.get("keys").and_then(Value::as_array) else {
        return Err(String::from("key set has no `keys` array"));
    };
    let mut keys = HashMap::new();
    for entry in entries.iter().take(MAX_KEYS) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else { continue };
        let usable = matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
            && jwk.common.key_algorithm.is_none_or(|a| a == KeyAlgorithm::RS256)
            && !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
        let Some(kid) = jwk.common.key_id.clone().filter(|k| usable && !k.is_empty()) else { continue };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, key);
        }
    }
    if keys.is_empty() {
        return Err(String::from("key set has no RS256 signing key with a kid"));
    }
    Ok(keys)
}

/// The `max-age` of a `Cache-Control` value, bounded; `no-store`/`no-cache` mean the shortest.
fn max_age(cache_control: &str) -> Duration {
    let mut ttl = DEFAULT_TTL;
    for directive in cache_control.split(',').map(str::trim) {
        let directive = directive.to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return MIN_TTL;
        }
        if let Some(secs) = directive.strip_prefix("max-age=").and_then(|s| s.trim_matches('"').parse::<u64>().ok()) {
            ttl = Duration::from_secs(secs);
        }
    }
    ttl.clamp(MIN_TTL, MAX_TTL)
}

fn refusal(e: jsonwebtoken::errors::Error) -> Refusal {
    match e.kind() {
        ErrorKind::ExpiredSignature => unauthorized("token expired (exp)"),
        ErrorKind::ImmatureSignature => unauthorized("token not yet valid (nbf)"),
        ErrorKind::InvalidAudience => unauthorized("token audience is not this push endpoint (aud)"),
        ErrorKind::InvalidIssuer => unauthorized("token issuer is not Google (iss)"),
        ErrorKind::InvalidSignature => unauthorized("token signature does not verify"),
        ErrorKind::MissingRequiredClaim(claim) => unauthorized(format!("token without the `{claim}` claim")),
        ErrorKind::InvalidAlgorithm => unauthorized("token algorithm does not match its key"),
        _ => unauthorized(format!("token refused: {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn key_set_lifetime_from_cache_control() {
        assert_eq!(max_age("public, max-age=19800, must-revalidate, no-transform"), Duration::from_secs(19800));
        assert_eq!(max_age("Max-Age=5"), MIN_TTL);
        assert_eq!(max_age("max-age=99999999"), MAX_TTL);
        assert_eq!(max_age("no-store"), MIN_TTL);
        assert_eq!(max_age("private"), DEFAULT_TTL);
        assert_eq!(max_age("max-age=abc"), DEFAULT_TTL);
    }

    #[test]
    fn loopback_is_the_only_plain_http() {
        assert!(acceptable_url(GOOGLE_JWKS_URL));
        assert!(acceptable_url("http://127.0.0.1:8080/certs") && acceptable_url("http://localhost/certs"));
        assert!(!acceptable_url("http://127.0.0.1.evil.example/certs") && !acceptable_url("ftp://x"));
    }
}
