//! How a [`super::CachingVerifier`] connects and how long it trusts what it knows.

use std::time::Duration;

/// Settings of a caching verifier. `VerifierConfig::new` gives sensible defaults.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The authority's address, e.g. `http://127.0.0.1:50051`; `https://` speaks TLS.
    pub endpoint: String,
    /// For `https://`: trust this CA certificate (PEM) instead of the system's roots.
    pub ca_certificate: Option<Vec<u8>>,
    /// The backend's own token; it needs `tokens.verify`.
    pub credential: String,
    /// How many answers the cache holds.
    pub capacity: u64,
    /// The longest a valid answer is cached (sooner if the token expires sooner).
    pub valid_ttl: Duration,
    /// How long an invalid answer (revoked, not found, …) is cached.
    pub invalid_ttl: Duration,
    /// When no event or checkpoint has arrived for this long, the cache is not trusted.
    /// Keep it a few times the authority's checkpoint interval (5 s by default).
    pub staleness_bound: Duration,
    /// Deadline of a remote VerifyToken call.
    pub request_timeout: Duration,
    /// First and longest wait before reconnecting the watch stream (doubling in between).
    pub reconnect_backoff: (Duration, Duration),
}

impl VerifierConfig {
    pub fn new(endpoint: impl Into<String>, credential: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ca_certificate: None,
            credential: credential.into(),
            capacity: 100_000,
            valid_ttl: Duration::from_secs(300),
            invalid_ttl: Duration::from_secs(5),
            staleness_bound: Duration::from_secs(15),
            request_timeout: Duration::from_secs(2),
            reconnect_backoff: (Duration::from_millis(50), Duration::from_secs(5)),
        }
    }
}
