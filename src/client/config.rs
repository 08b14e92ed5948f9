//! How a [`super::CachingVerifier`] connects and how long it trusts what it knows.

use std::time::Duration;

/// Settings of a caching verifier. `VerifierConfig::new` gives sensible defaults. Its
/// `Debug` output leaves the credential out.
#[derive(Clone)]
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

impl std::fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            endpoint,
            ca_certificate,
            credential: _,
            capacity,
            valid_ttl,
            invalid_ttl,
            staleness_bound,
            request_timeout,
            reconnect_backoff,
        } = self;
        f.debug_struct("VerifierConfig")
            .field("endpoint", endpoint)
            .field("ca_certificate", &ca_certificate.as_ref().map(|_| "<PEM>"))
            .field("credential", &"<redacted>")
            .field("capacity", capacity)
            .field("valid_ttl", valid_ttl)
            .field("invalid_ttl", invalid_ttl)
            .field("staleness_bound", staleness_bound)
            .field("request_timeout", request_timeout)
            .field("reconnect_backoff", reconnect_backoff)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_the_credential_out() {
        let credential = crate::domain::TokenSecret::generate();
        let config = VerifierConfig::new("http://127.0.0.1:1", credential.expose());
        let printed = format!("{config:?}");
        assert!(!printed.contains(&credential.expose()[4..]), "{printed}");
        assert!(printed.contains("<redacted>") && printed.contains("127.0.0.1:1"));
    }
}
