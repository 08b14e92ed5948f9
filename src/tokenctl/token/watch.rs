//! `token watch`: invalidation events as lines, or JSON lines, until interrupted or
//! `--limit` events.

use super::super::args::OutputFormat;
use super::super::output::{event_json, event_line};
use super::super::{CliError, Connection};
use crate::proto;
use crate::proto::watch_revocations_response::Message;

pub async fn watch(
    connection: &Connection,
    after: Option<u64>,
    account: Option<&str>,
    limit: Option<usize>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let mut stream = connection
        .tokens()
        .watch_revocations(proto::WatchRevocationsRequest {
            after_revision: after.unwrap_or(0),
            account_id: account.unwrap_or_default().to_owned(),
            start_from_now: after.is_none(),
        })
        .await?
        .into_inner();
    let mut seen = 0;
    while limit.is_none_or(|limit| seen < limit) {
        let Some(message) = stream.message().await? else {
            break;
        };
        match message.message {
            Some(Message::Batch(batch)) => {
                let room = limit.map_or(usize::MAX, |limit| limit.saturating_sub(seen));
                for event in batch.events.into_iter().take(room) {
                    match output {
                        OutputFormat::Json => outln!("{}", event_json(&event))?,
                        OutputFormat::Table => outln!("{}", event_line(&event))?,
                    }
                    seen = seen.saturating_add(1);
                }
            }
            Some(Message::Reset(reset)) => match output {
                OutputFormat::Json => outln!("{}", serde_json::json!({ "reset": reset.revision }))?,
                OutputFormat::Table => outln!(
                    "reset: drop cached answers, continuing at revision {}",
                    reset.revision
                )?,
            },
            // Checkpoints keep the stream alive; they are not events.
            _ => {}
        }
    }
    Ok(())
}
