//! Revision watermarks: the rule that keeps caches of verification answers race-free, shared
//! by the server's cache and the client library's.
//!
//! Every cached answer is tagged with the revision it was computed at and names the token,
//! principal and account it depends on. An invalidation event raises the watermark of the
//! object it names to its revision; a reset raises a floor for everything. An answer is
//! trusted only while its revision is at least the floor and the watermarks of all three
//! objects, so an answer computed before a change is never served after the change has been
//! applied, however late it arrives.
//!
//! Watermarks are kept for `ttl`, the longest any cache keeps an answer: a watermark older
//! than that can only cover answers that have expired anyway. Forgetting one raises the floor
//! to its revision, so that an answer of unknown age (one offered to the client library) that
//! is older than a forgotten event is refused rather than trusted. They are forgotten a few
//! at a time as events arrive (oldest first, from a queue in the order they were raised), so
//! that no event holds the lock that every cache hit reads for longer than its own share:
//! an operator's stream carries every tenant's events.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::domain::{AccountId, InvalidationTarget, PrincipalId, TokenId};

/// The objects an answer depends on, as far as they are known.
#[derive(Debug, Clone, Copy)]
pub struct Dependencies<'a> {
    pub token: Option<&'a TokenId>,
    pub principal: Option<&'a PrincipalId>,
    pub account: Option<&'a AccountId>,
}

/// The newest revision applied per object of one kind, and when it was last raised.
struct Marks<K>(HashMap<K, (u64, Instant)>);

impl<K: Eq + Hash> Marks<K> {
    /// Raises `key`'s watermark; returns whether the raise must be queued. A key raised
    /// again within `ttl / 16` keeps its first raise's time (it is forgotten that much
    /// early, raising the floor to its revision: safe), so that presenting one object's
    /// events or refusals over and over does not grow the queue.
    fn raise(&mut self, key: K, revision: u64, now: Instant, ttl: Duration) -> bool {
        match self.0.get_mut(&key) {
            Some(mark) if now.duration_since(mark.1) < ttl / 16 => {
                mark.0 = mark.0.max(revision);
                false
            }
            Some(mark) => {
                *mark = (mark.0.max(revision), now);
                true
            }
            None => {
                self.0.insert(key, (revision, now));
                true
            }
        }
    }

    fn admits(&self, key: Option<&K>, revision: u64) -> bool {
        key.is_none_or(|key| self.0.get(key).is_none_or(|(mark, _)| revision >= *mark))
    }

    /// Forgets `key`'s watermark if it was last raised at `raised`; returns its revision
    /// (0 if it was raised again since, and so is kept).
    fn forget(&mut self, key: &K, raised: Instant) -> u64 {
        match self.0.get(key) {
            Some(&(revision, at)) if at == raised => {
                self.0.remove(key);
                revision
            }
            _ => 0,
        }
    }
}

/// How many aged raises one raise forgets at most: the lock every hit reads is held for
/// that much work only.
const PRUNE_BATCH: usize = 1024;
/// How many raises are queued at most; past it the oldest are forgotten early (the floor
/// rises to their revisions: answers older than them are refused, never wrongly admitted).
const MAX_RAISES: usize = 1 << 20;

struct Marked {
    tokens: Marks<TokenId>,
    principals: Marks<PrincipalId>,
    accounts: Marks<AccountId>,
    /// Every raise, oldest first: what to forget when.
    raised: VecDeque<(Instant, InvalidationTarget)>,
}

impl Marked {
    /// Forgets the watermarks last raised `ttl` ago or earlier, at most [`PRUNE_BATCH`] of
    /// them (the next raises go on), and the oldest beyond [`MAX_RAISES`]; returns the
    /// highest revision forgotten (0 if none).
    fn prune(&mut self, now: Instant, ttl: Duration) -> u64 {
        let mut forgotten = 0;
        let mut pruned = 0;
        while let Some((at, _)) = self.raised.front()
            && (now.duration_since(*at) >= ttl && pruned < PRUNE_BATCH
                || self.raised.len() > MAX_RAISES)
        {
            pruned += 1;
            let Some((at, target)) = self.raised.pop_front() else {
                break;
            };
            let revision = match &target {
                InvalidationTarget::Token(id) => self.tokens.forget(id, at),
                InvalidationTarget::Principal(id) => self.principals.forget(id, at),
                InvalidationTarget::Account(id) => self.accounts.forget(id, at),
            };
            forgotten = forgotten.max(revision);
        }
        forgotten
    }

    fn len(&self) -> usize {
        self.tokens.0.len() + self.principals.0.len() + self.accounts.0.len()
    }
}

/// Watermarks for one cache.
pub struct Watermarks {
    marks: RwLock<Marked>,
    /// How many watermarks exist: while none do, checks skip the lock.
    count: AtomicUsize,
    /// No answer older than this is trusted (raised by resets).
    floor: AtomicU64,
    ttl: Duration,
}

impl Watermarks {
    pub fn new(ttl: Duration) -> Self {
        Self {
            marks: RwLock::new(Marked {
                tokens: Marks(HashMap::new()),
                principals: Marks(HashMap::new()),
                accounts: Marks(HashMap::new()),
                raised: VecDeque::new(),
            }),
            count: AtomicUsize::new(0),
            floor: AtomicU64::new(0),
            ttl,
        }
    }

