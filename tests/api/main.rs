//! Integration tests: the real server, started in process on a random port over a real
//! SQLite file, driven through the generated gRPC clients. One test binary, so the crate
//! links once.

mod admin;
mod bad_input;
mod binary;
mod client;
mod health_reflection;
mod helpers;
mod isolation;
mod permissions;
mod restart;
mod secrets;
mod tokens;
mod verify;
mod watch;
