//! The authority's periodic work while the server runs, stopped at shutdown: following the
//! events table, writing last-use times, sampling gauges, ending grace periods, forgetting
//! idle failure allowances, and pruning old events.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::authority::Authority;

/// How often the gauges that describe state (revision, lag, cache size) are sampled.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// How often secrets whose grace period has ended are looked for.
const GRACE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often the failure allowances of peers and credentials that stopped failing are
/// forgotten.
const FAILURE_MEMORY_INTERVAL: Duration = Duration::from_secs(10);
/// How often old invalidation events are pruned at most (short retentions prune sooner).
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How often the configurable tasks run.
pub struct Intervals {
    pub event_poll: Duration,
    pub last_use_flush: Duration,
    pub event_retention: Duration,
}

/// Starts every periodic task; dropping or aborting the set stops them.
pub fn spawn(authority: &Arc<Authority>, intervals: &Intervals) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(authority.clone().follow_events(intervals.event_poll));
    let flusher = authority.clone();
    tasks.spawn(every(intervals.last_use_flush, move || {
        let authority = flusher.clone();
        async move {
            match authority.flush_last_use().await {
                Ok(0) => {}
                Ok(count) => tracing::debug!(count, "last-use times written"),
                Err(error) => tracing::warn!(%error, "could not write last-use times; will retry"),
            }
        }
    }));
    let sampled = authority.clone();
    tasks.spawn(every(GAUGE_INTERVAL, move || {
        sampled.record_gauges();
        std::future::ready(())
    }));
    let sweeper = authority.clone();
    tasks.spawn(every(GRACE_SWEEP_INTERVAL, move || {
        let authority = sweeper.clone();
        async move {
            match authority.announce_expired_secrets().await {
                Ok(0) => {}
                Ok(count) => tracing::debug!(count, "grace periods ended"),
                Err(error) => {
                    tracing::warn!(%error, "could not announce ended grace periods; will retry")
                }
            }
        }
    }));
    let forgetter = authority.clone();
    tasks.spawn(every(FAILURE_MEMORY_INTERVAL, move || {
        forgetter.forget_idle_failures();
        std::future::ready(())
    }));
    let pruner = authority.clone();
    let retention = intervals.event_retention;
    let prune_every = (retention / 2).clamp(Duration::from_millis(100), PRUNE_INTERVAL);
    tasks.spawn(every(prune_every, move || {
        let authority = pruner.clone();
        async move {
            match authority.prune_events(retention).await {
                Ok(0) => {}
                Ok(count) => tracing::debug!(count, "old invalidation events pruned"),
                Err(error) => {
                    tracing::warn!(%error, "could not prune invalidation events; will retry")
                }
            }
        }
    }));
    tasks
}

/// Runs `work` every `period`, forever.
async fn every<F, Fut>(period: Duration, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        work().await;
    }
}
