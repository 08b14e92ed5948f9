//! VerifyToken and caller authentication: both run the same verification, which answers
//! from the cache when it can and reads one snapshot from the store when it cannot.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::cold_lookups::{Lookup, Pool};
use super::verification_cache::CachedSnapshot;
use super::{Authority, AuthorityError, AuthorityResult, Caller};
use crate::domain::{
    Permission, PermissionSet, SecretHash, Timestamp, TokenSecret, Verdict, VerificationCode,
    VerificationSnapshot, evaluate,
};
use crate::metrics::{VerifyPath, record_verification};

/// The answer to a verification.
#[derive(Debug, Clone)]
pub struct VerifyOutcome {
    pub verdict: Verdict,
    /// The snapshot the verdict was computed from; None when the token was malformed or not
    /// found.
    pub snapshot: Option<Arc<CachedSnapshot>>,
    /// The revision the answer holds at.
    pub revision: u64,
    /// When the verdict was computed: the last use recorded if the answer is handed out.
    at: Timestamp,
    /// Where the answer came from.
    path: VerifyPath,
}

impl VerifyOutcome {
    fn without_token(code: VerificationCode, revision: u64, at: Timestamp) -> Self {
        Self {
            verdict: Verdict {
                code,
                missing_scopes: PermissionSet::default(),
                expires_at: None,
            },
            snapshot: None,
            revision,
            at,
            path: VerifyPath::None,
        }
    }

    /// When the verdict was computed (by this authority's clock).
    pub fn at(&self) -> Timestamp {
        self.at
    }

    pub fn snapshot(&self) -> Option<&VerificationSnapshot> {
        self.snapshot.as_deref().map(|cached| &cached.snapshot)
    }

    /// Whether the token is good but perhaps for its client's address: valid, or refused
    /// only by its allowlist (an answer that carries the identity too, so that a cache can
    /// answer other addresses from it).
    pub fn good_but_for_address(&self) -> bool {
        matches!(
            self.verdict.code,
            VerificationCode::Valid | VerificationCode::AddressNotAllowed
        )
    }

    /// What the token may do, from an address it allows: its effective scopes when it is
    /// good but perhaps for the address; nothing otherwise.
    pub fn effective_scopes(&self) -> Option<&PermissionSet> {
        match &self.snapshot {
            Some(cached) if self.good_but_for_address() => Some(&cached.effective_scopes),
            _ => None,
        }
    }
}

impl Authority {
    /// VerifyToken: may `presented` be used now, by a client at `client` (None: unknown),
    /// with `required` scopes? Answers for tokens of other accounts only to operators; to
    /// anyone else they do not exist.
    ///
    /// With a `min_revision`, answers only from a state that includes it (see
    /// [`Authority::await_revision`]); 0 is no minimum.
    pub async fn verify_token(
        &self,
        caller: &Caller,
        presented: &str,
        required: &PermissionSet,
        client: Option<IpAddr>,
        min_revision: u64,
    ) -> AuthorityResult<VerifyOutcome> {
        caller.require(Permission::TOKENS_VERIFY)?;
        self.await_revision(min_revision).await?;
        let outcome = self.verify(presented, required, client).await?;
        Ok(self.answer_to(caller, outcome))
    }

    /// [`Authority::verify_token`]'s answer if it costs no database read (a malformed
    /// token, a cached one, a hash remembered as unknown); None when it would. A gateway
    /// answers these before it spends its client's allowance of invalid tokens, as the edge
    /// does from its own cache. It does not wait for a minimum revision: only for callers
    /// that ask with none.
    pub(crate) fn verify_token_from_memory(
        &self,
        caller: &Caller,
        presented: &str,
        required: &PermissionSet,
        client: Option<IpAddr>,
    ) -> AuthorityResult<Option<VerifyOutcome>> {
        caller.require(Permission::TOKENS_VERIFY)?;
        let outcome = match TokenSecret::hash_presented(presented) {
            Ok(hash) => self.answer_from_memory(&hash, required, client),
            Err(_) => Some(self.malformed()),
        };
        Ok(outcome.map(|outcome| self.answer_to(caller, outcome)))
    }

    /// `outcome` as `caller` may see it (a token of an account it cannot access does not
    /// exist to it), counted, and noted as a use when valid.
    fn answer_to(&self, caller: &Caller, outcome: VerifyOutcome) -> VerifyOutcome {
        if outcome
            .snapshot()
            .is_some_and(|s| !caller.can_access(&s.account_id))
        {
            // Not a use: to this caller the token does not exist (counted as what it looks
            // like to the caller, by the path really taken).
            record_verification(VerificationCode::NotFound, outcome.path);
            return VerifyOutcome::without_token(
                VerificationCode::NotFound,
                outcome.revision,
                outcome.at,
            );
        }
        record_verification(outcome.verdict.code, outcome.path);
        self.note_use(&outcome);
        outcome
    }

