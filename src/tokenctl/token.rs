//! `tokenctl token …`.

use std::path::PathBuf;

use super::args::{CreateArgs, ListArgs, OutputFormat, TokenCommand, UpdateArgs};
use super::output::{
    TOKEN_COLUMNS, Table, event_json, event_line, print_json, token_json, token_row,
    verification_json,
};
use super::{CliError, Connection, expiry};
use crate::proto;

pub async fn run(
    connection: &Connection,
    command: &TokenCommand,
    output: OutputFormat,
) -> Result<(), CliError> {
    let mut tokens = connection.tokens();
    match command {
        TokenCommand::Create(args) => create(connection, args, output).await,
        TokenCommand::Get { id } => {
            let token = tokens
                .get_token(proto::GetTokenRequest { id: id.clone() })
                .await?
                .into_inner()
                .token
                .unwrap_or_default();
            print_tokens(&[token], output);
            Ok(())
        }
        TokenCommand::List(args) => list(connection, args, output).await,
        TokenCommand::Revoke { id, reason } => {
            let revoked = tokens
                .revoke_token(proto::RevokeTokenRequest {
                    id: id.clone(),
                    reason: reason.clone(),
                    etag: String::new(),
                })
                .await?
                .into_inner();
            print_changed(revoked.token.unwrap_or_default(), revoked.revision, output);
            Ok(())
        }
        TokenCommand::Update(args) => update(connection, args, output).await,
        TokenCommand::Disable { id } => {
            let request = proto::DisableTokenRequest {
                id: id.clone(),
                etag: String::new(),
            };
            let changed = tokens.disable_token(request).await?.into_inner();
            print_changed(changed.token.unwrap_or_default(), changed.revision, output);
            Ok(())
        }
        TokenCommand::Enable { id } => {
            let request = proto::EnableTokenRequest {
                id: id.clone(),
                etag: String::new(),
            };
            let changed = tokens.enable_token(request).await?.into_inner();
            print_changed(changed.token.unwrap_or_default(), changed.revision, output);
            Ok(())
        }
        TokenCommand::Reset {
            id,
            grace,
            secret_file,
        } => {
            let grace_period = grace
                .map(prost_types::Duration::try_from)
                .transpose()
                .map_err(|_| CliError::Usage("--grace is too long".into()))?;
            let reset = tokens
                .reset_token(proto::ResetTokenRequest {
                    id: id.clone(),
                    grace_period,
                    etag: String::new(),
                })
                .await?
                .into_inner();
            show_secret(
                &reset.token.unwrap_or_default(),
                &reset.secret,
                secret_file.as_ref(),
                output,
            )
        }
        TokenCommand::Duplicate {
            id,
            name,
            secret_file,
        } => {
            let copy = tokens
                .duplicate_token(proto::DuplicateTokenRequest {
                    id: id.clone(),
                    name: name.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            show_secret(
                &copy.token.unwrap_or_default(),
                &copy.secret,
                secret_file.as_ref(),
                output,
            )
        }
        TokenCommand::Delete { id } => {
            let deleted = tokens
                .delete_token(proto::DeleteTokenRequest {
                    id: id.clone(),
                    etag: String::new(),
                })
                .await?
                .into_inner();
            let revision = deleted.revision;
            match output {
                OutputFormat::Json => {
                    print_json(&serde_json::json!({ "deleted": id, "revision": revision }))
                }
                OutputFormat::Table => println!("deleted {id}\nrevision {revision}"),
            }
            Ok(())
        }
        TokenCommand::ReportLeak { file, source, url } => {
            report_leak(connection, file, source, url, output).await
        }
        TokenCommand::Watch {
            after,
            account,
            limit,
        } => {
            let mut stream = tokens
                .watch_revocations(proto::WatchRevocationsRequest {
                    after_revision: after.unwrap_or(0),
                    account_id: account.clone().unwrap_or_default(),
                    start_from_now: after.is_none(),
                })
                .await?
                .into_inner();
            let mut seen = 0;
            while limit.is_none_or(|limit| seen < limit) {
                let Some(message) = stream.message().await? else {
                    break;
                };
                use proto::watch_revocations_response::Message;
                match message.message {
                    Some(Message::Batch(batch)) => {
                        for event in batch.events {
                            match output {
                                OutputFormat::Json => println!("{}", event_json(&event)),
                                OutputFormat::Table => println!("{}", event_line(&event)),
                            }
                            seen += 1;
                        }
                    }
                    Some(Message::Reset(reset)) => match output {
                        OutputFormat::Json => {
                            println!("{}", serde_json::json!({ "reset": reset.revision }))
                        }
                        OutputFormat::Table => println!(
                            "reset: drop cached answers, continuing at revision {}",
                            reset.revision
                        ),
                    },
                    // Checkpoints keep the stream alive; they are not events.
                    _ => {}
                }
            }
            Ok(())
        }
        TokenCommand::Verify {
            source,
            scopes,
            min_revision,
            client_address,
        } => {
            super::secret_input::ensure_not_a_secret(source, "the token to verify")?;
            let secret = super::secret_input::read(source, "the token to verify")?;
            let answer = tokens
                .verify_token(proto::VerifyTokenRequest {
                    token: secret,
                    required_scopes: scopes.clone(),
                    min_revision: *min_revision,
                    client_address: client_address.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            match output {
                OutputFormat::Json => print_json(&verification_json(&answer)),
                OutputFormat::Table => {
                    let mut table = Table::new(&[
                        "VALID", "CODE", "TOKEN", "ACCOUNT", "OWNER", "SCOPES", "MISSING",
                    ]);
                    table.row(vec![
                        answer.valid.to_string(),
                        answer
                            .code()
                            .as_str_name()
                            .trim_start_matches("VERIFICATION_CODE_")
                            .to_owned(),
                        or_dash(&answer.token_id),
                        or_dash(&answer.account_id),
                        answer
                            .owner
                            .as_ref()
                            .map(|o| o.display_name.clone())
                            .unwrap_or_else(|| "-".into()),
                        answer.effective_scopes.join(","),
                        answer.missing_scopes.join(","),
                    ]);
                    table.print();
                }
            }
            Ok(())
        }
    }
}

/// Reports the secrets read from `file`, in batches of what one request may carry, and
/// prints one row per secret: its position in the input, never the secret.
async fn report_leak(
    connection: &Connection,
    file: &std::path::Path,
    source: &str,
    url: &str,
    output: OutputFormat,
) -> Result<(), CliError> {
    super::secret_input::ensure_not_a_secret(file, "the leaked secrets")?;
    let secrets = super::secret_input::read_lines(file, "the leaked secrets")?;
    let mut tokens = connection.tokens();
    let mut results = Vec::with_capacity(secrets.len());
    let mut revision = 0;
    for batch in secrets.chunks(crate::authority::MAX_LEAKED_SECRETS) {
        let answer = tokens
            .report_leaked_tokens(proto::ReportLeakedTokensRequest {
                secrets: batch.to_vec(),
                source: source.to_owned(),
                url: url.to_owned(),
            })
            .await?
            .into_inner();
        revision = revision.max(answer.revision);
        results.extend(answer.results);
    }
    let status = |result: &proto::LeakedTokenResult| {
        result
            .status()
            .as_str_name()
            .trim_start_matches("LEAK_STATUS_")
            .to_owned()
    };
    match output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "results": results.iter().enumerate().map(|(i, result)| serde_json::json!({
                "secret": i + 1,
                "status": status(result),
                "token_id": result.token_id,
                "account_id": result.account_id,
            })).collect::<Vec<_>>(),
            "revision": revision,
        })),
        OutputFormat::Table => {
            let mut table = Table::new(&["SECRET", "STATUS", "TOKEN", "ACCOUNT"]);
            for (i, result) in results.iter().enumerate() {
                table.row(vec![
                    format!("#{}", i + 1),
                    status(result),
                    or_dash(&result.token_id),
                    or_dash(&result.account_id),
                ]);
            }
            table.print();
            println!("revision {revision}");
        }
    }
    Ok(())
}

fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".into()
    } else {
        value.to_owned()
    }
}

/// Prints a changed token with the revision its change was committed at (what `token
/// verify --min-revision` takes): in JSON as the token's `revision` field.
fn print_changed(token: proto::Token, revision: u64, output: OutputFormat) {
    match output {
        OutputFormat::Json => {
            let mut value = token_json(&token);
            value["revision"] = serde_json::Value::from(revision);
            print_json(&serde_json::Value::Array(vec![value]));
        }
        OutputFormat::Table => {
            print_tokens(&[token], output);
            println!("revision {revision}");
        }
    }
}

fn print_tokens(tokens: &[proto::Token], output: OutputFormat) {
    match output {
        OutputFormat::Json => print_json(&serde_json::Value::Array(
            tokens.iter().map(token_json).collect(),
        )),
        OutputFormat::Table => {
            let mut table = Table::new(&TOKEN_COLUMNS);
            for token in tokens {
                table.row(token_row(token));
            }
            table.print();
        }
    }
}

async fn create(
    connection: &Connection,
    args: &CreateArgs,
    output: OutputFormat,
) -> Result<(), CliError> {
    let expiry = expiry::parse(&args.expires).map_err(CliError::Usage)?;
    let created = connection
        .tokens()
        .create_token(proto::CreateTokenRequest {
            owner_id: args.owner.clone().unwrap_or_default(),
            name: args.name.clone(),
            description: args.description.clone(),
            scopes: args.scopes.clone(),
            labels: args.labels.iter().cloned().collect(),
            api_version: args.api_version.clone(),
            allowed_networks: args.allowed_networks.clone(),
            expiry,
        })
        .await?
        .into_inner();
    show_secret(
        &created.token.unwrap_or_default(),
        &created.secret,
        args.secret_file.as_ref(),
        output,
    )
}

