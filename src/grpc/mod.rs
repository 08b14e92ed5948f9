//! The tonic services: translate protobuf to domain values, authenticate the caller, call
//! the authority, translate back. No rule lives here. `server.rs` puts them together with
//! health (`health.rs`), reflection and the layers every call passes through;
//! `ext_authz.rs` is Envoy's `Check`, served when the server has gateway rules.

mod admin_service;
pub(crate) mod convert;
mod credential;
pub mod ext_authz;
pub mod health;
pub mod limits;
pub mod panics;
pub mod rpc_metrics;
pub mod server;
mod status;
mod token_service;

pub use admin_service::AdminApi;
pub use token_service::TokenApi;
