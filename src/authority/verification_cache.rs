//! The in-memory verification cache: warm VerifyToken calls never touch the database.
//!
//! Entries are keyed by the secret's hash and hold the snapshot an answer is computed from,
//! tagged with the revision it was read at. Invalidation events do not search the cache;
//! they raise a watermark (see `crate::watermarks`) for the object they name, which makes
//! invalidation O(1) and race-free. Entries live at most `ttl` from the moment their read
//! began, which also bounds how long watermarks must be kept.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;

use crate::domain::{InvalidationTarget, PermissionSet, SecretHash, VerificationSnapshot};
use crate::watermarks::{Dependencies, Watermarks};

/// A snapshot as cached, with what every verification of it needs precomputed.
#[derive(Debug)]
pub struct CachedSnapshot {
    pub snapshot: VerificationSnapshot,
    /// The token's effective scopes (they depend on the snapshot only).
    pub effective_scopes: PermissionSet,
    /// The revision the snapshot was read at.
    pub revision: u64,
    /// When the read that produced it began.
    loaded_at: Instant,
    /// The last second (Unix time) a use of this token was handed to the last-use recorder,
    /// so that the recorder sees each token at most once a second.
    pub(super) last_use_second: AtomicI64,
}

impl CachedSnapshot {
    pub fn new(snapshot: VerificationSnapshot, revision: u64, loaded_at: Instant) -> Self {
        Self {
            effective_scopes: snapshot.effective_scopes(),
            snapshot,
            revision,
            loaded_at,
            last_use_second: AtomicI64::new(0),
        }
    }

    fn dependencies(&self) -> Dependencies<'_> {
        Dependencies {
            token: Some(&self.snapshot.token_id),
            principal: Some(&self.snapshot.owner_id),
            account: Some(&self.snapshot.account_id),
        }
    }
}

pub struct VerificationCache {
    entries: moka::sync::Cache<SecretHash, Arc<CachedSnapshot>>,
    watermarks: Watermarks,
    ttl: Duration,
}

impl VerificationCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .eviction_listener(|_, _, cause| {
                    let reason = match cause {
                        RemovalCause::Size => "capacity",
                        RemovalCause::Expired => "expired",
                        RemovalCause::Explicit => "invalidated",
                        // A fresher snapshot of the same secret took its place.
                        RemovalCause::Replaced => return,
                    };
                    crate::metrics::record_cache_eviction(reason);
                })
                .build(),
            watermarks: Watermarks::new(ttl),
            ttl,
        }
    }

    /// How many snapshots are cached (approximate: moka counts lazily).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// The cached snapshot for `hash`, if there is one that no applied event has outdated.
    pub fn get(&self, hash: &SecretHash) -> Option<Arc<CachedSnapshot>> {
        let entry = self.entries.get(hash)?;
        if entry.loaded_at.elapsed() >= self.ttl
            || !self.watermarks.admits(entry.dependencies(), entry.revision)
        {
            self.entries.invalidate(hash);
            return None;
        }
        Some(entry)
    }

    /// Caches a snapshot, unless an event newer than it has already been applied.
    pub fn insert(&self, hash: SecretHash, entry: Arc<CachedSnapshot>) {
        if self.watermarks.admits(entry.dependencies(), entry.revision) {
            self.entries.insert(hash, entry);
        }
    }

    /// Applies an invalidation: entries depending on `target` read before `revision` are
    /// no longer trusted.
    pub fn invalidate(&self, target: InvalidationTarget, revision: u64) {
        self.watermarks.raise(target, revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TokenId, TokenSecret, sample_snapshot as snapshot};

    fn cached(revision: u64) -> (SecretHash, Arc<CachedSnapshot>) {
        let entry = Arc::new(CachedSnapshot::new(snapshot(), revision, Instant::now()));
        (TokenSecret::generate().hash(), entry)
    }

    #[test]
    fn entries_are_served_until_an_event_names_their_token_owner_or_account() {
        let cache = VerificationCache::new(100, Duration::from_secs(60));
        let targets = |e: &CachedSnapshot| {
            [
                InvalidationTarget::Token(e.snapshot.token_id.clone()),
                InvalidationTarget::Principal(e.snapshot.owner_id.clone()),
                InvalidationTarget::Account(e.snapshot.account_id.clone()),
            ]
        };
        for index in 0..3 {
            let (hash, entry) = cached(5);
            cache.insert(hash, entry.clone());
            assert!(cache.get(&hash).is_some());
            // An event about something else leaves it alone.
            cache.invalidate(InvalidationTarget::Token(TokenId::generate()), 6);
            assert!(cache.get(&hash).is_some());
            cache.invalidate(targets(&entry)[index].clone(), 6);
            assert!(cache.get(&hash).is_none(), "target {index}");
        }
    }

    #[test]
    fn a_snapshot_older_than_an_applied_event_is_never_cached() {
        let cache = VerificationCache::new(100, Duration::from_secs(60));
        let (hash, entry) = cached(5);
        // The event (revision 6) arrives while the read that produced revision 5 was in flight.
        cache.invalidate(
            InvalidationTarget::Token(entry.snapshot.token_id.clone()),
            6,
        );
        cache.insert(hash, entry.clone());
        assert!(cache.get(&hash).is_none());
        // A snapshot read after the change is fine.
        let fresh = Arc::new(CachedSnapshot::new(
            entry.snapshot.clone(),
            6,
            Instant::now(),
        ));
        cache.insert(hash, fresh);
        assert!(cache.get(&hash).is_some());
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = VerificationCache::new(100, Duration::from_millis(20));
        let (hash, entry) = cached(1);
        cache.insert(hash, entry);
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get(&hash).is_none());
    }
}
