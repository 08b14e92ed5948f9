//! The in-memory verification cache: warm VerifyToken calls never touch the database.
//!
//! Entries are keyed by the secret's hash and hold the snapshot an answer is computed from,
//! tagged with the revision it was read at. Invalidation events do not search the cache;
//! they raise a *watermark* for the token, principal or account they name, and an entry is
//! trusted only while its revision is at least the watermarks of its token, owner and
//! account. That makes invalidation O(1) and race-free: a snapshot read before a change
//! committed carries an older revision, so it is refused even if it is inserted after the
//! event was applied.
//!
//! Entries live at most `ttl` from the moment their read began, which also bounds the
//! watermarks: a watermark older than `ttl` can only cover entries that have expired anyway,
//! so it is pruned.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::domain::{
    AccountId, InvalidationTarget, PermissionSet, PrincipalId, SecretHash, TokenId,
    VerificationSnapshot,
};

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
}

/// The newest revision applied per object of one kind, and when it was applied.
struct Marks<K>(HashMap<K, (u64, Instant)>);

impl<K: Eq + Hash> Marks<K> {
    fn raise(&mut self, key: K, revision: u64, now: Instant) {
        let mark = self.0.entry(key).or_insert((0, now));
        *mark = (mark.0.max(revision), now);
    }

    /// Whether an entry read at `revision` is at least as new as the mark of `key`.
    fn admits(&self, key: &K, revision: u64) -> bool {
        self.0.get(key).is_none_or(|(mark, _)| revision >= *mark)
    }

    fn prune(&mut self, now: Instant, ttl: Duration) {
        self.0
            .retain(|_, (_, applied)| now.duration_since(*applied) < ttl);
    }
}

/// Watermarks, one map per kind of object so that lookups borrow the snapshot's ids.
struct Watermarks {
    tokens: Marks<TokenId>,
    principals: Marks<PrincipalId>,
    accounts: Marks<AccountId>,
    last_pruned: Instant,
}

pub struct VerificationCache {
    entries: moka::sync::Cache<SecretHash, Arc<CachedSnapshot>>,
    watermarks: RwLock<Watermarks>,
    /// How many watermarks exist: while none do, reads skip the lock.
    watermark_count: AtomicUsize,
    ttl: Duration,
}

impl VerificationCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            watermarks: RwLock::new(Watermarks {
                tokens: Marks(HashMap::new()),
                principals: Marks(HashMap::new()),
                accounts: Marks(HashMap::new()),
                last_pruned: Instant::now(),
            }),
            watermark_count: AtomicUsize::new(0),
            ttl,
        }
    }

    /// The cached snapshot for `hash`, if there is one that no applied event has outdated.
    pub fn get(&self, hash: &SecretHash) -> Option<Arc<CachedSnapshot>> {
        let entry = self.entries.get(hash)?;
        if entry.loaded_at.elapsed() >= self.ttl || !self.is_current(&entry) {
            self.entries.invalidate(hash);
            return None;
        }
        Some(entry)
    }

    /// Caches a snapshot, unless an event newer than it has already been applied.
    pub fn insert(&self, hash: SecretHash, entry: Arc<CachedSnapshot>) {
        if self.is_current(&entry) {
            self.entries.insert(hash, entry);
        }
    }

    /// Applies an invalidation: entries depending on `target` read before `revision` are
    /// no longer trusted.
    pub fn invalidate(&self, target: InvalidationTarget, revision: u64) {
        let now = Instant::now();
        let mut marks = self
            .watermarks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match target {
            InvalidationTarget::Token(id) => marks.tokens.raise(id, revision, now),
            InvalidationTarget::Principal(id) => marks.principals.raise(id, revision, now),
            InvalidationTarget::Account(id) => marks.accounts.raise(id, revision, now),
        }
        if now.duration_since(marks.last_pruned) >= self.ttl {
            marks.tokens.prune(now, self.ttl);
            marks.principals.prune(now, self.ttl);
            marks.accounts.prune(now, self.ttl);
            marks.last_pruned = now;
        }
        let count = marks.tokens.0.len() + marks.principals.0.len() + marks.accounts.0.len();
        self.watermark_count.store(count, Ordering::Release);
    }

    fn is_current(&self, entry: &CachedSnapshot) -> bool {
        if self.watermark_count.load(Ordering::Acquire) == 0 {
            return true;
        }
        let marks = self
            .watermarks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let snapshot = &entry.snapshot;
        marks.tokens.admits(&snapshot.token_id, entry.revision)
            && marks.principals.admits(&snapshot.owner_id, entry.revision)
            && marks.accounts.admits(&snapshot.account_id, entry.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TokenSecret, sample_snapshot as snapshot};

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
