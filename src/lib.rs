//! The token authority: issues, verifies and revokes API tokens over gRPC.
//!
//! Layers, each depending only on those below it:
//! - [`proto`]: the generated gRPC/protobuf code of `tokenauthority.v1` (and `codec`, the
//!   protobuf codec it uses).
//! - [`domain`]: token format, hashing and the rules; no I/O.
//! - `store`: persistence behind one trait, on SQLite or PostgreSQL.
//! - `authority`: the use cases, with the verification cache and the watch streams.
//! - `grpc`: thin tonic services over the authority.
//! - `configuration`, `telemetry`, `metrics`, `connections`, `startup`: running the server
//!   (`connections` bounds what idle or slow clients can hold on its listeners).
//!
//! Beside them: `client`, the library backends use to verify tokens (a caching verifier and
//! a tower layer); `gateway`, verification for Envoy, nginx and Caddy (the rules, the
//! decision, forward-auth and the `edge` sidecar, on the client library); `console`, the
//! admin web console's listener (its embedded page, and gRPC-Web to the `grpc` services);
//! `tokenctl`, the admin CLI; [`credential`] and `watermarks`, shared by the server and the
//! client; `fuzzing`, the fuzz targets (not API).
//! Features: `server`, `client`, `cli` (all default).

mod codec;
pub mod credential;
pub mod domain;
pub mod proto;
#[cfg(any(feature = "server", feature = "client"))]
pub mod watermarks;

#[cfg(feature = "client")]
pub mod client;

#[cfg(any(feature = "server", feature = "cli"))]
pub mod private_file;

#[cfg(feature = "cli")]
pub mod tokenctl;

#[cfg(feature = "server")]
pub mod store;

#[cfg(feature = "server")]
pub mod authority;

#[cfg(feature = "server")]
pub mod grpc;

#[cfg(feature = "server")]
pub mod gateway;

#[cfg(feature = "server")]
pub mod console;

#[cfg(feature = "server")]
pub mod metrics;

#[cfg(feature = "server")]
pub mod configuration;

#[cfg(feature = "server")]
pub mod connections;

#[cfg(feature = "server")]
pub mod startup;

#[cfg(all(feature = "server", feature = "cli"))]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "server")]
pub mod telemetry;
