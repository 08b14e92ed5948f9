//! The tonic services: translate protobuf to domain values, authenticate the caller, call
//! the authority, translate back. No rule lives here.

mod admin_service;
pub(crate) mod convert;
mod credential;
pub mod limits;
pub mod panics;
pub mod rpc_metrics;
mod status;
mod token_service;

pub use admin_service::AdminApi;
pub use token_service::TokenApi;
