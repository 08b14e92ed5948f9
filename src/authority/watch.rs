//! WatchRevocations: a stream of invalidation events for one watcher.
//!
//! A watcher subscribes to the live broadcast first, then replays what it missed from the
//! store, then follows the broadcast; the revision of the last event considered is the
//! resume point, so resuming with it loses nothing and repeats nothing. Checkpoints carry
//! that revision when nothing happens. A watcher whose revision is older than the retained
//! log gets a reset. A watcher that cannot keep up is cut off: the broadcast does not wait
//! for it (so it delays nobody) and memory stays bounded; it recovers by resuming.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{Authority, AuthorityError, AuthorityResult, Caller};
use crate::domain::{AccountId, InvalidationEvent, Permission};

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    /// Events in revision order (only those of the watched accounts).
    Events(Vec<InvalidationEvent>),
    /// Nothing was missed up to this revision.
    Checkpoint { revision: u64 },
    /// The requested revision is older than the retained log: drop every cached answer and
    /// continue from this revision.
    Reset { revision: u64 },
}

/// Per-stream settings.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// How often a checkpoint is sent.
    pub checkpoint_every: Duration,
    /// How long a watcher may leave a message unread before it is cut off.
    pub send_timeout: Duration,
}

/// The receiving end of a watch: items until the stream ends, and whether it ended because
/// the watcher was cut off.
pub struct Watch {
    pub items: mpsc::Receiver<AuthorityResult<WatchItem>>,
    pub cut_off: Arc<AtomicBool>,
}

/// Messages queued per watcher before the watcher counts as not keeping up.
const QUEUE: usize = 16;
/// How many events one backlog read returns at most.
const BACKLOG_READ: u32 = 1000;

impl Authority {
    /// Starts a watch for `caller`: events after `after_revision` (0: from now), of
    /// `account` (None: the caller's own account, or every account for operators).
    pub async fn watch(
        self: &Arc<Self>,
        caller: &Caller,
        after_revision: u64,
        account: Option<AccountId>,
        options: WatchOptions,
    ) -> AuthorityResult<Watch> {
        caller.require(Permission::TOKENS_VERIFY)?;
        let filter = match account {
            Some(account) => {
                caller.ensure_access(&account, "account")?;
                Some(account)
            }
            None if caller.is_operator() => None,
            None => Some(caller.account_id().clone()),
        };
        let live = self.subscribe();
        let (sender, items) = mpsc::channel(QUEUE);
        let cut_off = Arc::new(AtomicBool::new(false));
        let watcher = Watcher {
            authority: self.clone(),
            sender,
            filter,
            options,
            cut_off: cut_off.clone(),
            last: after_revision,
        };
        tokio::spawn(watcher.run(live));
        Ok(Watch { items, cut_off })
    }
}

/// The task behind one watch.
struct Watcher {
    authority: Arc<Authority>,
    sender: mpsc::Sender<AuthorityResult<WatchItem>>,
    /// Only events of this account; None: all.
    filter: Option<AccountId>,
    options: WatchOptions,
    cut_off: Arc<AtomicBool>,
    /// The revision of the last event considered (sent or filtered out): the resume point.
    last: u64,
}

/// Why a watcher stops.
enum Stop {
    /// The client went away.
    Gone,
    /// The client does not keep up, or an error must be reported.
    Failed(AuthorityError),
}

impl Watcher {
    async fn run(mut self, live: tokio::sync::broadcast::Receiver<crate::authority::EventBatch>) {
        let outcome = match self.start().await {
            Ok(()) => self.follow(live).await,
            Err(stop) => Err(stop),
        };
        if let Err(Stop::Failed(error)) = outcome {
            if matches!(error, AuthorityError::ResourceExhausted(_)) {
                self.cut_off.store(true, Ordering::Release);
            }
            // The queue may be full; the flag still tells the stream why it ends.
            let _ = self.sender.try_send(Err(error));
        }
    }

    /// Replays what the watcher missed, or tells it where it starts.
    async fn start(&mut self) -> Result<(), Stop> {
        let applied = self.authority.revision();
        if self.last == 0 {
            self.last = applied;
            return self.send(WatchItem::Checkpoint { revision: applied }).await;
        }
        if self.last >= applied {
            // Nothing missed (or a revision this server has not applied yet: the live
            // stream skips everything up to it).
            return Ok(());
        }
        let oldest = self
            .authority
            .store
            .oldest_event_revision()
            .await
            .map_err(|e| Stop::Failed(e.into()))?;
        if oldest.is_none_or(|oldest| self.last + 1 < oldest) {
            self.last = applied;
            return self.send(WatchItem::Reset { revision: applied }).await;
        }
        while self.last < applied {
            let events = self
                .authority
                .store
                .events_after(self.last, BACKLOG_READ)
                .await
                .map_err(|e| Stop::Failed(e.into()))?;
            let events: Vec<_> = events
                .into_iter()
                .filter(|e| e.revision <= applied)
                .collect();
            if events.is_empty() {
                break;
            }
            self.forward(&events).await?;
        }
        Ok(())
    }

    /// Follows the live broadcast, with checkpoints, until the client goes or falls behind.
    async fn follow(
        &mut self,
        mut live: tokio::sync::broadcast::Receiver<crate::authority::EventBatch>,
    ) -> Result<(), Stop> {
        let mut stopping = self.authority.stopping.subscribe();
        let mut checkpoints = tokio::time::interval(self.options.checkpoint_every);
        checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        checkpoints.tick().await;
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(batch) => self.forward(&batch).await?,
                    Err(RecvError::Lagged(_)) => {
                        return Err(Stop::Failed(AuthorityError::ResourceExhausted(format!(
                            "this watcher fell too far behind; resume from revision {}",
                            self.last
                        ))));
                    }
                    Err(RecvError::Closed) => return Err(Stop::Gone),
                },
                _ = checkpoints.tick() => {
                    let revision = self.last;
                    self.send(WatchItem::Checkpoint { revision }).await?;
                }
                () = self.sender.closed() => return Err(Stop::Gone),
                () = async { let _ = stopping.wait_for(|stopping| *stopping).await; } => {
                    return Err(Stop::Failed(AuthorityError::ShuttingDown));
                }
            }
        }
    }

    /// Sends the events of `batch` newer than the resume point that pass the filter, and
    /// moves the resume point past all of them.
    async fn forward(&mut self, batch: &[InvalidationEvent]) -> Result<(), Stop> {
        let Some(newest) = batch.last().map(|e| e.revision) else {
            return Ok(());
        };
        if newest <= self.last {
            return Ok(());
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
        if events.is_empty() {
            return Ok(());
        }
        self.send(WatchItem::Events(events)).await
    }

    async fn send(&self, item: WatchItem) -> Result<(), Stop> {
        match tokio::time::timeout(self.options.send_timeout, self.sender.send(Ok(item))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::Failed(AuthorityError::ResourceExhausted(format!(
                "this watcher stopped reading; resume from revision {}",
                self.last
            )))),
        }
    }
}
