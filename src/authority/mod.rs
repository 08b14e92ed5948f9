//! The use cases of the token authority (create, verify, revoke, …) over a [`Store`], with
//! the in-memory verification cache and the batched last-use recorder.
//!
//! Every use case takes the authenticated [`Caller`], checks its permission and account,
//! applies the domain's rules and commits through the store. Changes that can alter a
//! verification answer come back from the store as invalidation events, which are applied to
//! the cache before the call returns, so a revoke is visible to the next verify at once.

mod access;
mod admin;
mod bootstrap;
mod caller;
mod cold_lookups;
mod error;
mod events;
pub(crate) mod failed_authentications;
mod last_use;
mod leaks;
mod page_token;
mod paging;
mod quotas;
mod token_changes;
mod token_policy;
mod token_requests;
mod token_rules;
mod tokens;
mod verification_cache;
mod verify;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::{AccountId, AuditAction, AuditRecord, InvalidationEvent, Timestamp, TokenId};
use crate::store::Store;

pub use admin::{AuditFilter, NewPrincipal, PrincipalUpdate};
pub use bootstrap::bootstrap;
pub use caller::Caller;
pub use error::AuthorityError;
pub use events::EventBatch;
pub use leaks::{LeakOutcome, LeakReport, LeakStatus};
pub use page_token::PageTokenCodec;
pub use paging::Page;
#[cfg(feature = "cli")]
pub(crate) use paging::decode_time_position;
pub use token_requests::{Expiry, NewToken, TokenFilter, TokenUpdate};
pub use verify::VerifyOutcome;
pub use watch::{WatchItem, WatchOptions, WatchStart};

use cold_lookups::ColdLookups;
use failed_authentications::FailedAuthentications;
use last_use::LastUseRecorder;
use verification_cache::VerificationCache;

pub type AuthorityResult<T> = Result<T, AuthorityError>;

/// The longest a mutating call waits for the event follower to apply its event.
const APPLY_WAIT: Duration = Duration::from_secs(1);
/// How often at most VerifyToken reads the newest revision for a `min_revision` not applied
/// yet, to refuse one that was never committed.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// How many gateway credentials' allowances (`Authority::gateway_failures`) are kept at
/// most: far more gateways than a deployment runs, and a bound whatever happens.
const GATEWAY_CREDENTIALS_CAPACITY: u64 = 10_000;

/// Tunables of the authority.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// Where the time comes from: the wall clock, except in tests that move it.
    pub clock: crate::domain::Clock,
    /// The longest grace period a reset may give the old secret.
    pub max_grace_period: Duration,
    /// How many verified secrets the cache holds.
    pub verification_cache_capacity: u64,
    /// How long a cached snapshot is trusted at most, events or not.
    pub verification_cache_ttl: Duration,
    /// How many event batches the watchers' broadcast holds: a watcher further behind than
    /// this is cut off (and resumes from the store).
    pub watch_buffer: usize,
    /// The cache is trusted only while the event follower has read the events table this
    /// recently: when the database is unreachable, warm answers are served this long at most.
    pub max_event_lag: Duration,
    /// How long VerifyToken waits for a `min_revision` this authority has not applied yet.
    pub max_revision_wait: Duration,
    /// How many reads of the database for tokens no cache holds may run at once.
    pub max_cold_lookups: usize,
    /// Failed authentications allowed per second per peer address and per credential (with
    /// a burst of five seconds' worth); 0: no limit.
    pub auth_failures_per_second: u32,
    /// The most tokens one account holds (revoked ones included); 0: no quota.
    pub max_tokens_per_account: u64,
    /// The most principals one account holds; 0: no quota.
    pub max_principals_per_account: u64,
}

