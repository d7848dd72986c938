//! Warden's shared service layer: the HTTP router every HTTP-capable adapter serves
//! (wasm-safe: no tokio in the router), plus auth, budgets, rate limits, decision events,
//! audit lines, metrics and their stores behind small traits.

pub mod audit;
pub mod auth;
pub mod budget;
pub mod clock;
pub mod error;
pub mod events;
pub mod metrics;
#[cfg(feature = "native")]
pub mod native;
pub mod openapi;
pub mod policy_source;
pub mod ratelimit;
pub mod record;
pub mod router;
pub mod service;
