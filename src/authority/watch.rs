//! WatchRevocations: a stream of invalidation events for one watcher.
//!
//! A watcher subscribes to the live broadcast first, then replays what it missed from the
//! store (page by page), then follows the broadcast; the revision of the last event
//! considered is the resume point, so resuming with it loses nothing and repeats nothing.
//! Checkpoints carry that revision when nothing happens. A watcher whose revision is older
//! than the retained log (or than any this store handed out) gets a reset.
//!
//! The stream is polled by the transport only as fast as the client reads (HTTP/2 flow
//! control), so a slow watcher holds nothing but its position in the shared, bounded
//! broadcast: it delays nobody, and once it falls further behind than the broadcast holds it
//! is cut off with RESOURCE_EXHAUSTED and resumes from the store.
//!
//! A stream lives no longer than its credential: an event naming the watcher's own token,
//! owner or account, or the token's expiry, makes it authenticate again, and the stream ends
//! with UNAUTHENTICATED (or PERMISSION_DENIED once `tokens.verify` is gone) before anything
//! else is sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{Authority, AuthorityError, AuthorityResult, Caller, EventBatch};
use crate::domain::{AccountId, InvalidationEvent, Permission};
use crate::metrics::OpenWatcher;

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    /// Events in revision order (only those of the watched accounts).
    Events(Vec<InvalidationEvent>),
    /// Nothing was missed up to this revision. `account`: whose events the stream carries
    /// (None: every account's).
    Checkpoint {
        revision: u64,
        account: Option<AccountId>,
    },
    /// The requested revision is older than the retained log: drop every cached answer and
    /// continue from this revision.
    Reset { revision: u64 },
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// At the current revision: the first item is a checkpoint carrying it.
    Now,
    /// After this revision, which any revision the server handed out may be (0 included):
    /// what followed is replayed, or a reset sent when it is no longer retained.
    After(u64),
}

/// Per-stream settings.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// How often a checkpoint is sent.
    pub checkpoint_every: Duration,
}

/// When `caller`'s credential expires by the clock, as an instant of the runtime's clock;
/// None when it never does.
fn deadline(caller: &Caller, now: crate::domain::Timestamp) -> Option<tokio::time::Instant> {
    let remaining = caller.valid_until()?.signed_duration_since(now);
    // Already past (or unrepresentable): check at once.
    let remaining = remaining.to_std().unwrap_or(Duration::ZERO);
    tokio::time::Instant::now().checked_add(remaining)
}

/// How many events one backlog read returns at most.
const BACKLOG_READ: u32 = 1000;

impl Authority {
    /// Starts a watch for `caller` at `start`, of `account` (None: the caller's own account,
    /// or every account for operators).
    pub fn watch(
        self: &Arc<Self>,
        caller: &Caller,
        start: WatchStart,
        account: Option<AccountId>,
        options: WatchOptions,
    ) -> AuthorityResult<impl Stream<Item = AuthorityResult<WatchItem>> + Send + 'static> {
        caller.require(Permission::TOKENS_VERIFY)?;
        let filter = match account {
            Some(account) => {
                caller.ensure_access(&account, "account")?;
                Some(account)
            }
            None if caller.is_operator() => None,
            None => Some(caller.account_id().clone()),
        };
        let mut checkpoints = tokio::time::interval_at(
            tokio::time::Instant::now() + options.checkpoint_every,
            options.checkpoint_every,
        );
        checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watcher = Watcher {
            deadline: deadline(caller, self.now()),
            checked_at: caller.credential_revision(),
            caller: caller.clone(),
            recheck: false,
            live: self.subscribe(),
            stopping: self.stopping.subscribe(),
            authority: self.clone(),
            filter,
            checkpoints,
            checkpoint_every: options.checkpoint_every,
            start_from_now: start == WatchStart::Now,
            last: match start {
                WatchStart::Now => 0,
                WatchStart::After(revision) => revision,
            },
            phase: Phase::Starting,
            pending: VecDeque::new(),
            open: OpenWatcher::open(),
        };
        Ok(futures_util::stream::unfold(
            watcher,
            |mut watcher| async move { watcher.next().await.map(|item| (item, watcher)) },
        ))
    }
}

