//! Warden's engine: policy model, PII detection, transforms, tokenization, decisions and
//! budget arithmetic. Pure: no I/O, no clock, no randomness, no global state. Time, salts
//! and stores are passed in by the caller, so the same code runs natively and in wasm.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod api;
pub mod budget;
pub mod detect;
pub mod eval;
pub mod json_mode;
pub mod pii;
pub mod policy;
#[cfg(feature = "yaml")]
pub mod policy_file;
pub mod text;
pub mod token;

pub use api::{CheckRequest, CheckResponse, Context, Direction};
pub use detect::Detector;
pub use eval::{Decision, Gate, PolicyId, Verdict};
pub use pii::{PiiKind, PiiType};
pub use policy::{OnError, Policy, PolicyError};
pub use token::TokenKey;

/// Version of the engine (and of Warden), reported by `/api/v1/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
