//! The seams every adapter calls, without any cloud SDK: the message seam (Done, Duplicate,
//! Reject, Retry), the document seam (approve, modify, quarantine for text, JSON and binary)
//! and an adapter-supplied client address reaching the rate limiter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use async_trait::async_trait;
use axum::body::Body;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;
use warden_engine::budget::Money;
use warden_engine::{Decision, ErrorCode};
use warden_service::budget::{
    BudgetSnapshot, BudgetStore, MemoryBudgetStore, SpendOutcome, SpendRequest, StoreError, Transaction,
};
use warden_service::clock::FixedClock;
use warden_service::policy_source::PolicySource;
use warden_service::ratelimit::{MemoryRateLimiter, RateDecision, RateLimiter};
use warden_service::router::{router, AppState, ClientAddr};
use warden_service::service::document::DocumentKind;
use warden_service::service::{
    Budgets, Disposition, DocumentMeta, MemoryDedupe, MessageMeta, MessageOutcome, Service, ServiceBuilder,
    ServiceConfig,
};
use warden_service::settings::Settings;

fn builder(policy: &str) -> ServiceBuilder {
    let source = PolicySource::parse(policy, "test.yaml").unwrap();
    ServiceBuilder::new(Arc::new(source), warden_engine::TokenKey::new("salt"), ServiceConfig::default())
        .clock(Arc::new(FixedClock::new(1_700_000_000_000)))
}

const POLICY: &str = "version: v1\ntool_access:\n  crm:\n    action: redact\n  rm:\n    action: deny\n";

fn meta(id: &str) -> MessageMeta {
    MessageMeta { id: Some(id.into()), attempt: 1, default_agent_id: "queue-default".into(), request_id: None }
}

#[tokio::test]
async fn messages_are_done_once_then_duplicates() {
    let service = builder(POLICY).dedupe(Arc::new(MemoryDedupe::new(100))).build().unwrap();
    let body = br#"{"action":"precheck","tool":"crm","raw_text":"mail bob@corp.io"}"#;
    let MessageOutcome::Done(first) = service.handle_message(body, &meta("m-1")).await else { panic!() };
    assert_eq!(first["decision"], "transform");
    assert_eq!(first["raw_text_out"], "mail <USER_EMAIL>");
    let again = service.handle_message(body, &meta("m-1")).await;
    assert_eq!(again, MessageOutcome::Duplicate(first));
    // Another id is a new message.
    assert!(matches!(service.handle_message(body, &meta("m-2")).await, MessageOutcome::Done(_)));
    // The platform's default agent fills an evaluate that names none.
    let eval = br#"{"action":"evaluate","payload":{"note":"ssn 123-45-6789"}}"#;
    let MessageOutcome::Done(v) = service.handle_message(eval, &meta("m-3")).await else { panic!() };
    assert!(v["decision"].is_string(), "{v}");
}

