//! The client's answer cache: answers keyed by the token's hash, each kept until its own
//! deadline and only while no newer event about its token, owner or account was applied.
//!
//! Whether a cached *valid* answer may be served also depends on the watch stream being
//! live (the verifier decides that); the cache itself only keeps answers that no applied
//! event, and no refusal the authority gave, has overtaken.
//!
//! A refusal is news: the authority refused the token at that revision, so a valid answer
//! computed before it (by a replica lagging behind the one that refused, or offered from
//! elsewhere) must be neither cached nor handed out. The refusal's revision is remembered per
//! hash (also for NOT_FOUND, which names no token: a deleted token, or a secret replaced
//! without grace), and it raises the watermark of its token, and of its owner or account when
//! the refusal is theirs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::ops::compute::{CompResult, Op};

use super::answer::Answer;
use crate::domain::{InvalidationTarget, SecretHash};
use crate::proto::VerificationCode;
use crate::watermarks::{Dependencies, Watermarks};

/// How many hashes' refusals are remembered at most (a hash and a revision each). Past it,
/// the least used are forgotten first; the watermarks of their tokens still hold.
const REFUSALS_REMEMBERED: u64 = 200_000;

/// A cached answer and when it stops being served (cheap to clone: the cache hands out
/// clones).
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub answer: Arc<Answer>,
    expires: Instant,
}

fn dependencies(answer: &Answer) -> Dependencies<'_> {
    Dependencies {
        token: answer.token_id.as_ref(),
        principal: answer.owner_id.as_ref(),
        account: answer.account_id.as_ref(),
    }
}

pub(super) struct AnswerCache {
    entries: moka::sync::Cache<SecretHash, Entry>,
    /// The newest revision at which the authority refused each hash.
    refusals: moka::sync::Cache<SecretHash, u64>,
    watermarks: Watermarks,
    /// Bumped when the database's history changes: an answer asked for before that counts
    /// in the old history and is neither cached nor handed out.
    generation: AtomicU64,
    valid_ttl: Duration,
    invalid_ttl: Duration,
}