/// Shows a new secret once, clearly marked, or writes it to a 0600 file and shows nothing
/// secret.
fn show_secret(
    token: &proto::Token,
    secret: &str,
    file: Option<&PathBuf>,
    output: OutputFormat,
) -> Result<(), CliError> {
    if let Some(path) = file {
        crate::private_file::write(path, secret)
            .map_err(|e| CliError::Other(format!("could not write {}: {e}", path.display())))?;
    }
    match output {
        OutputFormat::Json => {
            let mut value = serde_json::json!({ "token": token_json(token) });
            match file {
                Some(path) => {
                    value["secret_file"] = serde_json::Value::String(path.display().to_string())
                }
                None => value["secret"] = serde_json::Value::String(secret.to_owned()),
            }
            print_json(&value);
        }
        OutputFormat::Table => {
            print_tokens(std::slice::from_ref(token), output);
            println!();
            match file {
                Some(path) => println!(
                    "Secret written to {} (mode 0600). It is not shown again.",
                    path.display()
                ),
                None => {
                    println!("Secret (shown only this once; store it safely):");
                    println!();
                    println!("    {secret}");
                }
            }
        }
    }
    Ok(())
}

async fn update(
    connection: &Connection,
    args: &UpdateArgs,
    output: OutputFormat,
) -> Result<(), CliError> {
    let mut values = proto::Token {
        id: args.id.clone(),
        ..Default::default()
    };
    let mut paths = Vec::new();
    if let Some(name) = &args.name {
        values.name = name.clone();
        paths.push("name");
    }
    if let Some(description) = &args.description {
        values.description = description.clone();
        paths.push("description");
    }
    if let Some(expires) = &args.expires {
        values.expire_time = match expiry::parse(expires).map_err(CliError::Usage)? {
            None => None,
            Some(proto::create_token_request::Expiry::ExpireTime(at)) => Some(at),
            Some(proto::create_token_request::Expiry::Ttl(ttl)) => {
                let ttl = std::time::Duration::try_from(ttl)
                    .map_err(|_| CliError::Usage("--expires: invalid".into()))?;
                Some(
                    expiry::from_now(ttl, "--expires")
                        .map_err(CliError::Usage)?
                        .into(),
                )
            }
        };
        paths.push("expire_time");
    }
    if !args.scopes.is_empty() {
        values.scopes = args.scopes.clone();
        paths.push("scopes");
    }
    if !args.labels.is_empty() || args.clear_labels {
        values.labels = args.labels.iter().cloned().collect();
        paths.push("labels");
    }
    if let Some(api_version) = &args.api_version {
        values.api_version = api_version.clone();
        paths.push("api_version");
    }
    if !args.allowed_networks.is_empty() || args.allow_any_network {
        values.allowed_networks = args.allowed_networks.clone();
        paths.push("allowed_networks");
    }
    if paths.is_empty() {
        return Err(CliError::Usage(
            "nothing to change: give at least one option".into(),
        ));
    }
    let updated = connection
        .tokens()
        .update_token(proto::UpdateTokenRequest {
            token: Some(values),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.into_iter().map(String::from).collect(),
            }),
        })
        .await?
        .into_inner();
    print_changed(updated.token.unwrap_or_default(), updated.revision, output);
    Ok(())
}