#[tokio::test]
async fn malformed_messages_are_rejected_and_not_retried() {
    let service = builder(POLICY).dedupe(Arc::new(MemoryDedupe::new(100))).build().unwrap();
    for (body, code) in [
        (&b"{not json"[..], ErrorCode::InvalidJson),
        (br#"{"action":"explode"}"#, ErrorCode::InvalidRequest),
        (br#"{"action":"precheck","tool":"t"}"#, ErrorCode::InvalidRequest),
        (br#"[1,2]"#, ErrorCode::InvalidRequest),
    ] {
        match service.handle_message(body, &meta(&format!("bad-{}", body.len()))).await {
            MessageOutcome::Reject(e) => {
                assert_eq!(e.code, code);
                assert!(!e.code.retryable());
            }
            other => panic!("{other:?}"),
        }
    }
    // A rejected message redelivered is answered from the store, not evaluated again.
    let bad = br#"{"action":"precheck"}"#;
    assert!(matches!(service.handle_message(bad, &meta("r")).await, MessageOutcome::Reject(_)));
    assert!(matches!(service.handle_message(bad, &meta("r")).await, MessageOutcome::Duplicate(_)));
    // So is one that is not even JSON.
    assert!(matches!(service.handle_message(b"{not json", &meta("nj")).await, MessageOutcome::Reject(_)));
    assert!(matches!(service.handle_message(b"{not json", &meta("nj")).await, MessageOutcome::Duplicate(_)));
}

#[tokio::test]
async fn a_forgotten_message_runs_again() {
    // An adapter whose result publish failed forgets the id, so the redelivery publishes it.
    let service = builder(POLICY).dedupe(Arc::new(MemoryDedupe::new(100))).build().unwrap();
    let body = br#"{"action":"precheck","tool":"crm","raw_text":"hi"}"#;
    assert!(matches!(service.handle_message(body, &meta("f")).await, MessageOutcome::Done(_)));
    service.forget_message("f").await.unwrap();
    assert!(matches!(service.handle_message(body, &meta("f")).await, MessageOutcome::Done(_)));
    assert!(matches!(service.handle_message(body, &meta("f")).await, MessageOutcome::Duplicate(_)));
}

/// A budget store that fails until told otherwise.
struct FlakyBudgets {
    down: Mutex<bool>,
    inner: MemoryBudgetStore,
}

#[async_trait]
impl BudgetStore for FlakyBudgets {
    async fn status(&self, user: &str, now: i64) -> Result<BudgetSnapshot, StoreError> {
        self.inner.status(user, now).await
    }
    async fn check_and_spend(&self, req: SpendRequest, now: i64) -> Result<SpendOutcome, StoreError> {
        if *self.down.lock().unwrap() {
            return Err(StoreError::new("flaky", "connection refused"));
        }
        self.inner.check_and_spend(req, now).await
    }
    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError> {
        self.inner.set_limit(user, limit).await
    }
    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError> {
        self.inner.transactions(user, limit).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "flaky"
    }
}

#[tokio::test]
async fn a_store_outage_retries_the_message_and_charges_once() {
    let store =
        Arc::new(FlakyBudgets { down: Mutex::new(true), inner: MemoryBudgetStore::new(Money::from_dollars(10.0)) });
    let service = builder(POLICY)
        .dedupe(Arc::new(MemoryDedupe::new(100)))
        .budgets(Budgets { store: store.clone(), prices: warden_engine::budget::PriceTable::builtin() })
        .build()
        .unwrap();
    let body = br#"{"action":"precheck","tool":"crm","raw_text":"hello there","user_id":"alice"}"#;
    match service.handle_message(body, &meta("b-1")).await {
        MessageOutcome::Retry(e) => assert_eq!(e.code, ErrorCode::BudgetUnavailable),
        other => panic!("{other:?}"),
    }
    *store.down.lock().unwrap() = false;
    // The redelivery runs (the claim was released), spends once, and its own redelivery is a duplicate.
    assert!(matches!(service.handle_message(body, &meta("b-1")).await, MessageOutcome::Done(_)));
    assert!(matches!(service.handle_message(body, &meta("b-1")).await, MessageOutcome::Duplicate(_)));
    let txs = store.inner.transactions("alice", 10).await.unwrap();
    assert_eq!(txs.len(), 1, "{txs:?}");
    assert_eq!(txs[0].corr_id.as_deref(), Some("b-1"));
}

fn doc(name: &str, content_type: Option<&str>) -> DocumentMeta {
    DocumentMeta { source: "s3://uploads".into(), name: name.into(), content_type: content_type.map(str::to_owned) }
}

#[test]
fn documents_get_one_disposition_for_every_source() {
    let service = builder("version: v1\ndefaults:\n  ingress: { action: redact }\n").build().unwrap();
    let clean = service.govern_document(b"quarterly numbers look fine", &doc("a.txt", Some("text/plain")));
    assert_eq!(
        (clean.disposition, clean.kind, clean.decision),
        (Disposition::Approve, DocumentKind::Text, Decision::Allow)
    );
    assert_eq!(clean.output, None);

    let text = service.govern_document(b"call bob@corp.io", &doc("b.txt", None));
    assert_eq!((text.disposition, text.kind), (Disposition::Modify, DocumentKind::Text));
    assert_eq!(text.output.as_deref(), Some(&b"call <USER_EMAIL>"[..]));

    let json = service.govern_document(br#"{"user":{"email":"bob@corp.io","n":3}}"#, &doc("c.json", None));
    assert_eq!((json.disposition, json.kind), (Disposition::Modify, DocumentKind::Json));
    let out: Value = serde_json::from_slice(json.output.as_deref().unwrap()).unwrap();
    assert_eq!(out, json!({"user": {"email": "<USER_EMAIL>", "n": 3}}));

    let broken = service.govern_document(b"{\"user\":", &doc("d.json", Some("application/json")));
    assert_eq!((broken.disposition, broken.decision), (Disposition::Quarantine, Decision::Deny));
    assert_eq!(broken.reasons[0].to_string(), "error:invalid_json");

    let binary = service.govern_document(&[0xff, 0x00, 0x81, 0x92], &doc("scan.pdf", Some("application/pdf")));
    assert_eq!((binary.disposition, binary.kind), (Disposition::Approve, DocumentKind::Binary));
    let leaky = service.govern_document(&[0xff, 0x00], &doc("ssn 123-45-6789.bin", None));
    assert_eq!((leaky.disposition, leaky.kind), (Disposition::Quarantine, DocumentKind::Binary));
}

#[test]
fn denied_and_oversized_documents_are_quarantined() {
    let settings = Settings::from_lookup(|k| (k == "WARDEN_DOCUMENT_LIMIT").then(|| "64".to_owned())).unwrap();
    let source = PolicySource::parse(
        "version: v1\ndefaults:\n  ingress: { action: redact, allow_pii: { PII:us_ssn: deny } }\n",
        "p",
    )
    .unwrap();
    let service =
        ServiceBuilder::from_settings(&settings, Arc::new(source)).clock(Arc::new(FixedClock::new(0))).build().unwrap();
    let denied = service.govern_document(b"ssn 123-45-6789", &doc("e.txt", None));
    assert_eq!((denied.disposition, denied.decision), (Disposition::Quarantine, Decision::Deny));
    let big = service.govern_document(&[b'a'; 65], &doc("f.txt", None));
    assert_eq!((big.disposition, big.kind), (Disposition::Quarantine, DocumentKind::Unread));
    assert_eq!(big.reasons[0].to_string(), "error:payload_too_large");
}

/// Records the keys it is asked about.
#[derive(Default)]
struct Recording(Mutex<Vec<String>>);

#[async_trait]
impl RateLimiter for Recording {
    async fn hit(&self, key: &str, _now: i64) -> Result<RateDecision, StoreError> {
        self.0.lock().unwrap().push(key.to_owned());
        Ok(RateDecision { allowed: true, limit: 10, remaining: 9, retry_after_secs: 1 })
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "recording"
    }
}

#[tokio::test]
async fn an_adapter_supplied_client_address_reaches_the_rate_limiter() {
    let limiter = Arc::new(Recording::default());
    let service: Arc<Service> = Arc::new(builder(POLICY).rate_limiter(limiter.clone()).build().unwrap());
    let app = router(AppState { service, api_keys: None, metrics: None });
    for ip in ["203.0.113.7", "198.51.100.9"] {
        let mut req = http::Request::post("/api/v1/redact").body(Body::from(r#"{"text":"hi"}"#)).unwrap();
        req.extensions_mut().insert(ClientAddr(ip.parse::<IpAddr>().unwrap()));
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let keys = limiter.0.lock().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "two anonymous clients must not share a bucket: {keys:?}");
    assert!(keys[0].contains("203.0.113.7"), "{keys:?}");
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let limiter = Arc::new(MemoryRateLimiter::new(NonZeroU32::new(1).unwrap()));
    let settings = Settings::from_lookup(|k| (k == "WARDEN_TRUSTED_PROXIES").then(|| "10.0.0.0/8".to_owned())).unwrap();
    let source = PolicySource::bundled().unwrap();
    let service = ServiceBuilder::from_settings(&settings, Arc::new(source))
        .clock(Arc::new(FixedClock::new(0)))
        .rate_limiter(limiter)
        .build()
        .unwrap();
    let app = router(AppState { service: Arc::new(service), api_keys: None, metrics: None });
    let send = |peer: &str, xff: &str| {
        let mut req = http::Request::post("/api/v1/redact")
            .header("x-forwarded-for", xff)
            .body(Body::from(r#"{"text":"hi"}"#))
            .unwrap();
        req.extensions_mut().insert(ClientAddr(peer.parse().unwrap()));
        app.clone().oneshot(req)
    };
    // Behind the proxy, two clients get a request each.
    assert_eq!(send("10.0.0.1", "198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(send("10.0.0.1", "198.51.100.2").await.unwrap().status(), 200);
    assert_eq!(send("10.0.0.1", "198.51.100.2").await.unwrap().status(), 429);
    // An untrusted peer cannot escape its bucket by forging the header.
    assert_eq!(send("203.0.113.5", "198.51.100.3").await.unwrap().status(), 200);
    assert_eq!(send("203.0.113.5", "198.51.100.4").await.unwrap().status(), 429);
}
