//! Verification at the gateway: the answers that let Envoy, nginx, Caddy or Traefik guard
//! a service in any language, from the same rules and the same caches as the Rust client
//! library.
//!
//! - `path.rs`: the request path as rules match it, proof against path tricks;
//! - `routes.rs`: the rules file mapping methods and paths to the scopes they need;
//! - `decision.rs`: the decision on one request, and how it reads in HTTP;
//! - `forward_auth.rs`: the HTTP forward-auth endpoint (nginx, Caddy, Traefik);
//! - `ext_authz.rs`: Envoy's external authorization gRPC service;
//! - `metrics.rs`: the decisions' series;
//! - `edge.rs`: `token-authority edge`, the sidecar that serves all of it beside a gateway
//!   from a [`CachingVerifier`](crate::client::CachingVerifier) kept fresh by
//!   WatchRevocations.
//!
//! The authority serves the same `Check` on its own port (`grpc/ext_authz.rs`), deciding
//! with this module from its own verifications.

pub mod decision;
pub mod edge;
pub mod ext_authz;
pub mod forward_auth;
pub mod metrics;
pub mod path;
pub mod routes;

pub use decision::{Decision, GatewayRequest, IDENTITY_HEADERS, Outcome, Refusal};
pub use path::{PathError, RequestPath};
pub use routes::{Access, Ambiguous, Route, Routes, RulesError};
