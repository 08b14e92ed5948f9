//! `tokenctl token …`.

use std::io::IsTerminal;

use super::args::{CreateArgs, ListArgs, OutputFormat, TokenCommand};
use super::output::{TOKEN_COLUMNS, Table, print_json, token_json, token_row, verification_json};
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
            let token = tokens
                .revoke_token(proto::RevokeTokenRequest {
                    id: id.clone(),
                    reason: reason.clone(),
                    etag: String::new(),
                })
                .await?
                .into_inner()
                .token
                .unwrap_or_default();
            print_tokens(&[token], output);
            Ok(())
        }
        TokenCommand::Verify { secret, scopes } => {
            let answer = tokens
                .verify_token(proto::VerifyTokenRequest {
                    token: secret.clone(),
                    required_scopes: scopes.clone(),
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

fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".into()
    } else {
        value.to_owned()
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
            expiry,
        })
        .await?
        .into_inner();
    let token = created.token.clone().unwrap_or_default();
    if let Some(path) = &args.secret_file {
        crate::private_file::write(path, &created.secret)
            .map_err(|e| CliError::Other(format!("could not write {}: {e}", path.display())))?;
    }
    let shown = args.secret_file.is_none();
    match output {
        OutputFormat::Json => {
            let mut value = serde_json::json!({ "token": token_json(&token) });
            if shown {
                value["secret"] = serde_json::Value::String(created.secret.clone());
            } else if let Some(path) = &args.secret_file {
                value["secret_file"] = serde_json::Value::String(path.display().to_string());
            }
            print_json(&value);
        }
        OutputFormat::Table => {
            print_tokens(&[token], output);
            println!();
            match &args.secret_file {
                Some(path) => println!(
                    "Secret written to {} (mode 0600). It is not shown again.",
                    path.display()
                ),
                None => {
                    println!("Secret (shown only this once; store it safely):");
                    println!();
                    println!("    {}", created.secret);
                }
            }
        }
    }
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
    let state = match args.state.as_deref() {
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
    let mut request = proto::ListTokensRequest {
        page_size: args.page_size,
        page_token: String::new(),
        account_id: String::new(),
        owner_id: args.owner.clone().unwrap_or_default(),
        name_contains: args.name_contains.clone().unwrap_or_default(),
        state: state.into(),
        create_time_after: time(&args.created_after, "created-after")?,
        create_time_before: time(&args.created_before, "created-before")?,
        last_use_time_before: time(&args.last_used_before, "last-used-before")?,
    };
    let progress = args.all && std::io::stderr().is_terminal();
    let mut tokens = connection.tokens();
    let mut all = Vec::new();
    loop {
        let page = tokens.list_tokens(request.clone()).await?.into_inner();
        all.extend(page.tokens);
        if progress {
            eprint!("\rfetched {} tokens…", all.len());
        }
        if !args.all || page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    if progress {
        eprintln!();
    }
    print_tokens(&all, output);
    Ok(())
}
