//! The caching verifier: answers from memory when it can trust its cache, from the authority
//! otherwise, and fails closed when neither is possible.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tonic::transport::Endpoint;
use tonic::{Code, Request};

use super::answer::{Answer, Verification};
use super::cache::AnswerCache;
use super::connect::{Bearer, Client, with_tls};
use super::flights::Flights;
use super::trust::{self, TrustState};
use super::{VerifierConfig, VerifyError, config, watcher};
use crate::domain::{SecretHash, TokenSecret};
use crate::proto::token_service_client::TokenServiceClient;
use crate::proto::{VerificationCode, VerifyTokenRequest};

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

/// Verifies tokens for a backend service; cheap to clone (clones share the cache and the
/// watch stream, which stops when the last clone is dropped).
#[derive(Clone)]
pub struct CachingVerifier {
    shared: Arc<TrustState>,
    client: Client,
    request_timeout: Duration,
    /// Bounds the VerifyToken calls in flight.
    remote_calls: Arc<tokio::sync::Semaphore>,
    flights: Arc<Flights>,
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
        config::refuse_plaintext_off_loopback(&endpoint, config.allow_plaintext)?;
        config::refuse_absurd_durations(&config)?;
        let endpoint = with_tls(endpoint, &config.endpoint, config.ca_certificate.as_deref())
            .map_err(|e| VerifyError::Config(format!("TLS: {e}")))?;
        let credential = Bearer::new(Some(&config.credential))
            .map_err(|_| VerifyError::Config("the credential is not valid header text".into()))?;
        let client =
            TokenServiceClient::with_interceptor(endpoint.connect_lazy(), credential.clone());
        let shared = Arc::new(TrustState::new(
            AnswerCache::new(config.cache_bytes, config.valid_ttl, config.invalid_ttl),
            config.staleness_bound,
        ));
        let (stop, stopped) = tokio::sync::watch::channel(());
        tokio::spawn(trust::sample(shared.clone(), stop.subscribe()));
        // Named in the watch task's log lines (host and port only: never userinfo).
        let uri = endpoint.uri();
        let authority = format!(
            "{}:{}",
            uri.host().unwrap_or_default(),
            uri.port_u16().unwrap_or_default()
        );
        // The stream opens a connection of its own each time (see `watcher`).
        tokio::spawn(watcher::follow(
            shared.clone(),
            watcher::Connector {
                endpoint,
                credential,
            },
            authority,
            watcher::Timing {
                backoff: config.reconnect_backoff,
                silence: config.staleness_bound,
            },
            stopped,
        ));
        Ok(Self {
            shared,
            client,
            request_timeout: config.request_timeout,
            remote_calls: Arc::new(tokio::sync::Semaphore::new(
                config
                    .max_remote_calls
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            flights: Arc::default(),
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
        let (hash, applied, trusted) = match self.answer_locally(token, requirements) {
            Local::Answered(verification) => return Ok(verification),
            Local::Ask {
                hash,
                applied,
                trusted,
            } => (hash, applied, trusted),
        };
        let metrics = &self.shared.metrics;
        if trusted {
            metrics.miss.increment(1);
        } else {
            metrics.stale.increment(1);
        }
        // From no older state than the stream has delivered: an answer computed before an
        // event this verifier applied (by a replica that has not applied it yet) would undo
        // the event for this call.
        let answer = self
            .current_answer(&hash, token, client_address, min_revision.max(applied))
            .await?;
        Ok(answer.for_request(required_scopes, client_address))
    }

    /// The answer if it needs no call to the authority (a malformed token, or one the
    /// cache can answer for `requirements`); None when only the authority can answer. What
    /// a gateway asks first, so that it can limit the calls a client's tokens cost.
    pub fn verify_locally(
        &self,
        token: &str,
        requirements: &Requirements<'_>,
    ) -> Option<Verification> {
        match self.answer_locally(token, requirements) {
            Local::Answered(verification) => Some(verification),
            Local::Ask { .. } => None,
        }
    }

    /// The hit path: the answer from the token's shape or the cache, or what asking the
    /// authority needs.
    fn answer_locally(&self, token: &str, requirements: &Requirements<'_>) -> Local {
        let metrics = &self.shared.metrics;
        let Ok(hash) = TokenSecret::hash_presented(token) else {
            metrics.malformed.increment(1);
            return Local::Answered(Verification::malformed());
        };
        let applied = self.shared.revision.load(Ordering::Acquire);
        let now = Instant::now();
        let trusted = self.shared.trusted_at(now);
        if applied >= requirements.min_revision
            && let Some(entry) = self.shared.cache.get(&hash, now)
            // A refusal stays right while the stream is down (at worst it refuses a token
            // enabled meanwhile, for `invalid_ttl`: fail closed); a valid answer is served
            // only while the stream is live and fresh.
            && (trusted || entry.answer.code != VerificationCode::Valid)
        {
            metrics.hit.increment(1);
            return Local::Answered(
                entry
                    .answer
                    .for_request(requirements.scopes, requirements.client_address),
            );
        }
        Local::Ask {
            hash,
            applied,
            trusted,
        }
    }

    /// The authority's answer for `hash`, from a state that includes `min_revision` and no
    /// older than any event applied here for its token, owner or account: asked again once
    /// if an event overtook it in flight, then refused (fail closed) if it is still older.
    async fn current_answer(
        &self,
        hash: &SecretHash,
        token: &str,
        client_address: Option<IpAddr>,
        min_revision: u64,
    ) -> Result<Arc<Answer>, VerifyError> {
        let mut from = min_revision;
        for _ in 0..2 {
            let (answer, generation) = self.shared_call(hash, token, client_address, from).await?;
            // A refusal is handed out as it is (fail closed). A valid answer only if nothing
            // overtook it: no event or refusal since, and no change of the database's history
            // (while the call was in flight, or a replica still answering in the old one).
            if answer.code != VerificationCode::Valid
                || self.shared.cache.current(hash, &answer)
                    && self.shared.cache.generation() == generation
                    && !self.shared.other_history(&answer.history)
            {
                return Ok(answer);
            }
            self.shared.metrics.overtaken.increment(1);
            from = from.max(self.shared.revision.load(Ordering::Acquire));
        }
        Err(VerifyError::Unavailable(
            "the authority answered from a state older than a change this verifier has applied"
                .into(),
        ))
    }

    /// One VerifyToken call for `hash` from `min_revision`, shared by every verification of
    /// the same token that asks meanwhile.
    async fn shared_call(
        &self,
        hash: &SecretHash,
        token: &str,
        client_address: Option<IpAddr>,
        min_revision: u64,
    ) -> Result<(Arc<Answer>, u64), VerifyError> {
        let key = (*hash, min_revision);
        let (flight, _guard) = self.flights.join(key, &self.shared.metrics);
        // Should the call that started the flight be dropped, a waiter makes it instead.
        flight
            .get_or_init(|| self.ask_and_remember(hash, token, client_address, min_revision))
            .await
            .clone()
    }

    /// Asks the authority (within the bound on calls in flight), learns from its answer and
    /// caches it; returns it with the history generation it was asked in. It is cached
    /// whether or not the stream is live: the stream resumes from the last revision it
    /// delivered, so every event newer than the answer still reaches the cache before a
    /// valid answer is served from it again.
    async fn ask_and_remember(
        &self,
        hash: &SecretHash,
        token: &str,
        client_address: Option<IpAddr>,
        min_revision: u64,
    ) -> Result<(Arc<Answer>, u64), VerifyError> {
        let asked = Instant::now();
        let generation = self.shared.cache.generation();
        let _permit = tokio::time::timeout(self.request_timeout, self.remote_calls.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                self.shared.metrics.unavailable.increment(1);
                VerifyError::Unavailable("too many verifications in flight".into())
            })?;
        // By the wall clock before sending: the authority answered later, so its clock looks
        // further ahead than it is, and what is left of a token's life shorter (safe).
        let sent = SystemTime::now();
        let response = self
            .ask_authority(token, client_address, min_revision)
            .await?;
        let answer = Arc::new(Answer::from_response(response));
        self.shared.measure_clock(answer.answered_at, sent);
        // A refusal is learned whatever the stream's state (it can only refuse answers), but
        // not from another history: its revisions would count in another order.
        if !self.shared.other_history(&answer.history) {
            self.shared.cache.learn(hash, &answer, generation);
        }
        // Kept only if the stream can invalidate it: of an account it carries, counted in
        // the history it follows.
        if self.shared.covers(answer.account_id.as_ref())
            && self.shared.same_history(&answer.history)
        {
            self.shared
                .cache
                .insert(*hash, answer.clone(), asked, generation);
        }
        Ok((answer, generation))
    }

    /// Caches an answer obtained elsewhere (for example by a VerifyToken call made before a
    /// revocation was heard of), under the same rules as answers the verifier fetches itself;
    /// returns whether it was cached. Its age is unknown, so it is refused unless the stream
    /// is live and carries its account's events, and it is trusted no further: as of a
    /// revision no newer than the stream has delivered, for a lifetime no longer than the
    /// local clock allows either.
    pub fn offer(&self, token: &str, response: crate::proto::VerifyTokenResponse) -> bool {
        let Ok(hash) = TokenSecret::hash_presented(token) else {
            return false;
        };
        // Before the revision is read: a history change after this refuses the answer.
        let generation = self.shared.cache.generation();
        let mut answer = Answer::from_response(response);
        if !self.shared.trusted()
            || !self.shared.covers(answer.account_id.as_ref())
            || !self.shared.same_history(&answer.history)
        {
            return false;
        }
        answer.revision = answer
            .revision
            .min(self.shared.revision.load(Ordering::Acquire));
        // Its age is unknown: what is left of its life is judged by the authority's clock as
        // last measured (this host's clock, corrected), not from when it was answered.
        if let Some(expires) = answer.identity.as_ref().and_then(|i| i.expire_time) {
            let left = expires
                .duration_since(self.shared.authority_now())
                .unwrap_or(Duration::ZERO);
            answer.lifetime = answer.lifetime.map(|lifetime| lifetime.min(left));
        }
        self.shared
            .cache
            .insert(hash, Arc::new(answer), Instant::now(), generation)
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

/// What the cache alone can say about a token.
enum Local {
    Answered(Verification),
    /// Only the authority can answer: the token's hash, the revision applied here, and
    /// whether the cache was trusted.
    Ask {
        hash: SecretHash,
        applied: u64,
        trusted: bool,
    },
}
