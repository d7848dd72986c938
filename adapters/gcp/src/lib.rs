//! Warden on Google Cloud. Rust is not a Cloud Functions runtime, so the Tork guide's two
//! functions become one Cloud Run service (Cloud Functions gen2 runs on Cloud Run) and a pull
//! worker:
//!
//! - [`http`]: the core router on `0.0.0.0:$PORT` plus `POST /pubsub/push` (push
//!   subscriptions, wrapped or unwrapped, and Eventarc CloudEvents, also at `/`);
//! - [`pull`]: `warden-gcp pull`, streaming pull with the official `google-cloud-pubsub` client;
//! - [`push`] maps every delivery shape onto one message, [`process`] runs it through the
//!   core's message seam and publishes its result ([`results`]) before acknowledging;
//! - [`oidc`] verifies the push subscription's OIDC token when configured.
//!
//! Without the default `cloud` feature only the pure parts build ([`push`], [`config`],
//! [`logging`]): the fuzz crate (`fuzz/fuzz_targets/gcp_events.rs`) uses them that way.

#[cfg(feature = "cloud")]
pub mod clients;
pub mod config;
#[cfg(feature = "cloud")]
pub mod http;
pub mod logging;
#[cfg(feature = "cloud")]
pub mod oidc;
#[cfg(feature = "cloud")]
pub mod process;
#[cfg(feature = "cloud")]
pub mod pull;
pub mod push;
#[cfg(feature = "cloud")]
pub mod results;
