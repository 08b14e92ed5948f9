//! The verifier's background task: follows WatchRevocations, applies every event to the
//! cache, and reconnects with back-off, resuming from the last revision seen.
//!
//! What the verifier does on each kind of stream loss: a stream that ends, fails (the
//! authority restarting, a connection cut, "fell too far behind" when events for it were
//! dropped) or stays silent longer than the staleness bound (a replica whose event follower
//! is stuck sends no checkpoints, while its connection still answers pings) is marked lost at
//! once: from then on no valid answer is served from the cache until a new stream has
//! replayed what was missed. Each new stream opens a connection of its own, so that a load
//! balancer in front of the replicas can send it to another one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tonic::Status;
use tonic::transport::Endpoint;

use super::connect::{Bearer, Client};
use super::trust::TrustState;
use crate::domain::{AccountId, InvalidationTarget, PrincipalId, TokenId};
use crate::proto::invalidation_event::Target;
use crate::proto::token_service_client::TokenServiceClient;
use crate::proto::watch_revocations_response::Message;
use crate::proto::{InvalidationEvent, WatchRevocationsRequest};

/// How the watch task reaches the authority.
pub(super) struct Connector {
    pub endpoint: Endpoint,
    pub credential: Bearer,
}

impl Connector {
    /// A client on a connection of its own.
    fn client(&self) -> Client {
        TokenServiceClient::with_interceptor(self.endpoint.connect_lazy(), self.credential.clone())
    }
}

/// The watch task's timings.
pub(super) struct Timing {
    /// First and longest wait before reconnecting (doubling in between).
    pub backoff: (Duration, Duration),
    /// How long a stream may stay silent (no event, no checkpoint) before it is given up.
    pub silence: Duration,
}

/// Runs until `stopped` reports that the verifier is gone. `authority` (host and port)
/// names the authority in log lines.
pub(super) async fn follow(
    shared: Arc<TrustState>,
    connector: Connector,
    authority: String,
    timing: Timing,
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    let (first_delay, longest_delay) = timing.backoff;
    // None until the first stream has told where it starts.
    let mut after = None;
    // Which history of the database the revisions count in; None until told.
    let mut history = None;
    let mut delay = first_delay;
    loop {
        tokio::select! {
            outcome = follow_once(&shared, connector.client(), (&mut after, &mut history), &mut delay, first_delay, timing.silence) => {
                match outcome {
                    Ok(()) => tracing::debug!(after, "revocation stream ended; reconnecting"),
                    // The verifier's own credential no longer works: nothing heals this but
                    // an operator, and until then the cache fails closed.
                    Err(status) if matches!(
                        status.code(),
                        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                    ) => tracing::warn!(
                        authority,
                        code = ?status.code(),
                        message = status.message(),
                        "the verifier's credential was refused by the authority; retrying"
                    ),
                    Err(status) => tracing::debug!(authority, after, %status, "revocation stream failed; reconnecting"),
                }
            }
            _ = stopped.changed() => return,
        }
        // Whatever ended it, events may be missed from now on.
        shared.lost();
        tokio::select! {
            () = tokio::time::sleep(jittered(delay)) => {}
            _ = stopped.changed() => return,
        }
        shared.metrics.reconnects.increment(1);
        delay = delay.saturating_mul(2).min(longest_delay);
    }
}