enum Phase {
    /// Nothing sent yet.
    Starting,
    /// Replaying stored events up to this revision.
    Replaying { until: u64 },
    /// Following the broadcast.
    Following,
    /// The stream has ended.
    Done,
}

/// The state behind one watch stream.
struct Watcher {
    authority: Arc<Authority>,
    /// Who watches, as last authenticated.
    caller: Caller,
    /// Set when an event may have changed the caller's credential: it is checked again
    /// before anything else is sent.
    recheck: bool,
    /// The revision the credential is known good at: events after it that name the
    /// credential's token, owner or account make it checked again, whether or not the
    /// watcher itself is past them (it may resume at a revision newer than the credential's
    /// check, or this replica may apply them late).
    checked_at: u64,
    /// When the credential expires by the clock, if it does.
    deadline: Option<tokio::time::Instant>,
    live: tokio::sync::broadcast::Receiver<EventBatch>,
    stopping: tokio::sync::watch::Receiver<bool>,
    /// Only events of this account; None: all.
    filter: Option<AccountId>,
    checkpoints: tokio::time::Interval,
    checkpoint_every: Duration,
    /// Whether the watch starts at the current revision rather than resuming.
    start_from_now: bool,
    /// The revision of the last event considered (sent or filtered out): the resume point.
    last: u64,
    phase: Phase,
    /// Items ready to be sent.
    pending: VecDeque<WatchItem>,
    /// Counts this stream in the metrics while it is open.
    open: OpenWatcher,
}

impl Watcher {
    /// The next item, or None when the stream ends.
    async fn next(&mut self) -> Option<AuthorityResult<WatchItem>> {
        loop {
            // A long replay never waits in `follow`, where the expiry is otherwise noticed.
            if self
                .deadline
                .is_some_and(|at| tokio::time::Instant::now() >= at)
            {
                self.deadline = None;
                self.recheck = true;
            }
            if self.recheck {
                self.recheck = false;
                match self
                    .authority
                    .reauthenticate(&self.caller, Permission::TOKENS_VERIFY)
                    .await
                {
                    Ok(caller) => {
                        self.deadline = deadline(&caller, self.authority.now());
                        self.checked_at = self.checked_at.max(caller.credential_revision());
                        self.caller = caller;
                    }
                    Err(error) => {
                        self.phase = Phase::Done;
                        self.pending.clear();
                        return Some(Err(error));
                    }
                }
            }
            if let Some(item) = self.pending.pop_front() {
                if let WatchItem::Events(events) = &item {
                    self.open.sent(events.len());
                }
                return Some(Ok(item));
            }
            let step = match self.phase {
                Phase::Done => return None,
                Phase::Starting => self.start().await,
                Phase::Replaying { until } => self.replay(until).await,
                Phase::Following => self.follow().await,
            };
            if let Err(error) = step {
                self.phase = Phase::Done;
                return Some(Err(error));
            }
        }
    }

    /// Tells the watcher where it starts, or prepares the replay of what it missed.
    async fn start(&mut self) -> AuthorityResult<()> {
        let applied = self.authority.revision();
        // Events applied since the credential was read may have changed it, and following
        // from `applied` would never show them: check it again first.
        self.recheck |= applied > self.checked_at;
        self.phase = Phase::Following;
        if self.start_from_now {
            self.last = applied;
            self.pending.push_back(WatchItem::Checkpoint {
                revision: applied,
                account: self.filter.clone(),
            });
        } else if self.last == applied {
            // Caught up already: say so at once, so that a resuming client trusts its cache
            // again without waiting for the periodic checkpoint.
            self.pending.push_back(WatchItem::Checkpoint {
                revision: applied,
                account: self.filter.clone(),
            });
        } else if self.last < applied {
            self.phase = Phase::Replaying { until: applied };
        } else if self.last > self.authority.store.revision().await? {
            // A revision no server of this store handed out (another deployment's, or from
            // before the database was restored): nothing the client holds can be trusted.
            self.last = applied;
            self.pending
                .push_back(WatchItem::Reset { revision: applied });
        }
        // Otherwise the watcher knows a revision another replica committed and this one has
        // not applied yet: following skips everything up to it.
        Ok(())
    }

