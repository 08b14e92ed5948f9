//! `tokenctl token …`: one function per subcommand, grouped by what they do.
//!
//! - [`lifecycle`]: create, update, revoke, disable, enable, reset, duplicate and delete,
//!   each printing the token and the revision its change was committed at;
//! - [`list`]: get and list;
//! - [`verify`]: verify a token and report leaked secrets (both read secrets from a file);
//! - [`watch`]: stream invalidation events.

mod lifecycle;
mod list;
mod verify;
mod watch;

use super::args::{OutputFormat, TokenCommand};
use super::{CliError, Connection};

pub async fn run(
    connection: &Connection,
    command: &TokenCommand,
    output: OutputFormat,
) -> Result<(), CliError> {
    match command {
        TokenCommand::Create(args) => lifecycle::create(connection, args, output).await,
        TokenCommand::Get { id } => list::get(connection, id, output).await,
        TokenCommand::List(args) => list::list(connection, args, output).await,
        TokenCommand::Revoke { id, reason } => {
            lifecycle::revoke(connection, id, reason, output).await
        }
        TokenCommand::Update(args) => lifecycle::update(connection, args, output).await,
        TokenCommand::Disable { id } => lifecycle::set_enabled(connection, id, false, output).await,
        TokenCommand::Enable { id } => lifecycle::set_enabled(connection, id, true, output).await,
        TokenCommand::Reset {
            id,
            grace,
            secret_file,
        } => lifecycle::reset(connection, id, *grace, secret_file.as_deref(), output).await,
        TokenCommand::Duplicate {
            id,
            name,
            secret_file,
        } => {
            lifecycle::duplicate(
                connection,
                id,
                name.as_deref(),
                secret_file.as_deref(),
                output,
            )
            .await
        }
        TokenCommand::Delete { id } => lifecycle::delete(connection, id, output).await,
        TokenCommand::ReportLeak { file, source, url } => {
            verify::report_leak(connection, file, source, url, output).await
        }
        TokenCommand::Watch {
            after,
            account,
            limit,
        } => watch::watch(connection, *after, account.as_deref(), *limit, output).await,
        TokenCommand::Verify {
            source,
            scopes,
            min_revision,
            client_address,
        } => {
            verify::verify(
                connection,
                source,
                scopes,
                *min_revision,
                client_address.as_deref(),
                output,
            )
            .await
        }
    }
}

/// `-` for an empty value, in tables.
fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".into()
    } else {
        value.to_owned()
    }
}
