//! The caching verifier: answers from memory when it can trust its cache, from the authority
//! otherwise, and fails closed when neither is possible.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

use super::answer::{Answer, Verification};
use super::cache::AnswerCache;
use super::connect::{Bearer, with_tls};
use super::metrics::VerifierMetrics;
use super::{VerifierConfig, VerifyError, watcher};
use crate::domain::TokenSecret;
use crate::proto::VerifyTokenRequest;
use crate::proto::token_service_client::TokenServiceClient;

pub(super) type Client = TokenServiceClient<InterceptedService<Channel, Bearer>>;

/// What a token must satisfy, for [`CachingVerifier::verify_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Requirements<'a> {
    /// Scopes the token must have.
    pub scopes: &'a [&'a str],
    /// The address the token was presented from; None: unknown (a token that lists allowed
    /// networks is then refused).
    pub client_address: Option<IpAddr>,
    /// Answer only from a state that includes this revision; 0: no minimum.
    pub min_revision: u64,
}

impl<'a> Requirements<'a> {
    /// Just these scopes, from an unknown address, at no minimum revision.
    pub fn scopes(scopes: &'a [&'a str]) -> Self {
        Self {
            scopes,
            ..Self::default()
        }
    }
}

/// What the verifier and its watch task share.
pub(super) struct Shared {
    pub cache: AnswerCache,
    /// When the verifier was created: the origin of `last_heard`.
    epoch: Instant,
    /// Nanoseconds after `epoch` when the stream last delivered something; 0: never.
    last_heard: AtomicU64,
    /// The newest revision the stream delivered.
    pub revision: AtomicU64,
    staleness_bound: Duration,
    pub metrics: VerifierMetrics,
}

impl Shared {
    pub fn heard_now(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.last_heard.store(nanos, Ordering::Release);
    }

    /// How long since the stream last confirmed the cache current; since the verifier's
    /// creation if it never has.
    fn staleness(&self) -> Duration {
        let heard = Duration::from_nanos(self.last_heard.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(heard)
    }

    /// Whether the stream has been heard from within the staleness bound.
    fn trusted(&self) -> bool {
        self.last_heard.load(Ordering::Acquire) != 0 && self.staleness() <= self.staleness_bound
    }
}

/// How often the verifier's state gauges are set.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Sets the state gauges every [`SAMPLE_INTERVAL`] until `stopped` reports the verifier gone;
/// then zeroes its staleness, so that a verifier dropped while stale does not look stale for
/// ever.
async fn sample(shared: Arc<Shared>, mut stopped: tokio::sync::watch::Receiver<()>) {
    loop {
        shared
            .metrics
            .sample(shared.staleness(), shared.revision.load(Ordering::Acquire));
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_INTERVAL) => {}
            _ = stopped.changed() => break,
        }
    }
    shared
        .metrics
        .sample(Duration::ZERO, shared.revision.load(Ordering::Acquire));
}

/// Verifies tokens for a backend service; cheap to clone (clones share the cache and the
/// watch stream, which stops when the last clone is dropped).
#[derive(Clone)]
pub struct CachingVerifier {
    shared: Arc<Shared>,
    client: Client,
    request_timeout: Duration,
    /// Dropped with the last clone: that ends the watch task.
    _stop: Arc<tokio::sync::watch::Sender<()>>,
}

