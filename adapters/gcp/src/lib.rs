//! Warden on Google Cloud. Rust is not a Cloud Functions runtime, so the Tork guide's two
//! functions become one Cloud Run service (Cloud Functions gen2 runs on Cloud Run) and a pull
//! worker:
//!
//! - [`http`]: the core router on `0.0.0.0:$PORT` plus `POST /pubsub/push` (push
//!   subscriptions, wrapped or unwrapped, and Eventarc CloudEvents, also at `/`);
//! - [`pull`]: `warden-gcp pull`, streaming pull with the official `google-cloud-pubsub` client;
//! - [`push`] maps every delivery shape onto one message, [`process`] runs it through the
//!   core's message seam and publishes its result ([`results`]) before acknowledging.

pub mod clients;
pub mod config;
pub mod http;
pub mod logging;
pub mod process;
pub mod pull;
pub mod push;
pub mod results;
