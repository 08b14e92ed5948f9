//! The verifier's metrics, recorded through the [`metrics`](https://docs.rs/metrics) facade:
//! a backend service exports them with whatever recorder it installs (Prometheus,
//! StatsD, …), next to its own. Install the recorder before creating the verifier: its
//! handles are registered then. Without a recorder, recording costs nothing.
//!
//! Several verifiers in one process share these series.

use std::time::Duration;

use metrics::{Counter, Gauge, Unit, describe_counter, describe_gauge};

/// Verifications of well-formed tokens, by how the cache was consulted (`result`): `hit`
/// (answered from memory; a refusal also while the stream is down), `miss` (no current answer cached, or the watch stream has not yet
/// delivered the `min_revision` asked for: asked the authority) or
/// `stale` (the watch stream is lost, or silent past the staleness bound, so no valid answer
/// was served from the cache: asked the authority).
pub const CACHE_LOOKUPS: &str = "token_authority_client_cache_lookups_total";
/// Presented values refused locally as malformed, without a look-up.
pub const MALFORMED: &str = "token_authority_client_malformed_total";
/// VerifyToken calls to the authority, by `outcome`: `answered`, `refused` (the authority
/// refused the verifier's own credential) or `unavailable` (no answer in time: the
/// verification failed closed).
pub const REMOTE_VERIFICATIONS: &str = "token_authority_client_remote_verifications_total";
/// Verifications that joined a VerifyToken call another verification of the same token had
/// in flight, instead of making their own.
pub const COALESCED: &str = "token_authority_client_coalesced_total";
/// Valid answers the authority gave from a state older than an event the verifier had
/// applied for their token, owner or account (a lagging replica, or an event that arrived
/// during the call): asked again, then failed closed, never handed out.
pub const OVERTAKEN: &str = "token_authority_client_overtaken_answers_total";
/// Times the watch stream was opened again after it ended, failed or fell silent.
pub const RECONNECTS: &str = "token_authority_client_reconnects_total";
/// Seconds since the watch stream last confirmed the cache current (since the verifier's
/// creation, before it ever did); past the staleness bound, the cache is not trusted.
pub const STALENESS_SECONDS: &str = "token_authority_client_staleness_seconds";
/// The newest revision the watch stream delivered.
pub const REVISION: &str = "token_authority_client_revision";
/// The authority's clock minus this host's, in seconds, as measured from its last answer
/// (transit time included); 0 until measured. Expiries are judged by the authority's
/// clock whatever it shows: it tells an operator that this host's clock is off.
pub const CLOCK_OFFSET_SECONDS: &str = "token_authority_client_clock_offset_seconds";

/// Handles to the verifier's series, registered once with the recorder current at creation.
pub(super) struct VerifierMetrics {
    pub hit: Counter,
    pub miss: Counter,
    pub stale: Counter,
    pub malformed: Counter,
    pub answered: Counter,
    pub refused: Counter,
    pub unavailable: Counter,
    pub reconnects: Counter,
    pub coalesced: Counter,
    pub overtaken: Counter,
    staleness: Gauge,
    revision: Gauge,
    clock_offset: Gauge,
}

impl VerifierMetrics {
    pub fn register() -> Self {
        describe();
        let lookup = |result| metrics::counter!(CACHE_LOOKUPS, "result" => result);
        let remote = |outcome| metrics::counter!(REMOTE_VERIFICATIONS, "outcome" => outcome);
        Self {
            hit: lookup("hit"),
            miss: lookup("miss"),
            stale: lookup("stale"),
            malformed: metrics::counter!(MALFORMED),
            answered: remote("answered"),
            refused: remote("refused"),
            unavailable: remote("unavailable"),
            reconnects: metrics::counter!(RECONNECTS),
            coalesced: metrics::counter!(COALESCED),
            overtaken: metrics::counter!(OVERTAKEN),
            staleness: metrics::gauge!(STALENESS_SECONDS),
            revision: metrics::gauge!(REVISION),
            clock_offset: metrics::gauge!(CLOCK_OFFSET_SECONDS),
        }
    }

    /// Sets the state gauges.
    pub fn sample(&self, staleness: Duration, revision: u64, clock_offset_micros: Option<i64>) {
        self.staleness.set(staleness.as_secs_f64());
        // f64 holds integers exactly up to 2^53: far beyond any revision.
        self.revision.set(revision as f64);
        if let Some(micros) = clock_offset_micros {
            self.clock_offset.set(micros as f64 / 1e6);
        }
    }
}

fn describe() {
    describe_counter!(
        CACHE_LOOKUPS,
        "Verifications of well-formed tokens, by how the cache was consulted."
    );
    describe_counter!(MALFORMED, "Presented values refused locally as malformed.");
    describe_counter!(
        REMOTE_VERIFICATIONS,
        "VerifyToken calls to the authority, by outcome (unavailable: failed closed)."
    );
    describe_counter!(RECONNECTS, "Times the watch stream was opened again.");
    describe_counter!(
        COALESCED,
        "Verifications that shared another's VerifyToken call for the same token."
    );
    describe_counter!(
        OVERTAKEN,
        "Valid answers older than an event the verifier had applied (never handed out)."
    );
    describe_gauge!(
        STALENESS_SECONDS,
        Unit::Seconds,
        "Time since the watch stream last confirmed the cache current."
    );
    describe_gauge!(REVISION, "The newest revision the watch stream delivered.");
    describe_gauge!(
        CLOCK_OFFSET_SECONDS,
        Unit::Seconds,
        "The authority's clock minus this host's, as of its last answer."
    );
}
