//! The server's Prometheus metrics: their names (a contract with dashboards and alerts; the
//! docs/operations.md lists them), their help texts, and cheap handles for the hot paths.
//!
//! Everything records through the `metrics` facade, which is a no-op until a recorder is
//! installed: the server binary installs the Prometheus one (`startup/metrics_endpoint.rs`)
//! before it builds the server; tests that run servers in process record nothing. Handles
//! are registered on first use, so the recorder must be installed before the first request.
//!
//! A leaf: the layers that record (store, authority, grpc, connections) import it, and it
//! imports none of them.

mod verification;

use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub use verification::{VerifyPath, record_verification};

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
/// The newest revision in the database (read by the health probe every second).
pub const REVISION_CURRENT: &str = "token_authority_revision_current";
/// The newest revision the event follower has applied to the cache and the watchers.
pub const REVISION_APPLIED: &str = "token_authority_revision_applied";
/// Seconds since the event follower last read the events table to its end: 0 to the poll
/// interval when healthy; growing while the database cannot be read.
pub const EVENT_LAG_SECONDS: &str = "token_authority_event_lag_seconds";
/// Verified tokens held in the cache (approximate). Cache hits and misses are the
/// `path="cache"` and `path="store"` series of [`VERIFICATIONS`].
pub const CACHE_ENTRIES: &str = "token_authority_verification_cache_entries";
/// Snapshots dropped from the cache, by `reason`: `capacity` (pushed out by newer ones),
/// `expired` (aged out unread), `invalidated` (found outdated when read: by an event, or by
/// age).
pub const CACHE_EVICTIONS: &str = "token_authority_verification_cache_evictions_total";
/// WatchRevocations streams open now.
pub const WATCHERS: &str = "token_authority_watchers";
/// Invalidation events sent to watchers (one per event per watcher it is sent to).
pub const WATCH_EVENTS_SENT: &str = "token_authority_watch_events_sent_total";
/// Watch streams ended because the watcher fell further behind than the broadcast holds.
pub const WATCHERS_CUT_OFF: &str = "token_authority_watchers_cut_off_total";
/// Batches of last-use times written to the database, by `result`: `written` or `failed`
/// (kept and retried).
pub const LAST_USE_BATCHES: &str = "token_authority_last_use_batches_total";
/// Tokens whose last-use time waits for the next batch.
pub const LAST_USE_PENDING: &str = "token_authority_last_use_pending";
/// Database connections, by `pool` (`writer`, `reader`; `read_write` on PostgreSQL) and
/// `state` (`in_use`, `idle`).
pub const DATABASE_CONNECTIONS: &str = "token_authority_database_connections";
/// Database errors, by `kind`: `pool_timeout` (no connection within the acquire timeout),
/// `unavailable` (connection lost, database shutting down, SQLite busy) or `query` (any
/// other: a bug or a schema mismatch).
pub const DATABASE_ERRORS: &str = "token_authority_database_errors_total";
/// 1 when the last health probe's read of the database succeeded, else 0.
pub const DATABASE_UP: &str = "token_authority_database_up";
/// What the health service reports, by `service` (`""` is the whole server): 1 SERVING,
/// 0 NOT_SERVING.
pub const HEALTH_SERVING: &str = "token_authority_health_serving";
/// Reads of the database for tokens no cache could answer (caller credentials and
/// VerifyToken alike), by `result`: `found`, `not_found`, `refused` (too many at once: no
/// read). What forged tokens cost the database shows here.
pub const COLD_LOOKUPS: &str = "token_authority_cold_lookups_total";
/// Times a peer address or credential went past its allowance of failed authentications
/// (it is then refused for a second).
pub const AUTHENTICATION_PENALTIES: &str = "token_authority_authentication_penalties_total";
/// Connections open, by `listener` (`grpc`, `metrics`).
pub const CONNECTIONS_OPEN: &str = "token_authority_connections_open";
/// Connections closed by the server, by `listener` and `reason`: `limit` (the listener's
/// connection cap), `address_limit` (the cap per client address), `first_request_timeout`
/// (no request within the bound).
pub const CONNECTIONS_CLOSED: &str = "token_authority_connections_closed_total";
/// Errors accepting a connection (such as running out of file descriptors), by `listener`.
pub const ACCEPT_ERRORS: &str = "token_authority_accept_errors_total";
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
    describe_counter!(
        CACHE_EVICTIONS,
        "Snapshots dropped from the verification cache, by reason."
    );
    describe_gauge!(
        REVISION_CURRENT,
        "The newest invalidation revision in the database."
    );
    describe_gauge!(WATCHERS, "WatchRevocations streams open.");
    describe_counter!(WATCH_EVENTS_SENT, "Invalidation events sent to watchers.");
    describe_counter!(
        WATCHERS_CUT_OFF,
        "Watch streams ended because the watcher fell too far behind."
    );
    describe_counter!(
        LAST_USE_BATCHES,
        "Batches of last-use times written to the database, by result."
    );
    describe_gauge!(
        LAST_USE_PENDING,
        "Tokens whose last-use time waits for the next batch."
    );
    describe_gauge!(
        DATABASE_CONNECTIONS,
        "Database connections, by pool and state."
    );
    describe_counter!(DATABASE_ERRORS, "Database errors, by kind.");
    describe_gauge!(
        DATABASE_UP,
        "1 when the last health probe could read the database."
    );
    describe_gauge!(
        HEALTH_SERVING,
        "What the health service reports, by service: 1 SERVING, 0 NOT_SERVING."
    );
    describe_counter!(
        COLD_LOOKUPS,
        "Database reads for tokens no cache could answer, by result."
    );
    describe_counter!(
        AUTHENTICATION_PENALTIES,
        "Times a peer address or credential went past its allowance of failed authentications."
    );
    describe_gauge!(CONNECTIONS_OPEN, "Connections open, by listener.");
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Connections closed by the server, by listener and reason."
    );
    describe_counter!(ACCEPT_ERRORS, "Errors accepting a connection, by listener.");
    initialise_counters();
}

