//! The client library for backend services: a [`CachingVerifier`] that answers
//! `verify(token, required_scopes)` from memory and keeps itself fresh from the authority's
//! `WatchRevocations` stream, and a tower [`VerifyLayer`] that puts it in front of a tonic
//! service.
//!
//! Build it without the server: `token-authority = { default-features = false, features =
//! ["client"] }`.
//!
//! Guarantees:
//! - A revocation (or any change that can alter an answer) reaches the cache as soon as the
//!   stream delivers it; resuming after a disconnect replays what was missed.
//! - Race-free: an answer computed at revision R is never cached if an event newer than R for
//!   its token, owner or account has already been applied (see [`crate::watermarks`]).
//! - Staleness bound: when the stream has been silent for longer than the configured bound,
//!   the cache is not trusted; every call goes to the authority, and if that fails too the
//!   call fails closed with [`VerifyError::Unavailable`], never a silent "valid".
//!
//! The verifier records its metrics (cache hits and misses, remote calls, reconnects,
//! staleness) through the `metrics` facade: see [`metrics`].

mod answer;
mod cache;
mod client_address;
mod config;
pub mod connect;
mod error;
mod layer;
pub mod metrics;
mod verifier;
mod watcher;

pub use answer::{Identity, Verification};
pub use client_address::TrustedProxies;
pub use config::VerifierConfig;
pub use error::VerifyError;
pub use layer::{VerifyLayer, VerifyService};
pub use verifier::{CachingVerifier, Requirements};
