//! What the verifier and its watch task share: the answer cache and whether it can be
//! trusted right now. The verifier's guarantees rest here:
//!
//! - a cached VALID answer is served only while [`TrustState::trusted`]: a stream is `live`
//!   (opened, caught up, not known lost) and was heard from within the staleness bound;
//!   the moment a stream ends, fails, falls silent or is cut off it is not (fail closed);
//! - answers count in one history of the database: an answer of another history than the
//!   one the stream follows is neither cached nor handed out (`other_history`,
//!   `same_history`);
//! - an offered answer is accepted only for an account the stream carries (`covers`);
//! - an answer's remaining life is judged by the authority's clock as last measured
//!   (`authority_now`), not by this host's.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::cache::AnswerCache;
use super::metrics::VerifierMetrics;
use crate::domain::AccountId;

/// What the verifier and its watch task share.
pub(super) struct TrustState {
    pub cache: AnswerCache,
    /// When the verifier was created: the origin of `last_heard`.
    epoch: Instant,
    /// Nanoseconds after `epoch` when the stream last delivered something; 0: never.
    last_heard: AtomicU64,
    /// Whether a stream is open and caught up: false from the moment a stream is known lost
    /// (ended, failed, silent or cut off) until the next one has replayed what was missed.
    live: AtomicBool,
    /// The newest revision the stream delivered.
    pub revision: AtomicU64,
    /// Whose events the stream carries: None until a checkpoint said; `Some(None)`: every
    /// account's.
    coverage: Mutex<Option<Option<AccountId>>>,
    /// Which history of the database the stream follows (empty: not told yet, or an
    /// authority too old to say).
    history: Mutex<String>,
    /// The authority's clock minus this host's, in microseconds, as of its last answer;
    /// `i64::MIN`: not measured yet.
    clock_offset_micros: AtomicI64,
    staleness_bound: Duration,
    pub metrics: VerifierMetrics,
}

impl TrustState {
    /// Nothing heard yet: untrusted until a stream has caught up.
    pub(super) fn new(cache: AnswerCache, staleness_bound: Duration) -> Self {
        Self {
            cache,
            epoch: Instant::now(),
            last_heard: AtomicU64::new(0),
            live: AtomicBool::new(false),
            revision: AtomicU64::new(0),
            coverage: Mutex::new(None),
            history: Mutex::new(String::new()),
            clock_offset_micros: AtomicI64::new(i64::MIN),
            staleness_bound,
            metrics: VerifierMetrics::register(),
        }
    }

    /// The stream is caught up and has just confirmed it.
    pub(super) fn heard_now(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.last_heard.store(nanos, Ordering::Release);
        self.live.store(true, Ordering::Release);
    }

    /// The stream is gone (or can no longer be believed): the cache's valid answers are not
    /// served until another stream has caught up.
    pub(super) fn lost(&self) {
        self.live.store(false, Ordering::Release);
    }

    /// The stream follows `history` from now on.
    pub(super) fn follows_history(&self, history: &str) {
        let mut followed = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *followed != history {
            history.clone_into(&mut followed);
        }
    }

    /// Whether an answer of `history` counts in another history than the one the stream
    /// follows, both being known.
    pub(super) fn other_history(&self, history: &str) -> bool {
        let followed = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !history.is_empty() && !followed.is_empty() && *followed != history
    }

    /// Whether an answer of `history` counts in the history the stream follows.
    pub(super) fn same_history(&self, history: &str) -> bool {
        *self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            == history
    }

    /// Notes the authority's clock from an answer it gave at `answered_at` (by its clock),
    /// asked for at `now` (by this host's).
    pub(super) fn measure_clock(&self, answered_at: Option<SystemTime>, now: SystemTime) {
        let Some(answered_at) = answered_at else {
            return;
        };
        let offset = match answered_at.duration_since(now) {
            Ok(ahead) => i64::try_from(ahead.as_micros()).unwrap_or(i64::MAX),
            Err(behind) => {
                i64::try_from(behind.duration().as_micros()).map_or(i64::MIN + 1, |micros| -micros)
            }
        };
        self.clock_offset_micros
            .store(offset.max(i64::MIN + 1), Ordering::Release);
    }

    /// The authority's clock minus this host's, if measured.
    pub(super) fn clock_offset(&self) -> Option<i64> {
        Some(self.clock_offset_micros.load(Ordering::Acquire)).filter(|&o| o != i64::MIN)
    }

    /// The authority's time now, by this host's clock corrected by the last measured offset.
    pub(super) fn authority_now(&self) -> SystemTime {
        let now = SystemTime::now();
        match self.clock_offset() {
            Some(offset) if offset >= 0 => now
                .checked_add(Duration::from_micros(offset.unsigned_abs()))
                .unwrap_or(now),
            Some(offset) => now
                .checked_sub(Duration::from_micros(offset.unsigned_abs()))
                .unwrap_or(now),
            None => now,
        }
    }

    /// A checkpoint said whose events the stream carries (None: every account's).
    pub(super) fn covers_now(&self, account: Option<AccountId>) {
        *self
            .coverage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(account);
    }

    /// Whether the stream carries the events of `account` (None: an answer tied to no
    /// account, which no event concerns).
    pub(super) fn covers(&self, account: Option<&AccountId>) -> bool {
        let coverage = self
            .coverage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match (&*coverage, account) {
            (_, None) | (Some(None), _) => true,
            (Some(Some(covered)), Some(account)) => covered == account,
            (None, Some(_)) => false,
        }
    }

    /// How long since the stream last confirmed the cache current; since the verifier's
    /// creation if it never has.
    pub(super) fn staleness(&self) -> Duration {
        self.staleness_at(Instant::now())
    }

    /// [`TrustState::staleness`] as of `now`.
    fn staleness_at(&self, now: Instant) -> Duration {
        let heard = Duration::from_nanos(self.last_heard.load(Ordering::Acquire));
        now.saturating_duration_since(self.epoch)
            .saturating_sub(heard)
    }

    /// Whether the stream is live and has been heard from within the staleness bound.
    pub(super) fn trusted(&self) -> bool {
        self.trusted_at(Instant::now())
    }

    /// [`TrustState::trusted`] as of `now`: the hit path reads the clock once for this and
    /// the cached answer's deadline.
    pub(super) fn trusted_at(&self, now: Instant) -> bool {
        self.live.load(Ordering::Acquire)
            && self.last_heard.load(Ordering::Acquire) != 0
            && self.staleness_at(now) <= self.staleness_bound
    }
}

/// How often the verifier's state gauges are set.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Sets the state gauges every [`SAMPLE_INTERVAL`] until `stopped` reports the verifier gone;
/// then zeroes its staleness, so that a verifier dropped while stale does not look stale for
/// ever.
pub(super) async fn sample(shared: Arc<TrustState>, mut stopped: tokio::sync::watch::Receiver<()>) {
    loop {
        shared.metrics.sample(
            shared.staleness(),
            shared.revision.load(Ordering::Acquire),
            shared.clock_offset(),
        );
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_INTERVAL) => {}
            _ = stopped.changed() => break,
        }
    }
    shared.metrics.sample(
        Duration::ZERO,
        shared.revision.load(Ordering::Acquire),
        shared.clock_offset(),
    );
}
