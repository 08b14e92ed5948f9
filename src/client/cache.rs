//! The client's answer cache: answers keyed by the token's hash, each kept until its own
//! deadline and only while no newer event about its token, owner or account was applied.
//!
//! Whether a cached *valid* answer may be served also depends on the watch stream being
//! live (the verifier decides that); the cache itself only keeps answers that no applied
//! event has overtaken.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::{CompResult, Op};

use super::answer::Answer;
use crate::domain::{InvalidationTarget, SecretHash};
use crate::proto::VerificationCode;
use crate::watermarks::{Dependencies, Watermarks};

/// A cached answer and when it stops being served.
#[derive(Debug)]
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
    entries: moka::sync::Cache<SecretHash, Arc<Entry>>,
    watermarks: Watermarks,
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
                .weigher(|_, entry: &Arc<Entry>| entry.answer.weight())
                .time_to_live(longest)
                .build(),
            watermarks: Watermarks::new(longest),
            valid_ttl,
            invalid_ttl,
        }
    }

    /// The answer cached for `hash`, if it is still current.
    pub fn get(&self, hash: &SecretHash) -> Option<Arc<Entry>> {
        let entry = self.entries.get(hash)?;
        if Instant::now() >= entry.expires || !self.admits(&entry.answer) {
            self.entries.invalidate(hash);
            return None;
        }
        Some(entry)
    }

    /// Whether no event newer than `answer` was applied for its token, owner or account
    /// (nor a reset or forgotten event newer than it).
    pub fn admits(&self, answer: &Answer) -> bool {
        self.watermarks
            .admits(dependencies(answer), answer.revision)
    }

    /// Caches `answer`, asked for at `asked` (before the authority computed it), unless an
    /// event newer than it was already applied, or the cache holds a newer answer for the
    /// token; returns whether it was cached.
    ///
    /// A refusal that names its token, owner or account counts as an event about them at
    /// its revision: a valid answer computed before it (by a replica that lags behind the
    /// one that refused) is then neither cached nor handed out.
    pub fn insert(&self, hash: SecretHash, answer: Arc<Answer>, asked: Instant) -> bool {
        if answer.code != VerificationCode::Valid {
            self.learn_from_refusal(&answer);
        }
        let ttl = if answer.code == VerificationCode::Valid {
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
        if expires <= Instant::now() || !self.admits(&answer) {
            return false;
        }
        let revision = answer.revision;
        let outcome = self
            .entries
            .entry(hash)
            .and_compute_with(|existing| match existing {
                Some(held) if held.value().answer.revision > revision => Op::Nop,
                _ => Op::Put(Arc::new(Entry { answer, expires })),
            });
        !matches!(outcome, CompResult::Unchanged(_) | CompResult::StillNone(_))
    }

    /// Raises to its revision the watermark of the token a refusal names, and of its owner
    /// or account when the refusal is theirs (only then: a refusal of one token must not
    /// outdate every answer of its account).
    fn learn_from_refusal(&self, answer: &Answer) {
        let targets = [
            answer.token_id.clone().map(InvalidationTarget::Token),
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
            self.watermarks.raise(target, answer.revision);
        }
    }

    /// Applies an invalidation event.
    pub fn apply(&self, target: InvalidationTarget, revision: u64) {
        self.watermarks.raise(target, revision);
    }

    /// Forgets every answer and watermark: the revisions that follow, from `revision` on,
    /// count in another history of the database (a restored backup).
    pub fn restart_at(&self, revision: u64) {
        self.watermarks.restart_at(revision);
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
            );
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.weighted_size() <= budget);
        assert!(cache.entries.entry_count() <= budget / weight + 1);
    }
}