impl AnswerCache {
    /// A cache of at most `bytes` of answers (as [`Answer::weight`] estimates them).
    pub fn new(bytes: u64, valid_ttl: Duration, invalid_ttl: Duration) -> Self {
        let longest = valid_ttl.max(invalid_ttl);
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, entry: &Entry| entry.answer.weight())
                .time_to_live(longest)
                .build(),
            refusals: moka::sync::Cache::builder()
                .max_capacity(REFUSALS_REMEMBERED)
                .time_to_live(longest)
                .build(),
            watermarks: Watermarks::new(longest),
            generation: AtomicU64::new(0),
            valid_ttl,
            invalid_ttl,
        }
    }

    /// The answer cached for `hash`, if it is still current at `now`.
    pub fn get(&self, hash: &SecretHash, now: Instant) -> Option<Entry> {
        let entry = self.entries.get(hash)?;
        if now >= entry.expires || !self.admits(&entry.answer) {
            self.entries.invalidate(hash);
            return None;
        }
        Some(entry)
    }

    /// Whether no event newer than `answer` was applied for its token, owner or account
    /// (nor a reset or forgotten event newer than it).
    fn admits(&self, answer: &Answer) -> bool {
        self.watermarks
            .admits(dependencies(answer), answer.revision)
    }

    /// Whether `answer` for `hash` may still be handed out: no event applied since it was
    /// computed, and, if it is valid, no refusal of the hash at its revision or later.
    pub fn current(&self, hash: &SecretHash, answer: &Answer) -> bool {
        self.admits(answer)
            && (answer.code != VerificationCode::Valid
                || self
                    .refusals
                    .get(hash)
                    .is_none_or(|refused| answer.revision > refused))
    }

    /// Which history generation answers are asked for in (see [`AnswerCache::restart_at`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Learns from a refusal of `hash` asked for in history `generation` (see the module's
    /// docs); nothing from a valid answer, nor from one of an older history (its revisions
    /// count in another order). A valid answer cached for the hash as old as the refusal is
    /// dropped, so that no later hit serves it.
    pub fn learn(&self, hash: &SecretHash, answer: &Answer, generation: u64) {
        if answer.code == VerificationCode::Valid || self.generation() != generation {
            return;
        }
        let revision = answer.revision;
        self.refusals
            .entry(*hash)
            .and_compute_with(|held| match held {
                Some(held) if *held.value() >= revision => Op::Nop,
                _ => Op::Put(revision),
            });
        let targets = [
            answer.token_id.clone().map(InvalidationTarget::Token),
            // Only when the refusal is theirs: a refusal of one token must not outdate
            // every answer of its account.
            answer
                .owner_id
                .clone()
                .filter(|_| answer.code == VerificationCode::OwnerDisabled)
                .map(InvalidationTarget::Principal),
            answer
                .account_id
                .clone()
                .filter(|_| answer.code == VerificationCode::ApiAccessDisabled)
                .map(InvalidationTarget::Account),
        ];
        for target in targets.into_iter().flatten() {
            self.watermarks.raise(target, revision);
        }
        self.entries
            .entry(*hash)
            .and_compute_with(|held| match held {
                Some(held)
                    if held.value().answer.code == VerificationCode::Valid
                        && held.value().answer.revision <= revision =>
                {
                    Op::Remove
                }
                _ => Op::Nop,
            });
    }

    /// Caches `answer`, asked for at `asked` (before the authority computed it) in history
    /// `generation`, unless it is no longer [`AnswerCache::current`], the history changed
    /// meanwhile, or the cache holds a newer answer for the token (or a refusal as new);
    /// returns whether it was cached.
    pub fn insert(
        &self,
        hash: SecretHash,
        answer: Arc<Answer>,
        asked: Instant,
        generation: u64,
    ) -> bool {
        let valid = answer.code == VerificationCode::Valid;
        let ttl = if valid {
            // Never past the token's (or the secret's grace period's) own end, counted from
            // the moment it was asked for: the authority answered later than that.
            answer
                .lifetime
                .map_or(self.valid_ttl, |left| left.min(self.valid_ttl))
        } else {
            self.invalid_ttl
        };
        let Some(expires) = asked.checked_add(ttl) else {
            return false;
        };
        if expires <= Instant::now()
            || self.generation() != generation
            || !self.current(&hash, &answer)
        {
            return false;
        }
        let revision = answer.revision;
        // Under the key's lock, which `learn` takes after recording a refusal: a refusal
        // recorded since the check above is seen here, or `learn` drops this entry after.
        let refused_since = |hash: &SecretHash| {
            valid
                && self
                    .refusals
                    .get(hash)
                    .is_some_and(|refused| revision <= refused)
        };
        let outcome = self
            .entries
            .entry(hash)
            .and_compute_with(|existing| match existing {
                _ if refused_since(&hash) => Op::Nop,
                Some(held)
                    if held.value().answer.revision > revision
                        || held.value().answer.revision == revision
                            && valid
                            && held.value().answer.code != VerificationCode::Valid =>
                {
                    Op::Nop
                }
                _ => Op::Put(Entry { answer, expires }),
            });
        let cached = !matches!(outcome, CompResult::Unchanged(_) | CompResult::StillNone(_));
        if cached && self.generation() != generation {
            // The history changed while it was put: it belongs to the old one.
            self.entries.invalidate(&hash);
            return false;
        }
        cached
    }

    /// Applies an invalidation event.
    pub fn apply(&self, target: InvalidationTarget, revision: u64) {
        self.watermarks.raise(target, revision);
    }

    /// Forgets every answer, refusal and watermark: the revisions that follow, from
    /// `revision` on, count in another history of the database (a restored backup).
    pub fn restart_at(&self, revision: u64) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.watermarks.restart_at(revision);
        self.refusals.invalidate_all();
        self.entries.invalidate_all();
    }

    /// A reset in the same history: forgets every answer and distrusts any older than
    /// `revision`. What was learned (watermarks, refusals) stays: it still holds.
    pub fn reset(&self, revision: u64) {
        self.watermarks.raise_floor(revision);
        self.entries.invalidate_all();
    }

    /// Distrusts every answer older than `revision` (the start of a fresh stream).
    pub fn raise_floor(&self, revision: u64) {
        self.watermarks.raise_floor(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TokenSecret;
    use crate::proto;

    /// A valid answer whose identity carries 64 labels of 256 characters.
    fn heavy_answer() -> Arc<Answer> {
        let labels = (0..64)
            .map(|i| (format!("{i:0>256}"), "v".repeat(256)))
            .collect();
        Arc::new(Answer::from_response(proto::VerifyTokenResponse {
            valid: true,
            code: VerificationCode::Valid.into(),
            token_id: crate::domain::TokenId::generate().to_string(),
            labels,
            ..Default::default()
        }))
    }

    // Suspected in issue 21, confirmed: the cache counted answers, not bytes, so 100,000
    // identities of 64 labels of 256 characters each held over 3 GiB.
    #[test]
    fn the_cache_holds_at_most_its_bytes() {
        let budget = 4 * 1024 * 1024;
        let cache = AnswerCache::new(budget, Duration::from_secs(60), Duration::from_secs(5));
        let weight = u64::from(heavy_answer().weight());
        assert!(
            weight > 64 * 512,
            "an answer weighs what it holds: {weight}"
        );
        for _ in 0..1_000 {
            cache.insert(
                TokenSecret::generate().hash(),
                heavy_answer(),
                Instant::now(),
                0,
            );
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.weighted_size() <= budget);
        assert!(cache.entries.entry_count() <= budget / weight + 1);
    }

    fn answer(code: VerificationCode, revision: u64) -> Arc<Answer> {
        Arc::new(Answer::from_response(proto::VerifyTokenResponse {
            valid: code == VerificationCode::Valid,
            code: code.into(),
            revision,
            ..Default::default()
        }))
    }

    // Review of issue 21: NOT_FOUND names no token, so only the hash can remember it; a
    // valid answer as old as a refusal, or older, is never current (on a tie, the refusal).
    #[test]
    fn a_refusal_of_a_hash_outdates_valid_answers_up_to_its_revision() {
        let cache = AnswerCache::new(1 << 20, Duration::from_secs(60), Duration::from_secs(5));
        let hash = TokenSecret::generate().hash();
        let other = TokenSecret::generate().hash();
        // A valid answer cached before the refusal is not served after it.
        assert!(cache.insert(hash, answer(VerificationCode::Valid, 9), Instant::now(), 0));
        assert!(cache.get(&hash, Instant::now()).is_some());
        cache.learn(&hash, &answer(VerificationCode::NotFound, 10), 0);
        assert!(
            cache.get(&hash, Instant::now()).is_none(),
            "dropped by the refusal"
        );
        for revision in [9, 10] {
            let valid = answer(VerificationCode::Valid, revision);
            assert!(!cache.current(&hash, &valid), "{revision}");
            assert!(!cache.insert(hash, valid, Instant::now(), 0), "{revision}");
        }
        assert!(cache.current(&other, &answer(VerificationCode::Valid, 9)));
        assert!(cache.current(&hash, &answer(VerificationCode::Valid, 11)));
        // A history change forgets it, and refuses what was asked for before.
        let before = cache.generation();
        cache.restart_at(1);
        assert!(cache.current(&hash, &answer(VerificationCode::Valid, 2)));
        assert!(!cache.insert(
            hash,
            answer(VerificationCode::Valid, 2),
            Instant::now(),
            before
        ));
        assert!(cache.insert(
            hash,
            answer(VerificationCode::Valid, 2),
            Instant::now(),
            cache.generation()
        ));
    }
}