    /// Authenticates the caller of an RPC from the token it presented, connected from `peer`
    /// (which the token's allowlist, if it has one, must permit).
    ///
    /// A credential that fails after a read of the database spends its address's and its
    /// own allowance of failures (see `failed_authentications.rs`); one past its allowance
    /// is refused before such a read. Answers from memory (a cached credential, a hash known
    /// to be unknown, a malformed or missing one) cost nothing and are never limited, so a
    /// good client sharing an address with an attacker keeps working.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        peer: Option<std::net::SocketAddr>,
    ) -> AuthorityResult<Caller> {
        let presented = presented.ok_or_else(|| {
            AuthorityError::Unauthenticated(
                "missing credential: send `authorization: Bearer <token>` or `x-api-key: <token>`"
                    .into(),
            )
        })?;
        let Ok(hash) = TokenSecret::hash_presented(presented) else {
            return Err(AuthorityError::Unauthenticated(
                "the credential is not a well-formed token".into(),
            ));
        };
        let client = peer.map(|addr| addr.ip());
        let outcome = self
            .verify_hash(
                &hash,
                &PermissionSet::default(),
                client,
                Purpose::Authenticate,
            )
            .await?;
        self.note_use(&outcome);
        let read_the_store = outcome.path == VerifyPath::Store;
        let caller = credential(outcome).map(|credential| Caller::new(credential, hash, peer));
        if caller.is_err() && read_the_store {
            self.failures.record_failure(client, Some(&hash));
        }
        caller
    }

    /// Authenticates `caller`'s credential again, as it is now, and checks that it still
    /// holds `permission`: for a long-lived call (a watch stream) after a change that names
    /// its token, its owner or its account, or once its token expires. Not a use.
    pub(super) async fn reauthenticate(
        &self,
        caller: &Caller,
        permission: &str,
    ) -> AuthorityResult<Caller> {
        let outcome = self
            .verify_hash(
                caller.secret_hash(),
                &PermissionSet::default(),
                caller.peer_ip(),
                Purpose::Reauthenticate,
            )
            .await?;
        let renewed = caller.renewed(credential(outcome)?);
        renewed.require(permission)?;
        Ok(renewed)
    }

    /// The verification itself, for any caller.
    async fn verify(
        &self,
        presented: &str,
        required: &PermissionSet,
        client: Option<IpAddr>,
    ) -> AuthorityResult<VerifyOutcome> {
        let Ok(hash) = TokenSecret::hash_presented(presented) else {
            return Ok(self.malformed());
        };
        self.verify_hash(&hash, required, client, Purpose::Verify)
            .await
    }

    /// The answer to a token that is not well formed.
    fn malformed(&self) -> VerifyOutcome {
        VerifyOutcome::without_token(VerificationCode::Malformed, self.revision(), self.now())
    }

    /// The answer for `hash` if memory holds it: a snapshot the cache may be trusted with,
    /// or a hash remembered as unknown.
    fn answer_from_memory(
        &self,
        hash: &SecretHash,
        required: &PermissionSet,
        client: Option<IpAddr>,
    ) -> Option<VerifyOutcome> {
        // Read before the lookup: every event up to `applied` has been applied to the cache,
        // so an entry the cache still serves holds at `applied`. A fresh read holds at its
        // own revision, which may be older: an answer never claims a newer revision than the
        // one it is known to hold at.
        let applied = self.revision();
        let at = self.now();
        if let Some(cached) = self.trusted_snapshot(hash, at) {
            let revision = applied.max(cached.revision);
            return Some(self.outcome(cached, revision, VerifyPath::Cache, required, client, at));
        }
        self.cold
            .remembered_unknown(hash)
            .then(|| not_found(VerifyPath::Unknown, applied, self.now()))
    }

    /// The verification of a well-formed token, by the hash of its secret, for `purpose`.
    async fn verify_hash(
        &self,
        hash: &SecretHash,
        required: &PermissionSet,
        client: Option<IpAddr>,
        purpose: Purpose,
    ) -> AuthorityResult<VerifyOutcome> {
        if let Some(outcome) = self.answer_from_memory(hash, required, client) {
            return Ok(outcome);
        }
        if purpose == Purpose::Authenticate
            && let Some(refusal) = self.failures.refusal(client, Some(hash))
        {
            return Err(AuthorityError::ResourceExhausted(refusal.message().into()));
        }
        // One read per hash at a time: the watch streams of one credential that all
        // authenticate again after a change of its owner wait for the first read and are
        // answered by what it cached.
        let turn = self.cold.turn(hash, purpose.pool()).await?;
        // The wait may have been long: the answer is judged now (an expiry passed while
        // waiting counts) and claims no revision it was not read at.
        if let Some(outcome) = self.answer_from_memory(hash, required, client) {
            return Ok(outcome);
        }
        let applied = self.revision();
        let started = Instant::now();
        let lookup = self.cold.snapshot(self.store.as_ref(), hash, &turn).await?;
        let (snapshot, revision) = match lookup {
            Lookup::Found(snapshot, revision) => (snapshot, revision),
            Lookup::NotFound => {
                return Ok(not_found(VerifyPath::Store, applied, self.now()));
            }
        };
        let cached = Arc::new(CachedSnapshot::new(snapshot, revision, started));
        self.cache.insert(*hash, cached.clone());
        // Judged when read, not when asked: the read may have waited for a slot.
        let at = self.now();
        Ok(self.outcome(cached, revision, VerifyPath::Store, required, client, at))
    }

    /// The cached snapshot of `hash`, if the cache may be trusted at `at`: while the events
    /// cannot be read (the database is unreachable), what the cache holds may be outdated by
    /// changes made elsewhere, so it is trusted for a bounded time only.
    fn trusted_snapshot(&self, hash: &SecretHash, at: Timestamp) -> Option<Arc<CachedSnapshot>> {
        if self.events_followed_within(self.config.max_event_lag, at) {
            self.cache.get(hash)
        } else {
            None
        }
    }

    /// The answer from `cached`, at `revision`, had by `path`.
    fn outcome(
        &self,
        cached: Arc<CachedSnapshot>,
        revision: u64,
        path: VerifyPath,
        required: &PermissionSet,
        client: Option<IpAddr>,
        at: Timestamp,
    ) -> VerifyOutcome {
        let verdict = evaluate(
            &cached.snapshot,
            &cached.effective_scopes,
            required,
            client,
            at,
        );
        VerifyOutcome {
            verdict,
            snapshot: Some(cached),
            revision,
            at,
            path,
        }
    }

    /// Records a valid answer handed out as a use of its token, at most once a second per
    /// token (the recorder writes in batches).
    fn note_use(&self, outcome: &VerifyOutcome) {
        let Some(cached) = outcome.snapshot.as_deref() else {
            return;
        };
        if outcome.verdict.code != VerificationCode::Valid {
            return;
        }
        let at = outcome.at;
        let second = at.timestamp();
        let previous = cached.last_use_second.load(Ordering::Relaxed);
        if second > previous
            && cached
                .last_use_second
                .compare_exchange(previous, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.last_use.record(&cached.snapshot.token_id, at);
        }
    }
}

