//! How a [`super::CachingVerifier`] connects and how long it trusts what it knows, and the
//! checks that refuse a configuration that cannot be safe.

use std::net::IpAddr;
use std::time::Duration;

use tonic::transport::Endpoint;

use super::VerifyError;

/// Settings of a caching verifier. `VerifierConfig::new` gives sensible defaults. Its
/// `Debug` output leaves the credential out.
#[derive(Clone)]
pub struct VerifierConfig {
    /// The authority's address, e.g. `https://authority.internal:50051`; `https://` speaks
    /// TLS. `http://` sends every presented token in clear, so it is refused for any host
    /// but loopback unless `allow_plaintext` is set.
    pub endpoint: String,
    /// Allows an `http://` endpoint off loopback (a network the operator trusts, such as a
    /// service mesh's encrypted sidecar link).
    pub allow_plaintext: bool,
    /// For `https://`: trust this CA certificate (PEM) instead of the system's roots.
    pub ca_certificate: Option<Vec<u8>>,
    /// The backend's own token; it needs `tokens.verify`.
    pub credential: String,
    /// How many bytes of answers the cache holds at most (each answer weighed by its ids,
    /// scopes, labels and networks), so that large identities cannot grow it without bound.
    pub cache_bytes: u64,
    /// The longest a valid answer is cached (sooner if the token expires sooner).
    pub valid_ttl: Duration,
    /// How long an invalid answer (revoked, not found, …) is cached.
    pub invalid_ttl: Duration,
    /// When no event or checkpoint has arrived for this long, the cache is not trusted.
    /// Keep it a few times the authority's checkpoint interval (5 s by default).
    pub staleness_bound: Duration,
    /// Deadline of a remote VerifyToken call.
    pub request_timeout: Duration,
    /// How many VerifyToken calls may be in flight at once; one that finds none free within
    /// `request_timeout` fails closed. Concurrent calls for the same token share one.
    pub max_remote_calls: usize,
    /// First and longest wait before reconnecting the watch stream (doubling in between).
    pub reconnect_backoff: (Duration, Duration),
}

impl VerifierConfig {
    pub fn new(endpoint: impl Into<String>, credential: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            allow_plaintext: false,
            ca_certificate: None,
            credential: credential.into(),
            cache_bytes: 64 * 1024 * 1024,
            valid_ttl: Duration::from_secs(300),
            invalid_ttl: Duration::from_secs(5),
            staleness_bound: Duration::from_secs(15),
            request_timeout: Duration::from_secs(2),
            max_remote_calls: 64,
            reconnect_backoff: (Duration::from_millis(50), Duration::from_secs(5)),
        }
    }
}

impl std::fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            endpoint,
            allow_plaintext,
            ca_certificate,
            credential: _,
            cache_bytes,
            valid_ttl,
            invalid_ttl,
            staleness_bound,
            request_timeout,
            max_remote_calls,
            reconnect_backoff,
        } = self;
        f.debug_struct("VerifierConfig")
            .field("endpoint", endpoint)
            .field("allow_plaintext", allow_plaintext)
            .field("ca_certificate", &ca_certificate.as_ref().map(|_| "<PEM>"))
            .field("credential", &"<redacted>")
            .field("cache_bytes", cache_bytes)
            .field("valid_ttl", valid_ttl)
            .field("invalid_ttl", invalid_ttl)
            .field("staleness_bound", staleness_bound)
            .field("request_timeout", request_timeout)
            .field("max_remote_calls", max_remote_calls)
            .field("reconnect_backoff", reconnect_backoff)
            .finish()
    }
}

/// Refuses an `http://` endpoint whose host is not loopback, unless `allowed`: every
/// presented token would cross the network in clear.
pub(super) fn refuse_plaintext_off_loopback(
    endpoint: &Endpoint,
    allowed: bool,
) -> Result<(), VerifyError> {
    let uri = endpoint.uri();
    if allowed || uri.scheme_str() != Some("http") {
        return Ok(());
    }
    let host = uri.host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return Ok(());
    }
    Err(VerifyError::Config(format!(
        "the endpoint http://{host} would send every token in clear: use https://, or set allow_plaintext for a network you trust"
    )))
}

/// Refuses durations past a day: none makes sense longer, and the arithmetic on them must
/// not overflow.
pub(super) fn refuse_absurd_durations(config: &VerifierConfig) -> Result<(), VerifyError> {
    const LONGEST: Duration = Duration::from_secs(24 * 3600);
    let durations = [
        ("valid_ttl", config.valid_ttl),
        ("invalid_ttl", config.invalid_ttl),
        ("staleness_bound", config.staleness_bound),
        ("request_timeout", config.request_timeout),
        ("reconnect_backoff", config.reconnect_backoff.0),
        ("reconnect_backoff", config.reconnect_backoff.1),
    ];
    match durations.iter().find(|(_, duration)| *duration > LONGEST) {
        Some((name, duration)) => Err(VerifyError::Config(format!(
            "{name} of {duration:?} is longer than a day"
        ))),
        None => Ok(()),
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
