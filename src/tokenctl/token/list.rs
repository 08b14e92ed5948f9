//! `token get` and `token list`.

use super::super::args::{ListArgs, OutputFormat};
use super::super::output::{TOKEN_COLUMNS, print_json, token_json, token_row};
use super::super::{CliError, Connection, expiry, paging};
use crate::proto;

pub async fn get(connection: &Connection, id: &str, output: OutputFormat) -> Result<(), CliError> {
    let token = connection
        .tokens()
        .get_token(proto::GetTokenRequest { id: id.to_owned() })
        .await?
        .into_inner()
        .token
        .unwrap_or_default();
    match output {
        OutputFormat::Json => print_json(&token_json(&token))?,
        OutputFormat::Table => super::lifecycle::print_token(&token)?,
    }
    Ok(())
}

pub async fn list(
    connection: &Connection,
    args: &ListArgs,
    output: OutputFormat,
) -> Result<(), CliError> {
    let request = proto::ListTokensRequest {
        page_size: args.page_size,
        page_token: String::new(),
        account_id: args.account.clone().unwrap_or_default(),
        owner_id: args.owner.clone().unwrap_or_default(),
        name_contains: args.name_contains.clone().unwrap_or_default(),
        state: state(args)?.into(),
        create_time_after: time(&args.created_after, "created-after")?,
        create_time_before: time(&args.created_before, "created-before")?,
        last_use_time_before: time(&args.last_used_before, "last-used-before")?,
        expire_time_before: expiring_before(args)?,
        violates_token_policy: args.violating_policy,
    };
    let tokens = connection.tokens();
    let listing = paging::collect("tokens", &args.pages, |page_token| {
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
    listing.print(output, &TOKEN_COLUMNS, token_row, token_json)?;
    Ok(())
}

/// `--state`; without it, `--expiring-within` lists only tokens still working (those about
/// to stop).
fn state(args: &ListArgs) -> Result<proto::TokenState, CliError> {
    Ok(match args.state.as_deref() {
        None if args.expiring_within.is_some() => proto::TokenState::Active,
        None => proto::TokenState::Unspecified,
        Some(state) => {
            proto::TokenState::from_str_name(&format!("TOKEN_STATE_{}", state.to_uppercase()))
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--state: `{state}` is not active, disabled, revoked or expired"
                    ))
                })?
        }
    })
}

/// `--expiring-within`, as the time before which tokens expire.
fn expiring_before(args: &ListArgs) -> Result<Option<prost_types::Timestamp>, CliError> {
    args.expiring_within
        .as_deref()
        .map(|value| {
            expiry::parse_duration(value.trim())
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--expiring-within: `{value}` is not a duration like 7d or 12h"
                    ))
                })
                .and_then(|d| expiry::from_now(d, "--expiring-within").map_err(CliError::Usage))
                .map(prost_types::Timestamp::from)
        })
        .transpose()
}

/// An RFC 3339 time option.
fn time(value: &Option<String>, flag: &str) -> Result<Option<prost_types::Timestamp>, CliError> {
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
}
