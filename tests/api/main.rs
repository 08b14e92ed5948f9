//! Integration tests: the real server, started in process on a random port over a real
//! database, driven through the generated gRPC clients. Storage-facing tests run on both
//! backends (SQLite files and a throwaway PostgreSQL cluster the tests start themselves).
//! One test binary, so the crate links once.

/// Runs the test function `name` once per backend, as `name::sqlite` and `name::postgres`.
/// The function is a plain `async fn` beside the call (so rustfmt formats it); the macro
/// emits only the two wrappers, in a module of the same name (modules and functions live in
/// different namespaces).
macro_rules! backend_tests {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                crate::helpers::BACKEND
                    .scope(crate::helpers::Backend::Sqlite, super::$name())
                    .await
            }

            #[tokio::test]
            async fn postgres() {
                crate::helpers::BACKEND
                    .scope(crate::helpers::Backend::Postgres, super::$name())
                    .await
            }
        }
    };
}

mod admin;
mod backup;
mod bad_input;
mod binary;
mod client;
mod client_fail_closed;
mod connections;
mod console;
mod docs;
mod escalation;
mod example_backend;
mod forgery;
mod gateway_check;
mod gateway_http;
mod health_reflection;
mod helpers;
mod isolation;
mod leaks;
mod metrics;
mod model;
mod networks;
mod outage;
mod panics;
mod permissions;
mod pruning;
mod quotas;
mod read_your_writes;
mod replicas;
mod restart;
mod secrets;
mod token_policies;
mod tokenctl;
mod tokens;
mod upgrade;
mod verify;
mod watch;
mod watch_credential;
