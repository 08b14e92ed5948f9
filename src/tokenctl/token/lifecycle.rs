//! The commands that change a token: each prints the token and the revision its change was
//! committed at (what `token verify --min-revision` takes); create, reset and duplicate also
//! show the new secret once, or write it to a 0600 file.

use std::path::Path;

use super::super::args::{CreateArgs, OutputFormat, UpdateArgs};
use super::super::output::{TOKEN_COLUMNS, Table, print_json, token_json, token_row};
use super::super::{CliError, Connection, expiry};
use crate::proto;

pub async fn create(
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
    let token = created.token.unwrap_or_default();
    let file = args.secret_file.as_deref();
    print_new_secret(&token, &created.secret, created.revision, file, output)
}

pub async fn revoke(
    connection: &Connection,
    id: &str,
    reason: &str,
    output: OutputFormat,
) -> Result<(), CliError> {
    let revoked = connection
        .tokens()
        .revoke_token(proto::RevokeTokenRequest {
            id: id.to_owned(),
            reason: reason.to_owned(),
            etag: String::new(),
        })
        .await?
        .into_inner();
    print_changed(&revoked.token.unwrap_or_default(), revoked.revision, output)
}

/// `token enable` (`enabled`) and `token disable`.
pub async fn set_enabled(
    connection: &Connection,
    id: &str,
    enabled: bool,
    output: OutputFormat,
) -> Result<(), CliError> {
    let mut tokens = connection.tokens();
    let (token, revision) = if enabled {
        let request = proto::EnableTokenRequest {
            id: id.to_owned(),
            etag: String::new(),
        };
        let enabled = tokens.enable_token(request).await?.into_inner();
        (enabled.token, enabled.revision)
    } else {
        let request = proto::DisableTokenRequest {
            id: id.to_owned(),
            etag: String::new(),
        };
        let disabled = tokens.disable_token(request).await?.into_inner();
        (disabled.token, disabled.revision)
    };
    print_changed(&token.unwrap_or_default(), revision, output)
}

pub async fn reset(
    connection: &Connection,
    id: &str,
    grace: Option<std::time::Duration>,
    secret_file: Option<&Path>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let grace_period = grace
        .map(prost_types::Duration::try_from)
        .transpose()
        .map_err(|_| CliError::Usage("--grace is too long".into()))?;
    let reset = connection
        .tokens()
        .reset_token(proto::ResetTokenRequest {
            id: id.to_owned(),
            grace_period,
            etag: String::new(),
        })
        .await?
        .into_inner();
    let token = reset.token.unwrap_or_default();
    print_new_secret(&token, &reset.secret, reset.revision, secret_file, output)
}

pub async fn duplicate(
    connection: &Connection,
    id: &str,
    name: Option<&str>,
    secret_file: Option<&Path>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let copy = connection
        .tokens()
        .duplicate_token(proto::DuplicateTokenRequest {
            id: id.to_owned(),
            name: name.unwrap_or_default().to_owned(),
        })
        .await?
        .into_inner();
    let token = copy.token.unwrap_or_default();
    print_new_secret(&token, &copy.secret, copy.revision, secret_file, output)
}

pub async fn delete(
    connection: &Connection,
    id: &str,
    output: OutputFormat,
) -> Result<(), CliError> {
    let deleted = connection
        .tokens()
        .delete_token(proto::DeleteTokenRequest {
            id: id.to_owned(),
            etag: String::new(),
        })
        .await?
        .into_inner();
    let revision = deleted.revision;
    match output {
        OutputFormat::Json => {
            print_json(&serde_json::json!({ "deleted": id, "revision": revision }))
        }
        OutputFormat::Table => outln!("deleted {id}\nrevision {revision}"),
    }
}

/// `token update`: only the options given change; a set given (scopes, labels, networks)
/// replaces the whole set.
pub async fn update(
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
        values.expire_time = expire_time(expires)?;
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
    print_changed(&updated.token.unwrap_or_default(), updated.revision, output)
}

/// `--expires` of `token update`: a time, `never`, or a duration counted from now.
fn expire_time(expires: &str) -> Result<Option<prost_types::Timestamp>, CliError> {
    Ok(match expiry::parse(expires).map_err(CliError::Usage)? {
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
    })
}

/// A changed token and its revision: in JSON, the token's object with a `revision` field.
fn print_changed(
    token: &proto::Token,
    revision: u64,
    output: OutputFormat,
) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => {
            let mut value = token_json(token);
            value["revision"] = serde_json::Value::from(revision);
            print_json(&value)
        }
        OutputFormat::Table => {
            print_token(token)?;
            outln!("revision {revision}")
        }
    }
}

/// A token with a new secret: shown once, clearly marked, or written to a 0600 file and
/// not shown. In JSON, `{"token": …, "secret" or "secret_file": …, "revision": …}`.
fn print_new_secret(
    token: &proto::Token,
    secret: &str,
    revision: u64,
    file: Option<&Path>,
    output: OutputFormat,
) -> Result<(), CliError> {
    if let Some(path) = file {
        crate::private_file::write(path, secret)
            .map_err(|e| CliError::Other(format!("could not write {}: {e}", path.display())))?;
    }
    match output {
        OutputFormat::Json => {
            let mut value = serde_json::json!({ "token": token_json(token), "revision": revision });
            match file {
                Some(path) => {
                    value["secret_file"] = serde_json::Value::String(path.display().to_string())
                }
                None => value["secret"] = serde_json::Value::String(secret.to_owned()),
            }
            print_json(&value)
        }
        OutputFormat::Table => {
            print_token(token)?;
            outln!("revision {revision}")?;
            outln!()?;
            match file {
                Some(path) => outln!(
                    "Secret written to {} (mode 0600). It is not shown again.",
                    path.display()
                ),
                None => {
                    outln!("Secret (shown only this once; store it safely):")?;
                    outln!()?;
                    outln!("    {secret}")
                }
            }
        }
    }
}

/// One token as a table.
pub(super) fn print_token(token: &proto::Token) -> Result<(), CliError> {
    let mut table = Table::new(&TOKEN_COLUMNS);
    table.row(token_row(token));
    table.print()
}