/// Registers the counters alerts compute rates of, so that they are exported as 0 from the
/// start: `increase()` over a series that appears with its first error sees no increase.
fn initialise_counters() {
    for kind in ["pool_timeout", "unavailable", "query"] {
        metrics::counter!(DATABASE_ERRORS, "kind" => kind).absolute(0);
    }
    metrics::counter!(WATCHERS_CUT_OFF).absolute(0);
    metrics::counter!(WATCH_EVENTS_SENT).absolute(0);
    for result in ["written", "failed"] {
        metrics::counter!(LAST_USE_BATCHES, "result" => result).absolute(0);
    }
    for reason in ["capacity", "expired", "invalidated"] {
        metrics::counter!(CACHE_EVICTIONS, "reason" => reason).absolute(0);
    }
    metrics::gauge!(WATCHERS).set(0.0);
    for result in ["found", "not_found", "refused"] {
        metrics::counter!(COLD_LOOKUPS, "result" => result).absolute(0);
    }
    metrics::counter!(AUTHENTICATION_PENALTIES).absolute(0);
    for listener in ["grpc", "metrics"] {
        metrics::counter!(ACCEPT_ERRORS, "listener" => listener).absolute(0);
        for reason in ["limit", "address_limit", "first_request_timeout"] {
            metrics::counter!(CONNECTIONS_CLOSED, "listener" => listener, "reason" => reason)
                .absolute(0);
        }
    }
}

/// Records the build's version and the database it runs on.
pub fn record_build_info(backend: &'static str) {
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "backend" => backend)
        .set(1.0);
}

/// How busy one connection pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Which pool: `writer` and `reader` on SQLite, `read_write` on PostgreSQL.
    pub pool: &'static str,
    /// Connections lent out.
    pub in_use: u32,
    /// Connections open and waiting to be lent.
    pub idle: u32,
}

/// What the server samples every second: the event follower, the cache, the last-use
/// recorder and the database pools.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// The newest revision applied to the cache and the watchers.
    pub applied: u64,
    /// Time since the event follower last read the events table to its end.
    pub lag: Duration,
    pub cache_entries: u64,
    pub last_use_pending: usize,
    pub pools: Vec<PoolUsage>,
}

