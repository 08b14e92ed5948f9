//! What a stranger can make the database do: every verification the cache cannot answer
//! (a cold look-up) goes through here.
//!
//! The checksum of our tokens is published (secret scanners need it), so anyone can forge
//! well-formed tokens that no cache holds. Two things bound what they cost:
//!
//! - **Unknown hashes are remembered** for a while: the same forged token presented again
//!   is answered NOT_FOUND from memory. This is safe because a hash becomes known only when
//!   a secret is issued (create, reset, duplicate), and every issued secret carries 160
//!   random bits from the OS: nobody can present a secret before it exists, on this replica
//!   or another, so a hash remembered as unknown stays unknown. Deleting a token or its
//!   secret only makes hashes unknown. The memory is per process and lost on restart; a
//!   database restored under a running server could bring a remembered hash back, and it
//!   answers NOT_FOUND until its entry expires (`UNKNOWN_TTL`).
//! - **Cold look-ups are bounded in number**: at most `max_cold_lookups` at once in each of
//!   two pools, one for authenticating callers (and watch streams authenticating again),
//!   one for the tokens VerifyToken and leak reports ask about, so that a verifier spraying
//!   forged tokens cannot starve authentication. A look-up that finds no slot within
//!   [`SLOT_WAIT`] is refused with RESOURCE_EXHAUSTED rather than queueing without bound in
//!   front of the database (which every replica shares).

use std::time::Duration;

use super::{AuthorityError, AuthorityResult};
use crate::domain::{SecretHash, VerificationSnapshot};
use crate::store::Store;

/// How long a hash the database did not know is remembered.
const UNKNOWN_TTL: Duration = Duration::from_secs(60);
/// How many unknown hashes are remembered at most (32 bytes each, plus moka's overhead).
const UNKNOWN_CAPACITY: u64 = 100_000;
/// How long a cold look-up waits for a slot before it is refused.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// What a cold look-up found.
// Returned once and taken apart at once: boxing the snapshot would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Lookup {
    Found(VerificationSnapshot, u64),
    /// The database does not know the hash (read now).
    NotFound,
}

/// Which pool of slots a look-up takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pool {
    /// A caller's credential, or a watch stream's again.
    Authentication,
    /// A token VerifyToken or a leak report asks about.
    Verification,
}

/// How many locks share out the hashes of one pool for [`ColdLookups::turn`].
const TURNS: usize = 64;

/// One pool's slots, and the turns its hashes take to be read.
struct Slots {
    /// One read per hash at a time: a hash's turn is the lock its first byte picks. Each
    /// pool has its own, so that a verifier holding turns cannot delay an authentication.
    turns: Vec<tokio::sync::Mutex<()>>,
    slots: tokio::sync::Semaphore,
}

impl Slots {
    fn new(slots: usize) -> Self {
        Self {
            turns: (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
            slots: tokio::sync::Semaphore::new(slots),
        }
    }
}

pub(super) struct ColdLookups {
    unknown: moka::sync::Cache<SecretHash, ()>,
    authentication: Slots,
    verification: Slots,
}

/// A hash's turn to be read in a pool: while it is held, no other read of a hash of the same
/// turn starts in that pool. The slot for the read itself must be had by `deadline`.
pub(super) struct Turn<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    pool: Pool,
    deadline: tokio::time::Instant,
}

impl ColdLookups {
    pub fn new(max_cold_lookups: usize) -> Self {
        let slots = max_cold_lookups.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        Self {
            unknown: moka::sync::Cache::builder()
                .max_capacity(UNKNOWN_CAPACITY)
                .time_to_live(UNKNOWN_TTL)
                .build(),
            authentication: Slots::new(slots),
            verification: Slots::new(slots),
        }
    }

    fn pool(&self, pool: Pool) -> &Slots {
        match pool {
            Pool::Authentication => &self.authentication,
            Pool::Verification => &self.verification,
        }
    }