/// The use cases. Cheap to share: wrap it in an `Arc`.
pub struct Authority {
    store: Arc<dyn Store>,
    config: AuthorityConfig,
    cache: VerificationCache,
    last_use: LastUseRecorder,
    /// Look-ups the cache cannot answer: bounded, and unknown hashes remembered.
    cold: ColdLookups,
    /// Failed authentications, limited per peer and per credential.
    failures: FailedAuthentications,
    /// The same allowance for the clients of gateways that ask the authority's own `Check`,
    /// one per gateway credential (by its token). Kept apart from `failures`, so that a
    /// client spraying forged tokens through a gateway cannot hold off callers of the
    /// authority (or the gateway's own credential) that share its address; and per
    /// credential, since a gateway names its client's address itself: a credential can
    /// spend (and exhaust) only its own allowance of any address, never that of another
    /// gateway, of its account or another.
    gateway_failures: moka::sync::Cache<TokenId, Arc<FailedAuthentications>>,
    page_tokens: PageTokenCodec,
    /// The revision up to which every event has been applied to the cache, in order (read on
    /// every verification, hence an atomic) ...
    revision: AtomicU64,
    /// ... and the same, for waiting on it.
    applied: tokio::sync::watch::Sender<u64>,
    /// When (Unix microseconds) the event follower last read the events table successfully.
    followed_at: std::sync::atomic::AtomicI64,
    /// Applied events, for the watchers.
    feed: tokio::sync::broadcast::Sender<EventBatch>,
    /// Wakes the event follower after a local commit.
    wake: tokio::sync::Notify,
    /// When the newest revision was last read for a `min_revision`; held while reading.
    revision_probe: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// When (microseconds since `started`) the event follower was last woken for a
    /// `min_revision`: at most once per [`PROBE_INTERVAL`].
    revision_wake: AtomicI64,
    started: std::time::Instant,
    /// Accounts recently found at a quota (see `quotas.rs`).
    at_quota: moka::sync::Cache<(AccountId, quotas::Quota), ()>,
    /// Turns true when the server shuts down: watch streams end so that draining can finish.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Which history of the database revisions count in: a restored backup starts another.
    history: String,
}

impl Authority {
    /// Builds the authority over a migrated store.
    pub async fn new(store: Arc<dyn Store>, config: AuthorityConfig) -> AuthorityResult<Self> {
        let started_at = config.clock.now().timestamp_micros();
        let key = store
            .setting_or_init("page_token_key", &random_key())
            .await?;
        let key: [u8; 32] = key.try_into().map_err(|_| AuthorityError::Internal)?;
        // Removed from a backup's copy (and by the runbook after any other restore), so
        // that a restored database starts a history of its own.
        let history = store
            .setting_or_init(crate::store::HISTORY_SETTING, &random_key()[..16])
            .await?;
        let history = history.iter().map(|byte| format!("{byte:02x}")).collect();
        let revision = store.revision().await?;
        let (feed, _) = tokio::sync::broadcast::channel(config.watch_buffer.max(1));
        Ok(Self {
            cache: VerificationCache::new(
                config.verification_cache_capacity,
                config.verification_cache_ttl,
            ),
            cold: ColdLookups::new(config.max_cold_lookups),
            failures: FailedAuthentications::new(config.auth_failures_per_second),
            // Gateway credentials are few (each is a token an administrator made); one idle
            // for an hour has nothing left to refuse.
            gateway_failures: moka::sync::Cache::builder()
                .max_capacity(GATEWAY_CREDENTIALS_CAPACITY)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            store,
            config,
            last_use: LastUseRecorder::default(),
            page_tokens: PageTokenCodec::new(key),
            revision: AtomicU64::new(revision),
            applied: tokio::sync::watch::Sender::new(revision),
            followed_at: std::sync::atomic::AtomicI64::new(started_at),
            feed,
            wake: tokio::sync::Notify::new(),
            revision_probe: tokio::sync::Mutex::new(None),
            revision_wake: AtomicI64::new(i64::MIN),
            started: std::time::Instant::now(),
            at_quota: quotas::at_quota_memory(),
            stopping: tokio::sync::watch::Sender::new(false),
            history,
        })
    }

    /// Which history of the database revisions count in (see `Checkpoint.history`).
    pub fn history(&self) -> &str {
        &self.history
    }