/// Why a token is verified: which pool of database slots a cold look-up takes, and
/// whether the caller's failures are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// VerifyToken's token.
    Verify,
    /// A caller's credential.
    Authenticate,
    /// A watch stream's credential, again.
    Reauthenticate,
}

impl Purpose {
    fn pool(self) -> Pool {
        match self {
            Purpose::Verify => Pool::Verification,
            Purpose::Authenticate | Purpose::Reauthenticate => Pool::Authentication,
        }
    }
}

/// NOT_FOUND at `revision` and `at`, answered by `path`.
fn not_found(path: VerifyPath, revision: u64, at: Timestamp) -> VerifyOutcome {
    VerifyOutcome {
        path,
        ..VerifyOutcome::without_token(VerificationCode::NotFound, revision, at)
    }
}

/// The credential of a caller whose token `outcome` found valid, or why it is not one.
fn credential(outcome: VerifyOutcome) -> AuthorityResult<Arc<CachedSnapshot>> {
    let reason = match outcome.verdict.code {
        VerificationCode::Valid | VerificationCode::InsufficientScopes => None,
        VerificationCode::Malformed => Some("the credential is not a well-formed token"),
        VerificationCode::NotFound => Some("the credential is not a known token"),
        VerificationCode::Expired => Some("the credential has expired"),
        VerificationCode::Revoked => Some("the credential has been revoked"),
        VerificationCode::Disabled => Some("the credential is disabled"),
        VerificationCode::OwnerDisabled => Some("the credential's owner is disabled"),
        VerificationCode::ApiAccessDisabled => {
            Some("API access is disabled for the credential's account")
        }
        VerificationCode::AddressNotAllowed => {
            Some("the credential may not be used from this address")
        }
    };
    match (reason, outcome.snapshot) {
        (None, Some(credential)) => Ok(credential),
        (reason, _) => Err(AuthorityError::Unauthenticated(
            reason.unwrap_or("the credential is not valid").to_owned(),
        )),
    }
}