/// One connection's worth of following; `after` and `delay` carry over to the next.
///
/// The first stream starts from now; every later one resumes after the last revision heard
/// (0 included: a fresh deployment's first checkpoint), so nothing is lost in between. The
/// stream restores trust in the cache only from its first checkpoint or reset on, which the
/// server sends once any backlog has been replayed: never halfway through a replay. A stream
/// silent for `silence` is given up (Err). A checkpoint or reset of another history than the
/// one followed so far (the database was restored from a backup, and hands out revision
/// numbers again) drops everything and starts over from it.
async fn follow_once(
    shared: &TrustState,
    mut client: Client,
    (after, history): (&mut Option<u64>, &mut Option<String>),
    delay: &mut Duration,
    first_delay: Duration,
    silence: Duration,
) -> Result<(), Status> {
    let fresh = after.is_none();
    let opened = tokio::time::timeout(
        silence,
        client.watch_revocations(WatchRevocationsRequest {
            after_revision: after.unwrap_or(0),
            account_id: String::new(),
            start_from_now: fresh,
        }),
    )
    .await
    .map_err(|_| Status::deadline_exceeded("the revocation stream did not open in time"))?;
    let mut stream = opened?.into_inner();
    let mut caught_up = false;
    loop {
        let Ok(message) = tokio::time::timeout(silence, stream.message()).await else {
            return Err(Status::deadline_exceeded(
                "the revocation stream fell silent: no checkpoint within the staleness bound",
            ));
        };
        let Some(response) = message? else {
            return Ok(());
        };
        *delay = first_delay;
        let mut newest = after.unwrap_or(0);
        match response.message {
            Some(Message::Batch(batch)) => {
                for event in batch.events {
                    let revision = event.revision;
                    if let Some(target) = target_of(event) {
                        shared.cache.apply(target, revision);
                    }
                    newest = newest.max(revision);
                }
            }
            Some(Message::Checkpoint(checkpoint)) => {
                if restarted(shared, history, checkpoint.history, checkpoint.revision) {
                    newest = checkpoint.revision;
                } else if fresh && !caught_up {
                    // The stream starts here: answers from before it could have missed events.
                    shared.cache.raise_floor(checkpoint.revision);
                }
                newest = newest.max(checkpoint.revision);
                shared.covers_now(
                    Some(checkpoint.account_id)
                        .filter(|id| !id.is_empty())
                        .map(AccountId::from_trusted),
                );
                caught_up = true;
            }
            Some(Message::Reset(reset)) => {
                // Every answer goes; in another history, what was learned goes too. In the
                // same one it still holds, so a reset to a lower revision (a restore that kept
                // its history) refuses every valid answer until revisions pass the old floor:
                // fail closed, and the runbook's history step avoids it.
                if !restarted(shared, history, reset.history, reset.revision) {
                    shared.cache.reset(reset.revision);
                }
                newest = reset.revision;
                caught_up = true;
            }
            None => continue,
        }
        *after = Some(newest);
        shared.revision.store(newest, Ordering::Release);
        if caught_up {
            shared.heard_now();
        }
    }
}

/// Notes the `history` a checkpoint or reset at `revision` names; if it is not the one
/// followed so far, forgets every answer and watermark and returns true.
fn restarted(
    shared: &TrustState,
    followed: &mut Option<String>,
    history: String,
    revision: u64,
) -> bool {
    if history.is_empty() || followed.as_deref() == Some(history.as_str()) {
        return false;
    }
    let changed = followed.is_some();
    shared.follows_history(&history);
    if changed {
        tracing::warn!(
            revision,
            "the authority's database was restored (another history of revisions): every cached answer is dropped"
        );
        shared.cache.restart_at(revision);
    }
    *followed = Some(history);
    changed
}

/// The object an event names.
fn target_of(event: InvalidationEvent) -> Option<InvalidationTarget> {
    match event.target {
        Some(Target::TokenId(id)) => Some(InvalidationTarget::Token(TokenId::from_trusted(id))),
        Some(Target::PrincipalId(id)) => {
            Some(InvalidationTarget::Principal(PrincipalId::from_trusted(id)))
        }
        None if !event.account_id.is_empty() => Some(InvalidationTarget::Account(
            AccountId::from_trusted(event.account_id),
        )),
        None => None,
    }
}

/// Between half and all of `delay`, so that many clients do not reconnect in step.
fn jittered(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let random = getrandom::fill(&mut byte).map(|()| byte[0]).unwrap_or(255);
    let half = delay / 2;
    half + half
        .checked_mul(u32::from(random))
        .map_or(half, |d| d / 255)
}
