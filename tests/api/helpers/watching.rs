//! Reading WatchRevocations streams: what a watcher has seen, and reading until a condition
//! holds (an error, not a silent return, when it never does).

use std::time::Duration;

use tonic::Status;

use token_authority::proto;

use super::app::TestApp;

/// What a watcher has read so far.
#[derive(Debug, Default)]
pub struct Watched {
    pub events: Vec<proto::InvalidationEvent>,
    pub checkpoints: Vec<u64>,
    pub resets: Vec<u64>,
    /// How the stream ended, if it did.
    pub ended: Option<Result<(), Status>>,
}

impl Watched {
    /// The revision to resume from: the newest one seen in any message.
    pub fn last_revision(&self) -> u64 {
        let events = self.events.iter().map(|e| e.revision);
        events
            .chain(self.checkpoints.iter().copied())
            .chain(self.resets.iter().copied())
            .max()
            .unwrap_or(0)
    }

    pub fn types(&self) -> Vec<proto::InvalidationType> {
        self.events.iter().map(|e| e.r#type()).collect()
    }
}

/// Why [`read_until`] stopped before its condition held.
#[derive(Debug)]
pub enum NotSeen {
    /// The stream ended (cleanly or with an error: see [`Watched::ended`]).
    Ended,
    /// The time allowed passed.
    TimedOut,
}

/// Reads `stream` until `done` holds for what was read; an error if the stream ends or
/// `within` passes first, which the caller must handle.
pub async fn read_until(
    stream: &mut tonic::Streaming<proto::WatchRevocationsResponse>,
    watched: &mut Watched,
    within: Duration,
    done: impl Fn(&Watched) -> bool,
) -> Result<(), NotSeen> {
    let deadline = tokio::time::Instant::now() + within;
    while !done(watched) {
        if watched.ended.is_some() {
            return Err(NotSeen::Ended);
        }
        let Ok(next) = tokio::time::timeout_at(deadline, stream.message()).await else {
            return Err(NotSeen::TimedOut);
        };
        record(watched, next);
    }
    Ok(())
}

/// Reads whatever `stream` delivers for `during` (or until it ends): for tests that check
/// what does not arrive.
pub async fn read_for(
    stream: &mut tonic::Streaming<proto::WatchRevocationsResponse>,
    watched: &mut Watched,
    during: Duration,
) {
    let deadline = tokio::time::Instant::now() + during;
    while watched.ended.is_none() {
        let Ok(next) = tokio::time::timeout_at(deadline, stream.message()).await else {
            return;
        };
        record(watched, next);
    }
}

/// Adds one message (or the stream's end) to what was watched.
fn record(watched: &mut Watched, next: Result<Option<proto::WatchRevocationsResponse>, Status>) {
    use proto::watch_revocations_response::Message;
    match next {
        Ok(Some(response)) => match response.message {
            Some(Message::Batch(batch)) => {
                assert!(!batch.events.is_empty(), "batches are never empty");
                watched.events.extend(batch.events);
            }
            Some(Message::Checkpoint(c)) => watched.checkpoints.push(c.revision),
            Some(Message::Reset(r)) => watched.resets.push(r.revision),
            None => panic!("an empty watch message"),
        },
        Ok(None) => watched.ended = Some(Ok(())),
        Err(status) => watched.ended = Some(Err(status)),
    }
}

impl TestApp {
    /// Opens a WatchRevocations stream as the holder of `token`, resuming after
    /// `after_revision` (0 included: everything retained).
    pub async fn watch(
        &self,
        token: &str,
        after_revision: u64,
        account_id: &str,
    ) -> Result<tonic::Streaming<proto::WatchRevocationsResponse>, Status> {
        self.tokens(token)
            .watch_revocations(proto::WatchRevocationsRequest {
                after_revision,
                account_id: account_id.to_owned(),
                start_from_now: false,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Opens a WatchRevocations stream that starts at the current revision.
    pub async fn watch_from_now(
        &self,
        token: &str,
        account_id: &str,
    ) -> Result<tonic::Streaming<proto::WatchRevocationsResponse>, Status> {
        self.tokens(token)
            .watch_revocations(proto::WatchRevocationsRequest {
                after_revision: 0,
                account_id: account_id.to_owned(),
                start_from_now: true,
            })
            .await
            .map(tonic::Response::into_inner)
    }
}
