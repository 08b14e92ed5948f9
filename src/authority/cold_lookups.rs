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

/// How many locks share out the hashes for [`ColdLookups::turn`].
const TURNS: usize = 64;

pub(super) struct ColdLookups {
    unknown: moka::sync::Cache<SecretHash, ()>,
    /// One read per hash at a time: a hash's turn is the lock its first byte picks.
    turns: Vec<tokio::sync::Mutex<()>>,
    authentication: tokio::sync::Semaphore,
    verification: tokio::sync::Semaphore,
}

impl ColdLookups {
    pub fn new(max_cold_lookups: usize) -> Self {
        let slots = max_cold_lookups.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        Self {
            unknown: moka::sync::Cache::builder()
                .max_capacity(UNKNOWN_CAPACITY)
                .time_to_live(UNKNOWN_TTL)
                .build(),
            turns: (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
            authentication: tokio::sync::Semaphore::new(slots),
            verification: tokio::sync::Semaphore::new(slots),
        }
    }

    /// Waits for `hash`'s turn to be read (other hashes may share it: at most [`TURNS`]
    /// reads run at once in all, more than the slots of both pools).
    pub async fn turn(&self, hash: &SecretHash) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let index = usize::from(hash.as_bytes()[0]) % TURNS;
        match self.turns.get(index) {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// Whether the database did not know `hash` a moment ago.
    pub fn remembered_unknown(&self, hash: &SecretHash) -> bool {
        self.unknown.contains_key(hash)
    }

    /// The verification snapshot of `hash`, read from `store` with a slot of `pool`.
    pub async fn snapshot(
        &self,
        store: &dyn Store,
        hash: &SecretHash,
        pool: Pool,
    ) -> AuthorityResult<Lookup> {
        let _slot = self.slot(pool).await?;
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

    /// The newest revision in `store`, read within the verification pool's bound.
    pub async fn store_revision(&self, store: &dyn Store) -> AuthorityResult<u64> {
        let _slot = self.slot(Pool::Verification).await?;
        Ok(store.revision().await?)
    }

    /// A slot of `pool`, held for one read of the database.
    pub async fn slot(&self, pool: Pool) -> AuthorityResult<tokio::sync::SemaphorePermit<'_>> {
        let slots = match pool {
            Pool::Authentication => &self.authentication,
            Pool::Verification => &self.verification,
        };
        match tokio::time::timeout(SLOT_WAIT, slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out (or closed, which this semaphore never is).
            _ => {
                crate::metrics::record_cold_lookup("refused");
                Err(AuthorityError::ResourceExhausted(
                    "too many look-ups of uncached tokens at once: retry shortly".into(),
                ))
            }
        }
    }
}
