//! The client library for backend services: a [`CachingVerifier`] that answers
//! `verify(token, required_scopes)` from memory and keeps itself fresh from the authority's
//! `WatchRevocations` stream, and a tower [`VerifyLayer`] that puts it in front of a tonic
//! service.
//!
//! Build it without the server: `token-authority = { default-features = false, features =
//! ["client"] }`.
//!
//! Guarantees (each has a test through the real server: `tests/api/client.rs`,
//! `tests/api/client_fail_closed.rs`):
//! - A revocation (or any change that can alter an answer) reaches the cache as soon as the
//!   stream delivers it; resuming after a disconnect replays what was missed.
//! - Never older than what it heard: an answer computed at revision R is neither cached nor
//!   handed out as valid if an event newer than R for its token, owner or account has been
//!   applied (see [`crate::watermarks`]). The authority is asked from the revision the
//!   stream has delivered, so a lagging replica waits for it or the call fails closed.
//! - Any stream loss fails closed at once: a stream that ends, fails, is cut off, or stays
//!   silent past the staleness bound stops valid answers from the cache until a new stream
//!   (on a new connection) has replayed what was missed; meanwhile the authority is asked, and
//!   if it cannot answer the call fails with [`VerifyError::Unavailable`], never a silent
//!   "valid". Refusals are still served from the cache (fail closed either way).
//! - Clock skew: a token's expiry becomes a deadline measured by the authority's clock (its
//!   answer's `verify_time`), from when the verifier asked: the host's wall clock plays no
//!   part, unless the authority is too old to send `verify_time`.
//! - A restored database (a new `history` in checkpoints) drops every answer and watermark.
//! - The remote load is bounded: one call per uncached token at a time, at most
//!   `max_remote_calls` in flight; the cache is bounded in bytes.
//!
//! The verifier records its metrics (cache hits and misses, remote calls, reconnects,
//! staleness) through the `metrics` facade: see [`metrics`].
//!
//! Map: `verifier.rs` answers (cache, then the authority); `trust.rs` holds what it and the
//! stream share, and when the cache may be believed; `watcher.rs` follows the stream;
//! `cache.rs` and [`crate::watermarks`] decide which answers are current; `flights.rs`
//! shares one call among concurrent misses; `layer.rs` puts it all in front of a service.

mod answer;
mod cache;
mod client_address;
mod config;
pub mod connect;
mod error;
mod flights;
mod layer;
pub mod metrics;
mod trust;
mod verifier;
mod watcher;

pub use answer::{Identity, Verification};
pub use client_address::TrustedProxies;
pub use config::VerifierConfig;
pub use error::VerifyError;
pub use layer::{VerifyLayer, VerifyService};
pub use verifier::{CachingVerifier, Requirements};
