//! `token verify` and `token report-leak`: the two commands that take secrets, always from a
//! file or standard input, never from the command line (where `ps` and shell history would
//! show them).

use std::path::Path;

use super::super::args::OutputFormat;
use super::super::output::{Table, print_json, verification_json};
use super::super::{CliError, Connection, secret_input};
use super::or_dash;
use crate::proto;

/// Prints the verdict; a verdict other than VALID is also an error (exit code 9), so that a
/// script can test it.
pub async fn verify(
    connection: &Connection,
    source: &Path,
    scopes: &[String],
    min_revision: u64,
    client_address: Option<&str>,
    output: OutputFormat,
) -> Result<(), CliError> {
    secret_input::ensure_not_a_secret(source, "the token to verify")?;
    let secret = secret_input::read(source, "the token to verify")?;
    let answer = connection
        .tokens()
        .verify_token(proto::VerifyTokenRequest {
            token: secret,
            required_scopes: scopes.to_vec(),
            min_revision,
            client_address: client_address.unwrap_or_default().to_owned(),
        })
        .await?
        .into_inner();
    let code = answer
        .code()
        .as_str_name()
        .trim_start_matches("VERIFICATION_CODE_")
        .to_owned();
    match output {
        OutputFormat::Json => print_json(&verification_json(&answer))?,
        OutputFormat::Table => {
            let mut table = Table::new(&[
                "VALID", "CODE", "TOKEN", "ACCOUNT", "OWNER", "SCOPES", "MISSING",
            ]);
            table.row(vec![
                answer.valid.to_string(),
                code.clone(),
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
            table.print()?;
        }
    }
    if answer.valid {
        Ok(())
    } else {
        Err(CliError::Refused(code))
    }
}

/// Reports the secrets read from `file`, in batches of what one request may carry, and
/// prints one row per secret: its position in the input, never the secret.
pub async fn report_leak(
    connection: &Connection,
    file: &Path,
    source: &str,
    url: &str,
    output: OutputFormat,
) -> Result<(), CliError> {
    secret_input::ensure_not_a_secret(file, "the leaked secrets")?;
    let secrets = secret_input::read_lines(file, "the leaked secrets")?;
    let mut tokens = connection.tokens();
    let mut results = Vec::with_capacity(secrets.len());
    let mut revision = 0;
    for batch in secrets.chunks(crate::domain::MAX_LEAKED_SECRETS) {
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
        }))?,
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
            table.print()?;
            outln!("revision {revision}")?;
        }
    }
    Ok(())
}
