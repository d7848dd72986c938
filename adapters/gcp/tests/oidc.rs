//! Push OIDC verification (`warden_gcp::oidc`) against key sets served over loopback and read
//! from a file, with RSA keys generated for the run: a valid token, wrong audience, wrong or
//! unverified email, expired and future tokens, a bad signature, an unknown `kid` refreshing
//! the set (rate-limited), `alg: none`, HS256 (also the RSA-key-as-HMAC-secret confusion), and
//! the key set's `Cache-Control: max-age`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "common/keys.rs"]
mod keys;

use axum::http::{header, HeaderValue};
use keys::{jwks, now, push_claims, TestKey, PUSH_ACCOUNT};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warden_gcp::oidc::{KeySource, PushAuth, Refusal, Verifier};

const AUDIENCE: &str = "https://warden-abc-uc.a.run.app/pubsub/push";

/// A JWKS endpoint on loopback serving whatever `set` holds, counting requests.
struct KeyServer {
    url: String,
    set: Arc<Mutex<Value>>,
    hits: Arc<AtomicU64>,
}

impl KeyServer {
    async fn start(initial: Value, cache_control: &'static str) -> KeyServer {
        let set = Arc::new(Mutex::new(initial));
        let hits = Arc::new(AtomicU64::new(0));
        let (s, h) = (Arc::clone(&set), Arc::clone(&hits));
        let app = axum::Router::new().route(
            "/oauth2/v3/certs",
            axum::routing::get(move || {
                let (s, h) = (Arc::clone(&s), Arc::clone(&h));
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = s.lock().unwrap().to_string();
                    ([(header::CACHE_CONTROL, cache_control), (header::CONTENT_TYPE, "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/oauth2/v3/certs", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        KeyServer { url, set, hits }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A token with no signature at all: `alg: none`.
fn unsigned_token(kid: &str, claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let header = json!({"alg": "none", "kid": kid, "typ": "JWT"});
    format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn auth(keys: KeySource) -> PushAuth {
    PushAuth { audiences: vec![AUDIENCE.to_owned()], service_accounts: vec![PUSH_ACCOUNT.to_owned()], keys }
}

async fn check(verifier: &Verifier, token: &str) -> Result<(), Refusal> {
    verifier.verify(Some(&HeaderValue::from_str(&format!("Bearer {token}")).unwrap())).await
}

fn unauthorized(outcome: Result<(), Refusal>, reason: &str) {
    match outcome {
        Err(Refusal::Unauthorized(r)) => assert!(r.contains(reason), "{r:?} does not say {reason:?}"),
        other => panic!("expected 401 ({reason}), got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_checked_against_a_served_key_set() {
    let key = TestKey::generate("key-1");
    let server = KeyServer::start(jwks(&[&key]), "public, max-age=19800, must-revalidate, no-transform").await;
    let verifier = Verifier::new(auth(KeySource::Url(server.url.clone()))).unwrap();

    assert_eq!(check(&verifier, &key.push_token(AUDIENCE)).await, Ok(()));
    assert_eq!(check(&verifier, &key.push_token(AUDIENCE)).await, Ok(()));
    assert_eq!(server.hits(), 1, "the key set is cached for its max-age");
    // Scheme names are case-insensitive.
    let lower = HeaderValue::from_str(&format!("bearer {}", key.push_token(AUDIENCE))).unwrap();
    assert_eq!(verifier.verify(Some(&lower)).await, Ok(()));

    let mut claims = push_claims("https://other-service.a.run.app/");
    unauthorized(check(&verifier, &key.sign(json!({}), &claims)).await, "audience");
    claims = push_claims(AUDIENCE);
    claims["iss"] = json!("https://evil.example.com");
    unauthorized(check(&verifier, &key.sign(json!({}), &claims)).await, "issuer");
    claims = push_claims(AUDIENCE);
    claims["exp"] = json!(now() - 120);
    claims["iat"] = json!(now() - 3720);
    unauthorized(check(&verifier, &key.sign(json!({}), &claims)).await, "expired");
    claims = push_claims(AUDIENCE);
    claims["nbf"] = json!(now() + 600);
    unauthorized(check(&verifier, &key.sign(json!({}), &claims)).await, "nbf");
    claims = push_claims(AUDIENCE);
    claims["iat"] = json!(now() + 600);
    unauthorized(check(&verifier, &key.sign(json!({}), &claims)).await, "iat");
    claims = push_claims(AUDIENCE);
    claims.as_object_mut().unwrap().remove("exp");
    unauthorized(check(&verifier, &key.sign(json!({}), &claims)).await, "exp");

    claims = push_claims(AUDIENCE);
    claims["email"] = json!("someone-else@example.iam.gserviceaccount.com");
    assert!(matches!(check(&verifier, &key.sign(json!({}), &claims)).await, Err(Refusal::Forbidden(_))));
    claims = push_claims(AUDIENCE);
    claims["email_verified"] = json!(false);
    assert!(matches!(check(&verifier, &key.sign(json!({}), &claims)).await, Err(Refusal::Forbidden(_))));
    claims.as_object_mut().unwrap().remove("email");
    assert!(matches!(check(&verifier, &key.sign(json!({}), &claims)).await, Err(Refusal::Forbidden(_))));

    // Signed by another key under the same kid.
    let impostor = TestKey::generate("key-1");
    unauthorized(check(&verifier, &impostor.push_token(AUDIENCE)).await, "signature");
    // A valid signature over other claims.
    let token = key.push_token(AUDIENCE);
    let forged = {
        let parts: Vec<&str> = token.split('.').collect();
        let other = key.push_token("https://other-service.a.run.app/");
        format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2])
    };
    unauthorized(check(&verifier, &forged).await, "signature");
    assert_eq!(server.hits(), 1, "no refused token fetched the key set again");
}

#[tokio::test]
async fn algorithms_other_than_rs256_are_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let key = TestKey::generate("key-1");
    let server = KeyServer::start(jwks(&[&key]), "max-age=3600").await;
    let verifier = Verifier::new(auth(KeySource::Url(server.url.clone()))).unwrap();
    let claims = push_claims(AUDIENCE);

    unauthorized(check(&verifier, &unsigned_token("key-1", &claims)).await, "algorithm");
    for alg in ["RS384", "RS512", "PS256", "ES256"] {
        unauthorized(check(&verifier, &key.sign(json!({ "alg": alg }), &claims)).await, "RS256 only");
    }
    // HS256 keyed with the RSA public key's modulus, the classic confusion attack.
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "key-1", "typ": "JWT"}).to_string());
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let secret = URL_SAFE_NO_PAD.decode(key.jwk()["n"].as_str().unwrap()).unwrap();
    let mac =
        aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret), input.as_bytes());
    unauthorized(check(&verifier, &format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))).await, "RS256 only");

    // Tokens without a kid, garbage, oversized tokens, other schemes, no header at all.
    let token = key.sign(json!({"kid": null}), &claims);
    unauthorized(check(&verifier, &token).await, "key id");
    unauthorized(check(&verifier, "not.a.jwt").await, "unreadable");
    unauthorized(check(&verifier, &"a".repeat(9000)).await, "longer than");
    let basic = HeaderValue::from_static("Basic dXNlcjpwYXNz");
    unauthorized(verifier.verify(Some(&basic)).await, "Bearer");
    unauthorized(verifier.verify(None).await, "without an OIDC token");
    assert_eq!(server.hits(), 0, "nothing refused by its header fetched keys");
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_key_set_at_a_bounded_rate() {
    let (old, new) = (TestKey::generate("old"), TestKey::generate("new"));
    let server = KeyServer::start(jwks(&[&old]), "max-age=3600").await;
    let min_refresh = Duration::from_secs(1);
    let verifier = Verifier::with_min_refresh(auth(KeySource::Url(server.url.clone())), min_refresh).unwrap();
    assert_eq!(check(&verifier, &old.push_token(AUDIENCE)).await, Ok(()));
    tokio::time::sleep(min_refresh).await;
    // Google rotated its keys: the new kid is fetched although the cached set is fresh.
    *server.set.lock().unwrap() = jwks(&[&old, &new]);
    assert_eq!(check(&verifier, &new.push_token(AUDIENCE)).await, Ok(()));
    assert_eq!(server.hits(), 2);
    // Made-up kids right after: refused without fetching again.
    let strangers: Vec<String> =
        (0..8).map(|i| old.sign(json!({ "kid": format!("made-up-{i}") }), &push_claims(AUDIENCE))).collect();
    for (i, token) in strangers.iter().enumerate() {
        unauthorized(check(&verifier, token).await, "not in the push key set");
        if i == 0 {
            // Once the interval has passed, one more refresh is allowed.
            tokio::time::sleep(min_refresh).await;
        }
    }
    assert_eq!(server.hits(), 3, "one refresh per interval, not one per unknown kid");
    assert_eq!(check(&verifier, &old.push_token(AUDIENCE)).await, Ok(()));
    assert_eq!(verifier.fetches(), server.hits());
}

#[tokio::test]
async fn key_set_from_a_file_and_unavailable_key_sets() {
    let key = TestKey::generate("file-key");
    let dir = std::env::temp_dir().join(format!("warden-gcp-oidc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    // Entries of other kinds are skipped, not fatal.
    let mut set = jwks(&[&key]);
    set["keys"].as_array_mut().unwrap().push(json!({"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA"}));
    set["keys"].as_array_mut().unwrap().push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
    std::fs::write(&file, set.to_string()).unwrap();
    let verifier = Verifier::new(auth(KeySource::File(file.clone()))).unwrap();
    assert_eq!(check(&verifier, &key.push_token(AUDIENCE)).await, Ok(()));
    assert_eq!(verifier.fetches(), 1);
    std::fs::remove_dir_all(&dir).unwrap();

    // Nothing listens there: 503, so Pub/Sub redelivers; and not refetched on every request.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/certs");
    let verifier = Verifier::new(auth(KeySource::Url(url))).unwrap();
    for _ in 0..3 {
        match check(&verifier, &key.push_token(AUDIENCE)).await {
            Err(Refusal::Unavailable(r)) => assert!(r.contains("key set unavailable"), "{r}"),
            other => panic!("expected 503, got {other:?}"),
        }
    }
    assert_eq!(verifier.fetches(), 1);

    // A key set that is not one.
    let server = KeyServer::start(json!({"keys": "none"}), "max-age=60").await;
    let verifier = Verifier::new(auth(KeySource::Url(server.url.clone()))).unwrap();
    assert!(matches!(check(&verifier, &key.push_token(AUDIENCE)).await, Err(Refusal::Unavailable(_))));
}

#[test]
fn settings() {
    let parse = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        PushAuth::from_lookup(&move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    };
    assert_eq!(parse(&[]).unwrap(), None);
    let a =
        parse(&[("WARDEN_PUSH_AUDIENCE", "https://a/pubsub/push, https://a"), ("WARDEN_PUSH_SERVICE_ACCOUNT", "p@x")])
            .unwrap()
            .unwrap();
    assert_eq!(a.audiences, ["https://a/pubsub/push", "https://a"]);
    assert_eq!(a.keys, KeySource::Url(warden_gcp::oidc::GOOGLE_JWKS_URL.to_owned()));
    let a = parse(&[
        ("WARDEN_PUSH_AUDIENCE", "a"),
        ("WARDEN_PUSH_SERVICE_ACCOUNT", "p"),
        ("WARDEN_PUSH_JWKS_FILE", "/k.json"),
    ]);
    assert_eq!(a.unwrap().unwrap().keys, KeySource::File("/k.json".into()));
    for (pairs, variable) in [
        (&[("WARDEN_PUSH_SERVICE_ACCOUNT", "p")][..], "WARDEN_PUSH_AUDIENCE"),
        (&[("WARDEN_PUSH_AUDIENCE", "a")], "WARDEN_PUSH_SERVICE_ACCOUNT"),
        (
            &[
                ("WARDEN_PUSH_AUDIENCE", "a"),
                ("WARDEN_PUSH_SERVICE_ACCOUNT", "p"),
                ("WARDEN_PUSH_JWKS_URL", "http://example.com/k"),
            ],
            "WARDEN_PUSH_JWKS_URL",
        ),
        (
            &[
                ("WARDEN_PUSH_AUDIENCE", "a"),
                ("WARDEN_PUSH_SERVICE_ACCOUNT", "p"),
                ("WARDEN_PUSH_JWKS_URL", "https://k"),
                ("WARDEN_PUSH_JWKS_FILE", "f"),
            ],
            "WARDEN_PUSH_JWKS_FILE",
        ),
    ] {
        assert_eq!(parse(pairs).unwrap_err().variable, variable, "{pairs:?}");
    }
}