    /// Applies an invalidation event.
    pub fn raise(&self, target: InvalidationTarget, revision: u64) {
        let now = Instant::now();
        let mut marks = self
            .marks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ttl = self.ttl;
        let queued = match target.clone() {
            InvalidationTarget::Token(id) => marks.tokens.raise(id, revision, now, ttl),
            InvalidationTarget::Principal(id) => marks.principals.raise(id, revision, now, ttl),
            InvalidationTarget::Account(id) => marks.accounts.raise(id, revision, now, ttl),
        };
        if queued {
            marks.raised.push_back((now, target));
        }
        let forgotten = marks.prune(now, self.ttl);
        // Answers this old about a forgotten object can no longer be checked.
        self.floor.fetch_max(forgotten, Ordering::AcqRel);
        self.count.store(marks.len(), Ordering::Release);
    }

    /// Forgets every watermark and sets the floor to `revision`, lower than it may have
    /// been: for revisions that count in another history (a restored database).
    pub fn restart_at(&self, revision: u64) {
        let mut marks = self
            .marks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        marks.tokens.0.clear();
        marks.principals.0.clear();
        marks.accounts.0.clear();
        marks.raised.clear();
        self.count.store(0, Ordering::Release);
        self.floor.store(revision, Ordering::Release);
    }

    /// Distrusts every answer older than `revision` (after a reset).
    pub fn raise_floor(&self, revision: u64) {
        self.floor.fetch_max(revision, Ordering::AcqRel);
    }

    /// Whether an answer computed at `revision` that depends on `dependencies` is current.
    pub fn admits(&self, dependencies: Dependencies<'_>, revision: u64) -> bool {
        if revision < self.floor.load(Ordering::Acquire) {
            return false;
        }
        if self.count.load(Ordering::Acquire) == 0 {
            return true;
        }
        let marks = self
            .marks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        marks.tokens.admits(dependencies.token, revision)
            && marks.principals.admits(dependencies.principal, revision)
            && marks.accounts.admits(dependencies.account, revision)
            // Again under the lock: a raise that forgot a watermark newer than `revision`
            // after the first read of the floor raised the floor before releasing the lock.
            && revision >= self.floor.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (TokenId, PrincipalId, AccountId) {
        (
            TokenId::generate(),
            PrincipalId::generate(),
            AccountId::generate(),
        )
    }

    #[test]
    fn an_event_outdates_older_answers_about_its_object_only() {
        let marks = Watermarks::new(Duration::from_secs(60));
        let (token, principal, account) = ids();
        let deps = Dependencies {
            token: Some(&token),
            principal: Some(&principal),
            account: Some(&account),
        };
        assert!(marks.admits(deps, 5));
        marks.raise(InvalidationTarget::Token(TokenId::generate()), 9);
        assert!(marks.admits(deps, 5), "another token's event");
        for target in [
            InvalidationTarget::Token(token.clone()),
            InvalidationTarget::Principal(principal.clone()),
            InvalidationTarget::Account(account.clone()),
        ] {
            let marks = Watermarks::new(Duration::from_secs(60));
            marks.raise(target, 6);
            assert!(!marks.admits(deps, 5), "read before the change");
            assert!(marks.admits(deps, 6), "read at or after the change");
        }
    }

    #[test]
    fn unknown_dependencies_are_not_checked_but_the_floor_is() {
        let marks = Watermarks::new(Duration::from_secs(60));
        let none = Dependencies {
            token: None,
            principal: None,
            account: None,
        };
        marks.raise(InvalidationTarget::Token(TokenId::generate()), 9);
        assert!(marks.admits(none, 1));
        marks.raise_floor(4);
        assert!(!marks.admits(none, 3));
        assert!(marks.admits(none, 4));
    }

    #[test]
    fn forgotten_watermarks_raise_the_floor() {
        let marks = Watermarks::new(Duration::from_millis(10));
        let (token, _, _) = ids();
        marks.raise(InvalidationTarget::Token(token.clone()), 5);
        std::thread::sleep(Duration::from_millis(20));
        marks.raise(InvalidationTarget::Token(TokenId::generate()), 6);
        let deps = Dependencies {
            token: Some(&token),
            principal: None,
            account: None,
        };
        assert_eq!(marks.count.load(Ordering::Acquire), 1, "pruned");
        // An answer of unknown age from before the forgotten event is refused, not trusted;
        // answers from after it are admitted as before.
        assert!(!marks.admits(deps, 4));
        assert!(marks.admits(deps, 5));
    }

    // Watermarks are forgotten from a queue of raises: a watermark raised again since its
    // first raise is kept until its last raise ages out.
    #[test]
    fn a_watermark_raised_again_is_kept_until_its_last_raise_ages_out() {
        let ttl = Duration::from_millis(200);
        let marks = Watermarks::new(ttl);
        let (token, _, _) = ids();
        let deps = Dependencies {
            token: Some(&token),
            principal: None,
            account: None,
        };
        marks.raise(InvalidationTarget::Token(token.clone()), 5);
        std::thread::sleep(ttl / 2);
        marks.raise(InvalidationTarget::Token(token.clone()), 7);
        std::thread::sleep(ttl / 2 + ttl / 4);
        // The first raise aged out; the second did not.
        marks.raise(InvalidationTarget::Token(TokenId::generate()), 8);
        assert!(!marks.admits(deps, 6), "still remembered");
        assert!(marks.admits(deps, 7));
        std::thread::sleep(ttl / 2);
        marks.raise(InvalidationTarget::Token(TokenId::generate()), 9);
        assert_eq!(marks.count.load(Ordering::Acquire), 2, "forgotten at last");
        assert!(!marks.admits(deps, 6), "below the floor it raised");
    }
}
