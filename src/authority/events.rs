//! Following the outbox: one background loop reads committed invalidation events from the
//! store in revision order, applies each to the verification cache, advances the applied
//! revision, and broadcasts them to the watchers. Local changes wake it at once; a slow poll
//! picks up changes committed by other processes.
//!
//! Also here: announcing secrets whose grace period has ended, and pruning old events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Authority, AuthorityResult};
use crate::domain::InvalidationEvent;

/// Events handed to watchers together, in revision order.
pub type EventBatch = Arc<[InvalidationEvent]>;

/// How many events one store read returns at most.
const READ_LIMIT: u32 = 1000;

impl Authority {
    /// Runs forever: applies and broadcasts events as they are committed. Spawn it once.
    pub async fn follow_events(self: Arc<Self>, poll_every: Duration) {
        let mut others = self.store.changes();
        loop {
            if let Err(error) = self.catch_up().await {
                tracing::warn!(%error, "could not read invalidation events; will retry");
            }
            let other_processes = async {
                match others.as_mut() {
                    Some(changes) => {
                        let _ = changes.changed().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = other_processes => {}
                () = tokio::time::sleep(poll_every) => {}
            }
        }
    }

    /// Applies every committed event newer than the applied revision, in order.
    async fn catch_up(&self) -> AuthorityResult<()> {
        loop {
            let applied = self.revision.load(Ordering::Acquire);
            let events = self.store.events_after(applied, READ_LIMIT).await?;
            let Some(last) = events.last().map(|e| e.revision) else {
                self.followed_at
                    .store(self.now().timestamp_micros(), Ordering::Release);
                return Ok(());
            };
            for event in &events {
                self.cache
                    .invalidate(event.invalidation.target.clone(), event.revision);
            }
            // Stored before the broadcast: a watcher that subscribes and then reads the
            // applied revision either receives this batch or finds it in the store.
            self.revision.store(last, Ordering::Release);
            self.applied.send_replace(last);
            // No receivers is not an error: nobody is watching.
            let _ = self.feed.send(events.into());
            if (last - applied) < u64::from(READ_LIMIT) {
                self.followed_at
                    .store(self.now().timestamp_micros(), Ordering::Release);
                return Ok(());
            }
        }
    }

    /// Announces secrets whose grace period has ended; runs periodically.
    pub async fn announce_expired_secrets(&self) -> AuthorityResult<usize> {
        let events = self.store.announce_expired_secrets(self.now()).await?;
        let count = events.len();
        for event in events {
            self.apply_committed(Some(event)).await;
        }
        Ok(count)
    }

    /// Deletes events older than `retention` (always keeping the newest); runs periodically.
    pub async fn prune_events(&self, retention: Duration) -> AuthorityResult<u64> {
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let before = self
            .now()
            .checked_sub_signed(retention)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        Ok(self.store.prune_events(before).await?)
    }

    /// A receiver of every batch applied from now on.
    pub(super) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<EventBatch> {
        self.feed.subscribe()
    }
}
