//! The server's Prometheus metrics: their names (a contract with dashboards and alerts; the
//! README lists them), their help texts, and cheap handles for the hot paths.
//!
//! Everything records through the `metrics` facade, which is a no-op until a recorder is
//! installed: the server binary installs the Prometheus one (`endpoint.rs`) before it
//! builds the server; tests that run servers in process record nothing. Handles are
//! registered on first use, so the recorder must be installed before the first request.

mod endpoint;

use std::sync::OnceLock;

use metrics::{Counter, Unit, describe_counter, describe_gauge, describe_histogram};

use crate::domain::VerificationCode;

pub use endpoint::{MetricsEndpoint, install};

/// RPCs started, by `grpc_service`, `grpc_method` and `grpc_type` (grpc-ecosystem names).
pub const RPC_STARTED: &str = "grpc_server_started_total";
/// RPCs completed, by the same labels and `grpc_code` (`OK`, `NotFound`, …).
pub const RPC_HANDLED: &str = "grpc_server_handled_total";
/// Time from an RPC's request to the end of its response (a stream's whole life).
pub const RPC_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
/// VerifyToken answers, by `code` (the VerificationCode, e.g. `VALID`) and `path`:
/// `cache` (answered from memory), `store` (read from the database, found or not), `none`
/// (malformed: rejected without a look-up).
pub const VERIFICATIONS: &str = "token_authority_verifications_total";
/// The newest revision the event follower has applied to the cache and the watchers.
pub const REVISION_APPLIED: &str = "token_authority_revision_applied";
/// Seconds since the event follower last read the events table to its end: 0 to the poll
/// interval when healthy; growing while the database cannot be read.
pub const EVENT_LAG_SECONDS: &str = "token_authority_event_lag_seconds";
/// Verified tokens held in the cache (approximate).
pub const CACHE_ENTRIES: &str = "token_authority_verification_cache_entries";
/// 1, with the `version` and the database `backend` as labels.
pub const BUILD_INFO: &str = "token_authority_build_info";

/// Histogram buckets of [`RPC_HANDLING_SECONDS`], in seconds: 100 µs to 10 s.
pub const RPC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    describe_counter!(RPC_STARTED, "RPCs started on the server.");
    describe_counter!(RPC_HANDLED, "RPCs completed on the server, by gRPC code.");
    describe_histogram!(
        RPC_HANDLING_SECONDS,
        Unit::Seconds,
        "Time from an RPC's request to the end of its response."
    );
    describe_counter!(
        VERIFICATIONS,
        "VerifyToken answers, by verification code and by how they were answered."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the labels name the build.");
    describe_gauge!(
        REVISION_APPLIED,
        "The newest invalidation revision applied to the cache and the watchers."
    );
    describe_gauge!(
        EVENT_LAG_SECONDS,
        Unit::Seconds,
        "Time since the event follower last read the events table to its end."
    );
    describe_gauge!(
        CACHE_ENTRIES,
        "Verified tokens held in the cache (approximate)."
    );
}

/// Records the build's version and the database it runs on.
pub fn record_build_info(backend: &'static str) {
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "backend" => backend)
        .set(1.0);
}

/// Sets the gauges of the event follower and the verification cache.
pub fn record_follower(applied: u64, lag: std::time::Duration, cache_entries: u64) {
    // f64 holds integers exactly up to 2^53: far beyond any revision or cache size.
    metrics::gauge!(REVISION_APPLIED).set(applied as f64);
    metrics::gauge!(EVENT_LAG_SECONDS).set(lag.as_secs_f64());
    metrics::gauge!(CACHE_ENTRIES).set(cache_entries as f64);
}

/// How a verification was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyPath {
    /// From the verification cache.
    Cache,
    /// From a read of the database.
    Store,
    /// Without a look-up: the presented value was malformed.
    None,
}

impl VerifyPath {
    const ALL: [VerifyPath; 3] = [VerifyPath::Cache, VerifyPath::Store, VerifyPath::None];

    fn as_str(self) -> &'static str {
        match self {
            VerifyPath::Cache => "cache",
            VerifyPath::Store => "store",
            VerifyPath::None => "none",
        }
    }
}

const CODES: [VerificationCode; 9] = [
    VerificationCode::Valid,
    VerificationCode::Malformed,
    VerificationCode::NotFound,
    VerificationCode::Expired,
    VerificationCode::Revoked,
    VerificationCode::Disabled,
    VerificationCode::OwnerDisabled,
    VerificationCode::ApiAccessDisabled,
    VerificationCode::InsufficientScopes,
];

/// The position of `code` in [`CODES`] (a match, so that a new code cannot be forgotten).
fn code_index(code: VerificationCode) -> usize {
    match code {
        VerificationCode::Valid => 0,
        VerificationCode::Malformed => 1,
        VerificationCode::NotFound => 2,
        VerificationCode::Expired => 3,
        VerificationCode::Revoked => 4,
        VerificationCode::Disabled => 5,
        VerificationCode::OwnerDisabled => 6,
        VerificationCode::ApiAccessDisabled => 7,
        VerificationCode::InsufficientScopes => 8,
    }
}

/// The label of a verification code: its protobuf enum value's name without the
/// `VERIFICATION_CODE_` prefix.
fn code_label(code: VerificationCode) -> &'static str {
    match code {
        VerificationCode::Valid => "VALID",
        VerificationCode::Malformed => "MALFORMED",
        VerificationCode::NotFound => "NOT_FOUND",
        VerificationCode::Expired => "EXPIRED",
        VerificationCode::Revoked => "REVOKED",
        VerificationCode::Disabled => "DISABLED",
        VerificationCode::OwnerDisabled => "OWNER_DISABLED",
        VerificationCode::ApiAccessDisabled => "API_ACCESS_DISABLED",
        VerificationCode::InsufficientScopes => "INSUFFICIENT_SCOPES",
    }
}

/// Counts one VerifyToken answer. On the warm path: a handle per (code, path), registered
/// once, so a count is one atomic add rather than a registry look-up.
pub fn record_verification(code: VerificationCode, path: VerifyPath) {
    static HANDLES: OnceLock<Vec<Counter>> = OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        CODES
            .iter()
            .flat_map(|code| {
                VerifyPath::ALL.iter().map(move |path| {
                    metrics::counter!(VERIFICATIONS, "code" => code_label(*code), "path" => path.as_str())
                })
            })
            .collect()
    });
    let index = code_index(code)
        .saturating_mul(VerifyPath::ALL.len())
        .saturating_add(path as usize);
    if let Some(counter) = handles.get(index) {
        counter.increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_paths_index_their_tables() {
        for (i, code) in CODES.iter().enumerate() {
            assert_eq!(code_index(*code), i);
        }
        for (i, path) in VerifyPath::ALL.iter().enumerate() {
            assert_eq!(*path as usize, i);
        }
    }

    #[test]
    fn every_code_has_a_distinct_label() {
        let mut labels: Vec<&str> = CODES.iter().map(|c| code_label(*c)).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CODES.len());
    }
}
