//! What the fuzz targets share: the bundled policy's gate and a service built once per process
//! (building them per input would measure setup, not the code under test).
#![allow(clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};
use warden_engine::budget::{Money, PriceTable};
use warden_engine::{Detector, Gate, Policy, TokenKey};
use warden_service::budget::MemoryBudgetStore;
use warden_service::clock::SystemClock;
use warden_service::policy_source::{PolicySource, BUNDLED_POLICY};
use warden_service::service::{Budgets, MemoryDedupe, Service, ServiceBuilder};
use warden_service::settings::Settings;

struct Engine {
    policy: Policy,
    key: TokenKey,
    detector: Detector,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine {
        policy: warden_engine::policy_file::parse_policy("bundled", BUNDLED_POLICY).expect("bundled policy parses"),
        key: TokenKey::new("fuzz-salt"),
        detector: Detector::new(),
    })
}

/// The detector and token key every target shares.
pub fn detector_and_key() -> (&'static Detector, &'static TokenKey) {
    let e = engine();
    (&e.detector, &e.key)
}

/// The gate of the bundled policy (what `warden serve` runs with default settings).
pub fn bundled_gate() -> Gate<'static> {
    let e = engine();
    Gate::new(&e.policy, &e.key, &e.detector)
}

/// A service with the bundled policy, default settings, memory budgets and message dedupe,
/// and a current-thread runtime to drive it; built on first use.
pub fn service() -> &'static (tokio::runtime::Runtime, Arc<Service>) {
    static SERVICE: OnceLock<(tokio::runtime::Runtime, Arc<Service>)> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        let settings = Settings::from_lookup(|_| None).expect("default settings");
        let mut config = settings.service_config();
        config.default_agent_id = Some("fuzz-agent".to_owned());
        let source = Arc::new(PolicySource::bundled().expect("bundled policy"));
        let service = ServiceBuilder::new(source, settings.token_key(), config)
            .clock(Arc::new(SystemClock::new()))
            .budgets(Budgets {
                store: Arc::new(MemoryBudgetStore::new(Money::from_dollars(10.0))),
                prices: PriceTable::builtin(),
            })
            .dedupe(Arc::new(MemoryDedupe::new(1000)))
            .build()
            .expect("service builds");
        (runtime, Arc::new(service))
    })
}

/// Checks what every error answer must be: a 4xx or 5xx status whose JSON body names the
/// problem (`error.code` and a non-empty `error.message`).
pub fn assert_error_body(status: u16, body: &serde_json::Value) {
    assert!((400..600).contains(&status), "error with status {status}: {body}");
    let code = body.pointer("/error/code").and_then(|v| v.as_str()).unwrap_or("");
    let message = body.pointer("/error/message").and_then(|v| v.as_str()).unwrap_or("");
    assert!(!code.is_empty() && !message.is_empty(), "error body without code/message: {body}");
}