    /// The time by the authority's clock (the wall clock, unless a test moves it).
    pub fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    /// The newest revision this authority has applied.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// A change this process committed: its watermark is raised at once, the event
    /// follower is woken, and the call returns once the follower has applied the event (or
    /// after [`APPLY_WAIT`] if it cannot read the store). So when a mutating RPC returns,
    /// verifications here reflect it, carry a revision at least its own, and watchers have
    /// been handed the event.
    ///
    /// Returns the revision the change is reported at (its `revision` in the API): the
    /// event's, or, for a change that alters no verification answer, the newest applied here
    /// (nothing to wait for).
    async fn apply_committed(&self, event: Option<InvalidationEvent>) -> u64 {
        let Some(event) = event else {
            return self.revision();
        };
        self.cache
            .invalidate(event.invalidation.target, event.revision);
        self.wake.notify_one();
        let mut applied = self.applied.subscribe();
        let caught_up = applied.wait_for(|revision| *revision >= event.revision);
        if tokio::time::timeout(APPLY_WAIT, caught_up).await.is_err() {
            tracing::warn!(revision = event.revision, "the event follower is behind");
        }
        event.revision
    }

    /// Waits until this authority has applied `revision`, at most `max_revision_wait`; the
    /// event follower is woken to read the events table at once rather than at its next
    /// poll. 0 is always applied.
    ///
    /// A revision newer than any committed is refused at once (INVALID_ARGUMENT) when the
    /// newest revision can be read (see [`Authority::probe_newest_revision`]): no answer ever
    /// carried it, and waiting for it would hold the call until some account changes.
    pub async fn await_revision(&self, revision: u64) -> AuthorityResult<()> {
        if self.revision() >= revision {
            return Ok(());
        }
        // One read at a time, at most one per PROBE_INTERVAL: a caller sending far-future
        // revisions costs the database no more than that (its other calls wait below, as
        // for a revision not applied yet). A store that cannot be read leaves the wait to
        // answer.
        if let Some(newest) = self.probe_newest_revision().await
            && newest < revision
        {
            return Err(AuthorityError::invalid(
                "min_revision",
                "is newer than any change committed: pass a revision an answer carried",
            ));
        }
        // Wake the follower, at most once per PROBE_INTERVAL whoever asks (so that a caller
        // cannot keep it reading the events table back to back), and again every interval
        // while waiting (so that a revision committed just after someone else's wake is read
        // within one interval).
        let deadline = tokio::time::Instant::now() + self.config.max_revision_wait;
        let mut applied = self.applied.subscribe();
        loop {
            let next_wake = self.wake_for_revision();
            let until = deadline.min(tokio::time::Instant::now() + next_wake);
            let caught_up = applied.wait_for(|applied| *applied >= revision);
            match tokio::time::timeout_at(until, caught_up).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(_)) => break,
                Err(_) if tokio::time::Instant::now() >= deadline => break,
                Err(_) => {}
            }
        }
        Err(AuthorityError::RevisionNotApplied {
            wanted: revision,
            waited: self.config.max_revision_wait,
        })
    }

    /// The newest revision the store holds, read now; None when a read is in flight or one
    /// was made within [`PROBE_INTERVAL`] (or no verification slot is free, or the store
    /// cannot be read).
    async fn probe_newest_revision(&self) -> Option<u64> {
        let mut last = self.revision_probe.try_lock().ok()?;
        if last.is_some_and(|at| at.elapsed() < PROBE_INTERVAL) {
            return None;
        }
        *last = Some(std::time::Instant::now());
        self.cold.store_revision(self.store.as_ref()).await
    }

    /// Wakes the event follower unless it was woken for a revision within
    /// [`PROBE_INTERVAL`]; returns how long until it may be woken again.
    fn wake_for_revision(&self) -> Duration {
        let now = i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let interval = i64::try_from(PROBE_INTERVAL.as_micros()).unwrap_or(i64::MAX);
        let last = self.revision_wake.load(Ordering::Relaxed);
        let since = now.saturating_sub(last);
        if since >= interval
            && self
                .revision_wake
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.wake.notify_one();
            return PROBE_INTERVAL;
        }
        // Someone else woke it within the interval (or just now): ask again when it may be
        // woken, not a whole interval from now.
        let remaining = interval.saturating_sub(since).max(1);
        Duration::from_micros(u64::try_from(remaining).unwrap_or(1))
    }

    /// Whether the event follower has read the events table within `bound` of `at`: only
    /// then is what the cache holds known to be current.
    fn events_followed_within(&self, bound: Duration, at: Timestamp) -> bool {
        self.event_lag(at) <= bound
    }

    /// How long before `at` the event follower last read the events table to its end.
    fn event_lag(&self, at: Timestamp) -> Duration {
        let followed_at = self.followed_at.load(Ordering::Acquire);
        let lag = at.timestamp_micros().saturating_sub(followed_at);
        Duration::from_micros(u64::try_from(lag).unwrap_or(0))
    }

    /// Whether warm verifications are answered from the cache right now: the events were
    /// followed recently enough (within `max_event_lag`) for cached answers to be trusted.
    pub fn cache_trusted(&self) -> bool {
        self.events_followed_within(self.config.max_event_lag, self.now())
    }

    /// Records the gauges of the event follower and the cache (sampled by the server).
    pub fn record_gauges(&self) {
        crate::metrics::record_sample(&crate::metrics::Sample {
            applied: self.revision(),
            lag: self.event_lag(self.now()),
            cache_entries: self.cache.entry_count(),
            last_use_pending: self.last_use.len(),
            pools: self.store.pool_usage(),
        });
    }

    /// The database's newest revision (a cheap read): whether the database answers, for the
    /// health service.
    pub async fn store_revision(&self) -> AuthorityResult<u64> {
        Ok(self.store.revision().await?)
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Ends every watch stream (with UNAVAILABLE, so that clients resume elsewhere).
    pub fn stop_watches(&self) {
        self.stopping.send_replace(true);
    }

    /// The allowances of the clients of the gateway whose credential is the token
    /// `gateway`, asking the authority's own `Check`, which they spend (per client address)
    /// on tokens that fail a database read.
    pub(crate) fn gateway_failures(&self, gateway: &TokenId) -> Arc<FailedAuthentications> {
        self.gateway_failures.get_with_by_ref(gateway, || {
            Arc::new(FailedAuthentications::new(
                self.config.auth_failures_per_second,
            ))
        })
    }

    /// Forgets the failure allowances of peers and credentials that stopped failing.
    /// Called periodically.
    pub fn forget_idle_failures(&self) {
        self.failures.forget_idle();
        for (_, failures) in self.gateway_failures.iter() {
            failures.forget_idle();
        }
    }

    /// Writes pending last-use times to the store. Called periodically and at shutdown.
    pub async fn flush_last_use(&self) -> AuthorityResult<usize> {
        let uses = self.last_use.drain();
        if uses.is_empty() {
            return Ok(0);
        }
        let count = uses.len();
        let written = self.store.record_last_use(&uses).await;
        crate::metrics::record_last_use_batch(written.is_ok());
        if let Err(error) = written {
            self.last_use.restore(uses);
            return Err(error.into());
        }
        Ok(count)
    }

    /// The audit record of a change made by `caller`.
    fn audit(
        caller: &Caller,
        action: AuditAction,
        target_id: &str,
        account_id: &AccountId,
        now: Timestamp,
    ) -> AuditRecord {
        AuditRecord {
            account_id: account_id.clone(),
            actor_id: Some(caller.principal_id().clone()),
            actor_token_id: Some(caller.token_id().clone()),
            action,
            target_id: target_id.to_owned(),
            peer_address: caller.peer_address(),
            details: Default::default(),
            occurred_at: now,
        }
    }
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system's random number generator failed");
    key
}

/// A change as committed: its result, and the revision it is reported at, which
/// VerifyToken's `min_revision` waits for (so that a replica answers only once it reflects
/// the change).
#[derive(Debug, Clone)]
pub struct Committed<T> {
    pub value: T,
    pub revision: u64,
}

impl<T> Committed<T> {
    /// The same revision with another value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Committed<U> {
        Committed {
            value: f(self.value),
            revision: self.revision,
        }
    }
}

/// An etag is the object's version; callers get it as text and may send it back.
pub fn etag(version: i64) -> String {
    version.to_string()
}

/// Refuses a change when the caller sent an etag that is no longer current.
fn check_etag(sent: Option<&str>, version: i64) -> AuthorityResult<()> {
    match sent {
        Some(etag_sent) if etag_sent != etag(version) => Err(AuthorityError::Aborted(
            "the etag does not match: the object changed since it was read".into(),
        )),
        _ => Ok(()),
    }
}
