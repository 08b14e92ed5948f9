//! The client's answer cache: answers keyed by the token's hash, each kept until its own
//! deadline and only while no newer event about its token, owner or account was applied.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::answer::Answer;
use crate::domain::{InvalidationTarget, SecretHash};
use crate::proto::VerificationCode;
use crate::watermarks::{Dependencies, Watermarks};

/// A cached answer and when it stops being served.
#[derive(Debug)]
pub(super) struct Entry {
    pub answer: Answer,
    expires: Instant,
}

impl Entry {
    fn dependencies(&self) -> Dependencies<'_> {
        Dependencies {
            token: self.answer.token_id.as_ref(),
            principal: self.answer.owner_id.as_ref(),
            account: self.answer.account_id.as_ref(),
        }
    }
}

pub(super) struct AnswerCache {
    entries: moka::sync::Cache<SecretHash, Arc<Entry>>,
    watermarks: Watermarks,
    valid_ttl: Duration,
    invalid_ttl: Duration,
}

impl AnswerCache {
    pub fn new(capacity: u64, valid_ttl: Duration, invalid_ttl: Duration) -> Self {
        let longest = valid_ttl.max(invalid_ttl);
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
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
        if Instant::now() >= entry.expires
            || !self
                .watermarks
                .admits(entry.dependencies(), entry.answer.revision)
        {
            self.entries.invalidate(hash);
            return None;
        }
        Some(entry)
    }

    /// Caches `answer` unless an event newer than it was already applied; returns whether
    /// it was cached.
    pub fn insert(&self, hash: SecretHash, answer: Answer) -> bool {
        let ttl = if answer.code == VerificationCode::Valid {
            // Never past the token's (or the secret's grace period's) own end.
            let until_expiry = answer
                .identity
                .as_ref()
                .and_then(|identity| identity.expire_time)
                .map(|at| {
                    at.duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                });
            until_expiry.map_or(self.valid_ttl, |left| left.min(self.valid_ttl))
        } else {
            self.invalid_ttl
        };
        let entry = Entry {
            answer,
            expires: Instant::now() + ttl,
        };
        if ttl.is_zero()
            || !self
                .watermarks
                .admits(entry.dependencies(), entry.answer.revision)
        {
            return false;
        }
        self.entries.insert(hash, Arc::new(entry));
        true
    }

    /// Applies an invalidation event.
    pub fn apply(&self, target: InvalidationTarget, revision: u64) {
        self.watermarks.raise(target, revision);
    }

    /// Distrusts every answer older than `revision`; with `drop_all`, forgets everything.
    pub fn raise_floor(&self, revision: u64, drop_all: bool) {
        self.watermarks.raise_floor(revision);
        if drop_all {
            self.entries.invalidate_all();
        }
    }
}
