//! `tokenctl account policy` and `tokenctl account set-policy`: an account's token policy,
//! shown as one line per rule, and changed rule by rule (the command reads the policy, changes
//! the rules given and sends it back with its etag, so that a concurrent change is not lost).

use serde_json::{Value, json};

use super::args::{OutputFormat, SetPolicyArgs};
use super::expiry::parse_duration;
use super::output::{Table, print_json};
use super::{CliError, Connection};
use crate::domain::HumanDuration;
use crate::proto;

pub async fn show(
    connection: &Connection,
    account: Option<&str>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let request = proto::GetTokenPolicyRequest {
        account_id: account.unwrap_or_default().to_owned(),
    };
    let policy = connection
        .admin()
        .get_token_policy(request)
        .await?
        .into_inner()
        .policy
        .unwrap_or_default();
    print(&policy, output)?;
    Ok(())
}

pub async fn set(
    connection: &Connection,
    args: &SetPolicyArgs,
    output: OutputFormat,
) -> Result<(), CliError> {
    if args.max_lifetime.is_none()
        && args.max_reset_grace.is_none()
        && args.allowed_scopes.is_empty()
        && !args.any_scope
    {
        return Err(CliError::Usage(
            "nothing to change: give at least one rule".into(),
        ));
    }
    let max_lifetime = args
        .max_lifetime
        .as_deref()
        .map(|v| rule_duration(v, "--max-lifetime"))
        .transpose()?;
    let max_reset_grace = args
        .max_reset_grace
        .as_deref()
        .map(|v| rule_duration(v, "--max-reset-grace"))
        .transpose()?;
    let mut admin = connection.admin();
    let mut policy = admin
        .get_token_policy(proto::GetTokenPolicyRequest {
            account_id: args.account.clone().unwrap_or_default(),
        })
        .await?
        .into_inner()
        .policy
        .unwrap_or_default();
    if let Some(value) = max_lifetime {
        policy.max_lifetime = value;
    }
    if let Some(value) = max_reset_grace {
        policy.max_reset_grace_period = value;
    }
    if args.any_scope {
        policy.allowed_scopes.clear();
    } else if !args.allowed_scopes.is_empty() {
        policy.allowed_scopes = args.allowed_scopes.clone();
    }
    let set = admin
        .set_token_policy(proto::SetTokenPolicyRequest {
            policy: Some(policy),
        })
        .await?
        .into_inner();
    print(&set.policy.unwrap_or_default(), output)?;
    Ok(())
}

/// A rule's duration: `none` lifts the rule (None), anything `--expires` accepts as a
/// duration sets it.
fn rule_duration(value: &str, flag: &str) -> Result<Option<prost_types::Duration>, CliError> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let duration = parse_duration(value.trim())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{flag}: `{value}` is not `none` or a duration like 90d, 12h or 0s"
            ))
        })
        .and_then(|d| {
            prost_types::Duration::try_from(d)
                .map_err(|_| CliError::Usage(format!("{flag}: `{value}` is too long")))
        })?;
    Ok(Some(duration))
}

fn print(policy: &proto::TokenPolicy, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => print_json(&policy_json(policy))?,
        OutputFormat::Table => {
            let mut table = Table::new(&["RULE", "VALUE"]);
            table.row(vec!["account".into(), policy.account_id.clone()]);
            table.row(vec![
                "max_lifetime".into(),
                seconds_text(policy.max_lifetime.as_ref()),
            ]);
            table.row(vec![
                "max_reset_grace_period".into(),
                seconds_text(policy.max_reset_grace_period.as_ref()),
            ]);
            let scopes = if policy.allowed_scopes.is_empty() {
                "-".to_owned()
            } else {
                policy.allowed_scopes.join(",")
            };
            table.row(vec!["allowed_scopes".into(), scopes]);
            table.print()?;
        }
    }
    Ok(())
}

fn policy_json(policy: &proto::TokenPolicy) -> Value {
    let seconds = |d: Option<&prost_types::Duration>| d.map(|d| d.seconds);
    json!({
        "account_id": policy.account_id,
        "max_lifetime_seconds": seconds(policy.max_lifetime.as_ref()),
        "max_reset_grace_period_seconds": seconds(policy.max_reset_grace_period.as_ref()),
        "allowed_scopes": policy.allowed_scopes,
        "etag": policy.etag,
    })
}

/// A rule's duration for people: `90d`, `1h 30m`; `-` when the rule is not set.
fn seconds_text(duration: Option<&prost_types::Duration>) -> String {
    match duration.and_then(|d| chrono::Duration::try_seconds(d.seconds)) {
        None => "-".into(),
        Some(duration) => HumanDuration(duration).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_durations_parse_or_lift() {
        assert_eq!(rule_duration("none", "--x").unwrap(), None);
        assert_eq!(
            rule_duration("90d", "--x").unwrap().map(|d| d.seconds),
            Some(90 * 86_400)
        );
        assert_eq!(
            rule_duration("0s", "--x").unwrap().map(|d| d.seconds),
            Some(0)
        );
        assert!(rule_duration("soon", "--x").is_err());
        assert_eq!(seconds_text(None), "-");
        assert_eq!(
            seconds_text(Some(&prost_types::Duration {
                seconds: 86_400,
                nanos: 0
            })),
            "1d"
        );
    }
}
