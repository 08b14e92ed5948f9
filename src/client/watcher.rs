//! The verifier's background task: follows WatchRevocations, applies every event to the
//! cache, and reconnects with back-off, resuming from the last revision seen.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tonic::Status;

use super::verifier::{Client, Shared};
use crate::domain::{AccountId, InvalidationTarget, PrincipalId, TokenId};
use crate::proto::invalidation_event::Target;
use crate::proto::watch_revocations_response::Message;
use crate::proto::{InvalidationEvent, WatchRevocationsRequest};

/// Runs until `stopped` reports that the verifier is gone. `authority` (host and port)
/// names the authority in log lines.
pub(super) async fn follow(
    shared: Arc<Shared>,
    client: Client,
    authority: String,
    (first_delay, longest_delay): (Duration, Duration),
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    // None until the first stream has told where it starts.
    let mut after = None;
    let mut delay = first_delay;
    loop {
        tokio::select! {
            outcome = follow_once(&shared, client.clone(), &mut after, &mut delay, first_delay) => {
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
        tokio::select! {
            () = tokio::time::sleep(jittered(delay)) => {}
            _ = stopped.changed() => return,
        }
        shared.metrics.reconnects.increment(1);
        delay = (delay * 2).min(longest_delay);
    }
}

/// One connection's worth of following; `after` and `delay` carry over to the next.
///
/// The first stream starts from now; every later one resumes after the last revision heard
/// (0 included: a fresh deployment's first checkpoint), so nothing is lost in between. The
/// stream restores trust in the cache only from its first checkpoint or reset on, which the
/// server sends once any backlog has been replayed: never halfway through a replay.
async fn follow_once(
    shared: &Shared,
    mut client: Client,
    after: &mut Option<u64>,
    delay: &mut Duration,
    first_delay: Duration,
) -> Result<(), Status> {
    let fresh = after.is_none();
    let mut stream = client
        .watch_revocations(WatchRevocationsRequest {
            after_revision: after.unwrap_or(0),
            account_id: String::new(),
            start_from_now: fresh,
        })
        .await?
        .into_inner();
    let mut caught_up = false;
    while let Some(response) = stream.message().await? {
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
                if fresh && !caught_up {
                    // The stream starts here: answers from before it could have missed events.
                    shared.cache.raise_floor(checkpoint.revision, false);
                }
                newest = newest.max(checkpoint.revision);
                caught_up = true;
            }
            Some(Message::Reset(reset)) => {
                shared.cache.raise_floor(reset.revision, true);
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
    Ok(())
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
    delay / 2 + delay / 2 * u32::from(random) / 255
}
