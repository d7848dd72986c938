//! What the service layer adds to a request over the bare engine: the same 1 KB precheck
//! through the engine, `Service::run` (without and with memory stores, metrics and audit off),
//! the full axum router (JSON in/out), and the router with the SQLite budget store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use axum::body::Body;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use tower::ServiceExt;
use warden_engine::budget::{Money, PriceTable};
use warden_engine::policy_file::parse_policy;
use warden_engine::{CheckRequest, Detector, Direction, Gate, TokenKey};
use warden_service::budget::{MemoryBudgetStore, SqliteBudgetStore};
use warden_service::clock::SystemClock;
use warden_service::metrics::Metrics;
use warden_service::policy_source::PolicySource;
use warden_service::ratelimit::MemoryRateLimiter;
use warden_service::router::{router, AppState};
use warden_service::service::{Budgets, Operation, RequestMeta, Service, ServiceBuilder, ServiceConfig};

const POLICY: &str = include_str!("../../../policies/policy.tool_access.yaml");

/// A ~1 KB tool request with a few PII values.
fn request_text() -> String {
    let mut t =
        String::from("Please verify the customer alice@example.com with SSN 123-45-6789 and call +1 415 555 0132. ");
    while t.len() < 1000 {
        t.push_str("The agent summarises the ticket history, checks the order status and drafts a reply. ");
    }
    t
}

fn body(text: &str, user: Option<&str>) -> serde_json::Value {
    let mut v =
        serde_json::json!({"tool": "verify_identity", "scope": "net.external", "raw_text": text, "corr_id": "bench"});
    if let Some(u) = user {
        v["user_id"] = serde_json::json!(u);
        v["tool_config"] = serde_json::json!({"metadata": {"model": "gpt-4o-mini"}});
    }
    v
}

fn service(budgets: Option<Budgets>, stores: bool) -> Service {
    let policy = parse_policy("policy.yaml", POLICY).unwrap();
    let mut s = ServiceBuilder::new(
        Arc::new(PolicySource::new(policy, "bench")),
        TokenKey::new("bench-salt"),
        ServiceConfig::default(),
    )
    .clock(Arc::new(SystemClock::new()));
    if stores {
        s = s
            .rate_limiter(Arc::new(MemoryRateLimiter::new(NonZeroU32::new(u32::MAX).unwrap())))
            .observer(Arc::new(Metrics::new()));
    }
    if let Some(b) = budgets {
        s = s.budgets(b);
    }
    s.build().unwrap()
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let text = request_text();
    let mut g = c.benchmark_group("precheck_1kb");

    let policy = parse_policy("policy.yaml", POLICY).unwrap();
    let key = TokenKey::new("bench-salt");
    let detector = Detector::new();
    let gate = Gate::new(&policy, &key, &detector);
    let req: CheckRequest = serde_json::from_value(body(&text, None)).unwrap();
    g.bench_function("engine", |b| b.iter(|| black_box(gate.check(black_box(&req), Direction::Ingress))));

    let bare = service(None, false);
    let meta = RequestMeta::default();
    g.bench_function("service", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(bare.run(Operation::Precheck, body(&text, None), &meta).await.unwrap()) })
    });

    // Spend is huge-limit so every request is recorded (the expensive path).
    let memory =
        Budgets { store: Arc::new(MemoryBudgetStore::new(Money::from_dollars(1e9))), prices: PriceTable::builtin() };
    let full = service(Some(memory), true);
    g.bench_function("service+memory_stores+metrics", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(full.run(Operation::Precheck, body(&text, Some("u1")), &meta).await.unwrap()) })
    });

    let app = router(AppState { service: Arc::new(service(None, true)), api_keys: None, metrics: None });
    let bytes = serde_json::to_vec(&body(&text, None)).unwrap();
    g.bench_function("router_http", |b| {
        b.to_async(&rt).iter(|| async {
            let req = http::Request::post("/api/v1/precheck").body(Body::from(bytes.clone())).unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            black_box(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap())
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteBudgetStore::open(dir.path().join("budgets.sqlite3"), Money::from_dollars(1e9)).unwrap();
    let sqlite = Budgets { store: Arc::new(sqlite), prices: PriceTable::builtin() };
    let app = router(AppState { service: Arc::new(service(Some(sqlite), true)), api_keys: None, metrics: None });
    let bytes = serde_json::to_vec(&body(&text, Some("u1"))).unwrap();
    g.bench_function("router_http+sqlite_budget", |b| {
        b.to_async(&rt).iter(|| async {
            let req = http::Request::post("/api/v1/precheck").body(Body::from(bytes.clone())).unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            black_box(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