    /// Waits for `hash`'s turn to be read in `pool`. Other hashes may share the turn, so the
    /// wait for it and for a slot together are bounded by [`SLOT_WAIT`]: past it the look-up
    /// is refused rather than queued.
    pub async fn turn(&self, hash: &SecretHash, pool: Pool) -> AuthorityResult<Turn<'_>> {
        let deadline = tokio::time::Instant::now() + SLOT_WAIT;
        let index = usize::from(hash.as_bytes()[0]) % TURNS;
        let Some(lock) = self.pool(pool).turns.get(index) else {
            return Err(refused());
        };
        match tokio::time::timeout_at(deadline, lock.lock()).await {
            Ok(guard) => Ok(Turn {
                _guard: guard,
                pool,
                deadline,
            }),
            Err(_) => Err(refused()),
        }
    }

    /// Whether the database did not know `hash` a moment ago.
    pub fn remembered_unknown(&self, hash: &SecretHash) -> bool {
        self.unknown.contains_key(hash)
    }

    /// The verification snapshot of `hash`, read from `store` on its `turn`, with a slot of
    /// the turn's pool.
    pub async fn snapshot(
        &self,
        store: &dyn Store,
        hash: &SecretHash,
        turn: &Turn<'_>,
    ) -> AuthorityResult<Lookup> {
        let _slot = self.slot_by(turn.pool, turn.deadline).await?;
        match store.verification_snapshot(hash).await? {
            Some((snapshot, revision)) => {
                crate::metrics::record_cold_lookup("found");
                Ok(Lookup::Found(snapshot, revision))
            }
            None => {
                crate::metrics::record_cold_lookup("not_found");
                self.unknown.insert(*hash, ());
                Ok(Lookup::NotFound)
            }
        }
    }

    /// The newest revision in `store`, read with a verification slot if one is free now:
    /// the caller has a fallback (waiting for the follower), so it never queues for one.
    pub async fn store_revision(&self, store: &dyn Store) -> Option<u64> {
        let _slot = self.verification.slots.try_acquire().ok()?;
        store.revision().await.ok()
    }

    /// A slot of `pool`, held for one read of the database (a read that is not of a
    /// verification snapshot, such as a leak report's).
    pub async fn slot(&self, pool: Pool) -> AuthorityResult<tokio::sync::SemaphorePermit<'_>> {
        self.slot_by(pool, tokio::time::Instant::now() + SLOT_WAIT)
            .await
    }

    /// A slot of `pool` by `deadline`.
    async fn slot_by(
        &self,
        pool: Pool,
        deadline: tokio::time::Instant,
    ) -> AuthorityResult<tokio::sync::SemaphorePermit<'_>> {
        match tokio::time::timeout_at(deadline, self.pool(pool).slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out (or closed, which this semaphore never is).
            _ => Err(refused()),
        }
    }
}

/// A look-up that found no turn or slot in time.
fn refused() -> AuthorityError {
    crate::metrics::record_cold_lookup("refused");
    AuthorityError::ResourceExhausted(
        "too many look-ups of uncached tokens at once: retry shortly".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TokenSecret;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    }

    // Review of issue 20: the turns were shared by both pools, so verifiers holding them
    // (each waiting for a verification slot) delayed the authentication of a hash that
    // shared their turn.
    #[test]
    fn a_verification_holding_a_turn_does_not_delay_an_authentication() {
        runtime().block_on(async {
            let lookups = ColdLookups::new(1);
            let hash = TokenSecret::generate().hash();
            let _held = lookups.turn(&hash, Pool::Verification).await.expect("free");
            let started = tokio::time::Instant::now();
            let turn = lookups.turn(&hash, Pool::Authentication).await;
            assert!(turn.is_ok(), "the other pool's turn is free");
            assert!(started.elapsed() < Duration::from_millis(100));
        });
    }

    // Review of issue 20: a turn was waited for without bound.
    #[test]
    fn a_turn_held_too_long_is_refused_not_queued() {
        runtime().block_on(async {
            let lookups = ColdLookups::new(1);
            let hash = TokenSecret::generate().hash();
            let _held = lookups
                .turn(&hash, Pool::Authentication)
                .await
                .expect("free");
            let started = tokio::time::Instant::now();
            let refused = lookups.turn(&hash, Pool::Authentication).await;
            assert!(matches!(refused, Err(AuthorityError::ResourceExhausted(_))));
            let waited = started.elapsed();
            assert!(waited >= SLOT_WAIT && waited < SLOT_WAIT * 2, "{waited:?}");
        });
    }
}