/// Sets the sampled gauges.
pub fn record_sample(sample: &Sample) {
    // f64 holds integers exactly up to 2^53: far beyond any revision or count here.
    metrics::gauge!(REVISION_APPLIED).set(sample.applied as f64);
    metrics::gauge!(EVENT_LAG_SECONDS).set(sample.lag.as_secs_f64());
    metrics::gauge!(CACHE_ENTRIES).set(sample.cache_entries as f64);
    metrics::gauge!(LAST_USE_PENDING).set(sample.last_use_pending as f64);
    for pool in &sample.pools {
        metrics::gauge!(DATABASE_CONNECTIONS, "pool" => pool.pool, "state" => "in_use")
            .set(f64::from(pool.in_use));
        metrics::gauge!(DATABASE_CONNECTIONS, "pool" => pool.pool, "state" => "idle")
            .set(f64::from(pool.idle));
    }
}

/// Records a health probe: whether the database answered, with its newest revision.
pub fn record_database_probe(revision: Option<u64>) {
    metrics::gauge!(DATABASE_UP).set(if revision.is_some() { 1.0 } else { 0.0 });
    if let Some(revision) = revision {
        metrics::gauge!(REVISION_CURRENT).set(revision as f64);
    }
}

/// Records what the health service reports for `service` (`""`: the whole server).
pub fn record_health(service: &'static str, serving: bool) {
    metrics::gauge!(HEALTH_SERVING, "service" => service).set(if serving { 1.0 } else { 0.0 });
}

/// Counts a database error of `kind` (see [`DATABASE_ERRORS`]).
pub fn record_database_error(kind: &'static str) {
    metrics::counter!(DATABASE_ERRORS, "kind" => kind).increment(1);
}

/// Counts a batch of last-use times written (or not).
pub fn record_last_use_batch(written: bool) {
    let result = if written { "written" } else { "failed" };
    metrics::counter!(LAST_USE_BATCHES, "result" => result).increment(1);
}

/// Counts a snapshot dropped from the verification cache (see [`CACHE_EVICTIONS`]).
pub fn record_cache_eviction(reason: &'static str) {
    metrics::counter!(CACHE_EVICTIONS, "reason" => reason).increment(1);
}

/// Counts a look-up of an uncached token by its result (see [`COLD_LOOKUPS`]).
pub fn record_cold_lookup(result: &'static str) {
    metrics::counter!(COLD_LOOKUPS, "result" => result).increment(1);
}

/// Counts a peer or credential put past its allowance of failed authentications.
pub fn record_authentication_penalty() {
    metrics::counter!(AUTHENTICATION_PENALTIES).increment(1);
}

/// Counts a connection the server closed on `listener` for `reason` (see
/// [`CONNECTIONS_CLOSED`]).
pub fn record_connection_closed(listener: &'static str, reason: &'static str) {
    metrics::counter!(CONNECTIONS_CLOSED, "listener" => listener, "reason" => reason).increment(1);
}

/// Counts an error accepting a connection on `listener`.
pub fn record_accept_error(listener: &'static str) {
    metrics::counter!(ACCEPT_ERRORS, "listener" => listener).increment(1);
}

/// Sets how many connections `listener` holds open.
pub fn record_connections_open(listener: &'static str, open: usize) {
    metrics::gauge!(CONNECTIONS_OPEN, "listener" => listener).set(open as f64);
}

/// A watch stream open: the watcher gauge counts it while this lives.
#[derive(Debug)]
pub struct OpenWatcher {
    /// Registered once per stream: counting an event is then one atomic add, not a look-up
    /// in the registry (it runs once per event per watcher).
    sent: metrics::Counter,
}

impl OpenWatcher {
    pub fn open() -> Self {
        metrics::gauge!(WATCHERS).increment(1.0);
        Self {
            sent: metrics::counter!(WATCH_EVENTS_SENT),
        }
    }

    /// Counts `count` events sent to this watcher.
    pub fn sent(&self, count: usize) {
        self.sent.increment(count as u64);
    }

    /// Counts this watcher as cut off for falling behind.
    pub fn cut_off(&self) {
        metrics::counter!(WATCHERS_CUT_OFF).increment(1);
    }
}

impl Drop for OpenWatcher {
    fn drop(&mut self) {
        metrics::gauge!(WATCHERS).decrement(1.0);
    }
}
