//! Integration tests: the real server, started in process on a random port over a real
//! database, driven through the generated gRPC clients. Storage-facing tests run on both
//! backends (SQLite files and a throwaway PostgreSQL cluster the tests start themselves).
//! One test binary, so the crate links once.

/// Runs each test once per backend: `name::sqlite` and `name::postgres`, same body.
macro_rules! backend_tests {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                crate::helpers::BACKEND.scope(crate::helpers::Backend::Sqlite, async $body).await
            }

            #[tokio::test]
            async fn postgres() {
                crate::helpers::BACKEND.scope(crate::helpers::Backend::Postgres, async $body).await
            }
        }
    )*};
}

mod admin;
mod bad_input;
mod binary;
mod client;
mod escalation;
mod example_backend;
mod health_reflection;
mod helpers;
mod isolation;
mod model;
mod outage;
mod panics;
mod permissions;
mod postgres;
mod pruning;
mod replicas;
mod restart;
mod secrets;
mod tokenctl;
mod tokens;
mod upgrade;
mod verify;
mod watch;
mod watch_credential;