    /// Sends one page of stored events, or a reset when pruning took some it has not seen.
    async fn replay(&mut self, until: u64) -> AuthorityResult<()> {
        // Only what this watcher may be sent, and what can change its own credential (its
        // token, owner and account are all of its own account).
        let accounts = self.filter.as_ref().map(|watched| {
            let own = self.caller.account_id();
            if watched == own {
                vec![own.clone()]
            } else {
                vec![watched.clone(), own.clone()]
            }
        });
        let page = self
            .authority
            .store
            .replay_events(self.last, BACKLOG_READ, accounts.as_deref())
            .await?;
        // Read together with the page: if the oldest retained event is not the next one,
        // events after the resume point may have been pruned (PostgreSQL's revisions can
        // also have gaps, so this may reset when nothing was lost; never the reverse).
        if page
            .oldest_retained
            .is_some_and(|oldest| oldest > self.last.saturating_add(1))
        {
            self.phase = Phase::Following;
            self.last = until;
            self.pending.push_back(WatchItem::Reset { revision: until });
            return Ok(());
        }
        let events: Vec<_> = page
            .events
            .into_iter()
            .filter(|e| e.revision <= until)
            .collect();
        let done = events.is_empty() || events.last().is_some_and(|e| e.revision >= until);
        self.forward(&events);
        if done {
            // The backlog is applied: only now may a client trust its cache again.
            self.phase = Phase::Following;
            self.last = self.last.max(until);
            self.pending.push_back(WatchItem::Checkpoint {
                revision: self.last,
                account: self.filter.clone(),
            });
        }
        Ok(())
    }

    /// Waits for the next batch, checkpoint or shutdown.
    async fn follow(&mut self) -> AuthorityResult<()> {
        enum Woken {
            Batch(Result<EventBatch, RecvError>),
            Checkpoint,
            CredentialExpired,
            Stopping,
        }
        let stopping = &mut self.stopping;
        let deadline = self.deadline;
        let woken = tokio::select! {
            received = self.live.recv() => Woken::Batch(received),
            _ = self.checkpoints.tick() => Woken::Checkpoint,
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Woken::CredentialExpired,
            () = async { let _ = stopping.wait_for(|stopping| *stopping).await; } => Woken::Stopping,
        };
        match woken {
            Woken::Batch(Ok(batch)) => self.forward(&batch),
            Woken::Batch(Err(RecvError::Lagged(_))) => {
                self.open.cut_off();
                return Err(AuthorityError::ResourceExhausted(format!(
                    "this watcher fell too far behind; resume from revision {}",
                    self.last
                )));
            }
            Woken::Batch(Err(RecvError::Closed)) => self.phase = Phase::Done,
            Woken::Checkpoint => {
                // A checkpoint says "nothing missed": only true while the follower can read
                // the events table. Without checkpoints, clients stop trusting their caches.
                let bound = self.checkpoint_every * 2 + Duration::from_secs(1);
                if self
                    .authority
                    .events_followed_within(bound, self.authority.now())
                {
                    self.pending.push_back(WatchItem::Checkpoint {
                        revision: self.last,
                        account: self.filter.clone(),
                    });
                }
            }
            Woken::CredentialExpired => {
                self.deadline = None;
                self.recheck = true;
            }
            Woken::Stopping => return Err(AuthorityError::ShuttingDown),
        }
        Ok(())
    }

    /// Queues the events of `batch` newer than the resume point that pass the filter, and
    /// moves the resume point past all of them.
    fn forward(&mut self, batch: &[InvalidationEvent]) {
        // Before the account filter (an operator watching one tenant is still invalidated by
        // a change to its own token in the operator account), and before skipping what the
        // watcher has seen (it may have seen events its credential's check had not).
        self.recheck |= batch
            .iter()
            .filter(|e| e.revision > self.checked_at)
            .any(|e| self.caller.depends_on(&e.invalidation.target));
        let Some(newest) = batch.last().map(|e| e.revision) else {
            return;
        };
        if newest <= self.last {
            return;
        }
        let events: Vec<InvalidationEvent> = batch
            .iter()
            .filter(|e| e.revision > self.last)
            .filter(|e| {
                self.filter
                    .as_ref()
                    .is_none_or(|account| &e.invalidation.account_id == account)
            })
            .cloned()
            .collect();
        self.last = newest;
        if !events.is_empty() {
            self.pending.push_back(WatchItem::Events(events));
        }
    }
}
