//! The test harness, one job per file:
//!
//! - `app.rs`: [`TestApp`], the real server in process on a random port over a real
//!   database (SQLite or PostgreSQL, per the test's backend); its clock and background work
//!   are the test's to drive;
//! - `clients.rs`: generated gRPC clients presenting a given credential;
//! - `fixtures.rs`: tenants, principals and tokens made through the API;
//! - `watching.rs`: reading WatchRevocations streams until a condition holds;
//! - `responses.rs`: expected status codes, update masks, verification codes;
//! - `database.rs`: direct SQL, for what no RPC can set up;
//! - `gateway.rs`: the edge, nginx and an echoing upstream, and raw HTTP requests;
//! - `process.rs`: the server binary as its own process;
//! - `proxy.rs`: a TCP forwarder, for tests of what crosses the network;
//! - `verifiers.rs`: waiting for a client verifier, reading its metrics;
//! - `logs.rs`: every in-process server's logs, captured.

mod app;
mod clients;
mod database;
mod fixtures;
mod gateway;
mod logs;
mod process;
mod proxy;
mod responses;
mod verifiers;
mod watching;

pub use app::*;
pub use clients::*;
pub use database::*;
pub use fixtures::*;
pub use gateway::*;
pub use logs::captured_logs;
pub use process::*;
pub use proxy::*;
pub use responses::*;
pub use verifiers::*;
pub use watching::*;