async fn list(
    connection: &Connection,
    args: &ListArgs,
    output: OutputFormat,
) -> Result<(), CliError> {
    let time =
        |value: &Option<String>, flag: &str| -> Result<Option<prost_types::Timestamp>, CliError> {
            value
                .as_deref()
                .map(|v| {
                    humantime::parse_rfc3339_weak(v)
                        .map(prost_types::Timestamp::from)
                        .map_err(|_| {
                            CliError::Usage(format!(
                                "--{flag}: `{v}` is not a time like 2027-01-01T00:00:00Z"
                            ))
                        })
                })
                .transpose()
        };
    let expire_time_before = args
        .expiring_within
        .as_deref()
        .map(|value| {
            super::expiry::parse_duration(value.trim())
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--expiring-within: `{value}` is not a duration like 7d or 12h"
                    ))
                })
                .and_then(|d| {
                    super::expiry::from_now(d, "--expiring-within").map_err(CliError::Usage)
                })
                .map(prost_types::Timestamp::from)
        })
        .transpose()?;
    let state = match args.state.as_deref() {
        // Tokens about to stop working: those still working.
        None if expire_time_before.is_some() => proto::TokenState::Active,
        None => proto::TokenState::Unspecified,
        Some(state) => {
            proto::TokenState::from_str_name(&format!("TOKEN_STATE_{}", state.to_uppercase()))
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--state: `{state}` is not active, disabled, revoked or expired"
                    ))
                })?
        }
    };
    let request = proto::ListTokensRequest {
        page_size: args.page_size,
        page_token: String::new(),
        account_id: args.account.clone().unwrap_or_default(),
        owner_id: args.owner.clone().unwrap_or_default(),
        name_contains: args.name_contains.clone().unwrap_or_default(),
        state: state.into(),
        create_time_after: time(&args.created_after, "created-after")?,
        create_time_before: time(&args.created_before, "created-before")?,
        last_use_time_before: time(&args.last_used_before, "last-used-before")?,
        expire_time_before,
        violates_token_policy: args.violating_policy,
    };
    let tokens = connection.tokens();
    let all = super::paging::collect("tokens", args.all, |page_token| {
        let mut tokens = tokens.clone();
        let request = proto::ListTokensRequest {
            page_token,
            ..request.clone()
        };
        async move {
            let page = tokens.list_tokens(request).await?.into_inner();
            Ok((page.tokens, page.next_page_token))
        }
    })
    .await?;
    print_tokens(&all, output);
    Ok(())
}
