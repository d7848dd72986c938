//! Warden's runtime-neutral core: settings, the service (every operation of SPEC §2, the
//! message and document seams), the HTTP router every HTTP-capable adapter serves (wasm-safe:
//! no tokio in the router), auth, budgets, rate limits, decision events with retries and a
//! dead-letter queue, audit lines, metrics and their stores behind small traits.
//!
//! An adapter reads [`settings::Settings`], assembles a [`service::Service`] with
//! [`service::ServiceBuilder`] (natively: [`native::assemble`]) and maps its platform's
//! shapes onto [`router::router`], [`service::Service::handle_message`] and
//! [`service::Service::govern_document`].

pub mod audit;
pub mod auth;
pub mod budget;
pub mod clock;
#[cfg(feature = "native")]
mod dedupe_redis;
pub mod error;
pub mod events;
pub mod json;
pub mod metrics;
#[cfg(feature = "native")]
pub mod native;
pub mod openapi;
pub mod policy_source;
pub mod ratelimit;
pub mod record;
pub mod router;
pub mod service;
pub mod settings;
pub mod stream;
pub mod tokens;