impl CachingVerifier {
    /// Creates the verifier and starts following the authority's revocations. Call it inside
    /// a tokio runtime; it connects lazily, so it succeeds while the authority is down.
    pub fn new(config: VerifierConfig) -> Result<Self, VerifyError> {
        let endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| VerifyError::Config(format!("endpoint: {e}")))?
            .connect_timeout(config.request_timeout)
            .tcp_nodelay(true)
            // Notices a dead authority on an idle stream.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let endpoint = with_tls(endpoint, &config.endpoint, config.ca_certificate.as_deref())
            .map_err(|e| VerifyError::Config(format!("TLS: {e}")))?;
        let credential = Bearer::new(Some(&config.credential))
            .map_err(|_| VerifyError::Config("the credential is not valid header text".into()))?;
        let client = TokenServiceClient::with_interceptor(endpoint.connect_lazy(), credential);
        let shared = Arc::new(Shared {
            cache: AnswerCache::new(config.capacity, config.valid_ttl, config.invalid_ttl),
            epoch: Instant::now(),
            last_heard: AtomicU64::new(0),
            revision: AtomicU64::new(0),
            staleness_bound: config.staleness_bound,
            metrics: VerifierMetrics::register(),
        });
        let (stop, stopped) = tokio::sync::watch::channel(());
        tokio::spawn(sample(shared.clone(), stop.subscribe()));
        // Named in the watch task's log lines (host and port only: never userinfo).
        let uri = endpoint.uri();
        let authority = format!(
            "{}:{}",
            uri.host().unwrap_or_default(),
            uri.port_u16().unwrap_or_default()
        );
        tokio::spawn(watcher::follow(
            shared.clone(),
            client.clone(),
            authority,
            config.reconnect_backoff,
            stopped,
        ));
        Ok(Self {
            shared,
            client,
            request_timeout: config.request_timeout,
            _stop: Arc::new(stop),
        })
    }

    /// May `token` be used now with `required_scopes`, by a client whose address is unknown
    /// (so a token that lists allowed networks is refused: see
    /// [`CachingVerifier::verify_with`])? A malformed token is refused without a network
    /// call; a cached answer is used while the watch stream is fresh; otherwise the authority
    /// is asked. Errors only when no answer can be had (fail closed).
    pub async fn verify(
        &self,
        token: &str,
        required_scopes: &[&str],
    ) -> Result<Verification, VerifyError> {
        self.verify_with(token, &Requirements::scopes(required_scopes))
            .await
    }

    /// Like [`CachingVerifier::verify`], from a state that includes `min_revision` (the
    /// `revision` of a change's response): read your writes. The cache answers only once
    /// the watch stream has delivered that revision; until then the authority is asked with
    /// `min_revision`, and a replica that cannot reach it in time fails the call with
    /// [`VerifyError::Unavailable`] rather than give an older answer.
    pub async fn verify_at_revision(
        &self,
        token: &str,
        required_scopes: &[&str],
        min_revision: u64,
    ) -> Result<Verification, VerifyError> {
        let requirements = Requirements {
            min_revision,
            ..Requirements::scopes(required_scopes)
        };
        self.verify_with(token, &requirements).await
    }

    /// May `token` be used now as `requirements` say: their scopes, from their client
    /// address (a token that lists allowed networks is refused, ADDRESS_NOT_ALLOWED, from
    /// outside them or from an unknown address; checked locally on cached answers), and from
    /// a state that includes their minimum revision.
    pub async fn verify_with(
        &self,
        token: &str,
        requirements: &Requirements<'_>,
    ) -> Result<Verification, VerifyError> {
        let Requirements {
            scopes: required_scopes,
            client_address,
            min_revision,
        } = *requirements;
        let metrics = &self.shared.metrics;
        let Ok(hash) = TokenSecret::hash_presented(token) else {
            metrics.malformed.increment(1);
            return Ok(Verification::malformed());
        };
        let reached = self.shared.revision.load(Ordering::Acquire) >= min_revision;
        if !self.shared.trusted() {
            metrics.stale.increment(1);
        } else if let Some(entry) = self.shared.cache.get(&hash).filter(|_| reached) {
            metrics.hit.increment(1);
            return Ok(entry.answer.for_request(required_scopes, client_address));
        } else {
            metrics.miss.increment(1);
        }
        let response = self
            .ask_authority(token, client_address, min_revision)
            .await?;
        let answer = Answer::from_response(response);
        let verification = answer.for_request(required_scopes, client_address);
        self.remember(hash, answer);
        Ok(verification)
    }

    /// Caches an answer if it can still be trusted: only while the watch stream is fresh,
    /// and only if no event newer than the answer has been applied for its token, owner or
    /// account (otherwise a revocation that overtook the answer would be lost).
    fn remember(&self, hash: crate::domain::SecretHash, answer: Answer) -> bool {
        self.shared.trusted() && self.shared.cache.insert(hash, answer)
    }

    /// Caches an answer obtained elsewhere (for example by a VerifyToken call made before a
    /// revocation was heard of), under the same rules as answers the verifier fetches itself;
    /// returns whether it was cached. Its age is unknown, so an answer older than the events
    /// the verifier still remembers (those of the last `valid_ttl`) is refused.
    pub fn offer(&self, token: &str, response: crate::proto::VerifyTokenResponse) -> bool {
        match TokenSecret::hash_presented(token) {
            Ok(hash) => self.remember(hash, Answer::from_response(response)),
            Err(_) => false,
        }
    }

    /// The newest revision the watch stream has delivered (0 before it connected).
    pub fn revision(&self) -> u64 {
        self.shared.revision.load(Ordering::Acquire)
    }

    /// Whether answers may currently come from the cache (the stream is fresh).
    pub fn is_fresh(&self) -> bool {
        self.shared.trusted()
    }

    async fn ask_authority(
        &self,
        token: &str,
        client_address: Option<IpAddr>,
        min_revision: u64,
    ) -> Result<crate::proto::VerifyTokenResponse, VerifyError> {
        // Without required scopes: the answer is cached and serves any scopes later. With the
        // client's address, so that the authority's own figures count what was asked.
        let mut request = Request::new(VerifyTokenRequest {
            token: token.to_owned(),
            required_scopes: Vec::new(),
            min_revision,
            client_address: client_address
                .map(|address| address.to_string())
                .unwrap_or_default(),
        });
        request.set_timeout(self.request_timeout);
        let mut client = self.client.clone();
        let answer =
            match tokio::time::timeout(self.request_timeout, client.verify_token(request)).await {
                Ok(Ok(response)) => Ok(response.into_inner()),
                Ok(Err(status))
                    if matches!(
                        status.code(),
                        Code::Unauthenticated | Code::PermissionDenied
                    ) =>
                {
                    Err(VerifyError::Refused(status))
                }
                Ok(Err(status)) => Err(VerifyError::Unavailable(status.message().to_owned())),
                Err(_) => Err(VerifyError::Unavailable(
                    "the authority did not answer in time".into(),
                )),
            };
        let metrics = &self.shared.metrics;
        match &answer {
            Ok(_) => metrics.answered.increment(1),
            Err(VerifyError::Refused(_)) => metrics.refused.increment(1),
            Err(_) => metrics.unavailable.increment(1),
        }
        answer
    }
}
