//! Printing: aligned tables for people, JSON (stable snake_case field names) for scripts.

use serde_json::{Value, json};

use super::CliError;
use super::expiry::format_time;
use crate::proto;

/// A table printed with aligned columns.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) -> Result<(), CliError> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
                .collect();
            outln!("{}", line.join("  ").trim_end())?;
        }
        Ok(())
    }
}

pub const TOKEN_COLUMNS: [&str; 9] = [
    "ID",
    "NAME",
    "OWNER",
    "STATE",
    "SCOPES",
    "CREATED",
    "EXPIRES",
    "LAST USED",
    "HINT",
];

fn state_name(token: &proto::Token) -> String {
    token
        .state()
        .as_str_name()
        .trim_start_matches("TOKEN_STATE_")
        .to_lowercase()
}

pub fn token_row(token: &proto::Token) -> Vec<String> {
    vec![
        token.id.clone(),
        token.name.clone(),
        token.owner_id.clone(),
        state_name(token),
        if token.scopes.is_empty() {
            "(all of owner's)".into()
        } else {
            token.scopes.join(",")
        },
        format_time(token.create_time.as_ref()),
        if token.expire_time.is_some() {
            format_time(token.expire_time.as_ref())
        } else {
            "never".into()
        },
        if token.last_use_time.is_some() {
            format_time(token.last_use_time.as_ref())
        } else {
            "never".into()
        },
        token.display_hint.clone(),
    ]
}

fn time_json(time: Option<&prost_types::Timestamp>) -> Value {
    match time {
        Some(_) => Value::String(format_time(time)),
        None => Value::Null,
    }
}

pub fn token_json(token: &proto::Token) -> Value {
    json!({
        "id": token.id,
        "account_id": token.account_id,
        "owner_id": token.owner_id,
        "name": token.name,
        "description": token.description,
        "scopes": token.scopes,
        "labels": token.labels,
        "api_version": token.api_version,
        "state": state_name(token),
        "create_time": time_json(token.create_time.as_ref()),
        "creator_id": token.creator_id,
        "update_time": time_json(token.update_time.as_ref()),
        "expire_time": time_json(token.expire_time.as_ref()),
        "last_use_time": time_json(token.last_use_time.as_ref()),
        "revoke_time": time_json(token.revoke_time.as_ref()),
        "revoker_id": token.revoker_id,
        "revoke_reason": token.revoke_reason,
        "display_hint": token.display_hint,
        "allowed_networks": token.allowed_networks,
        "etag": token.etag,
    })
}

pub fn verification_json(answer: &proto::VerifyTokenResponse) -> Value {
    let owner = answer.owner.clone().unwrap_or_default();
    json!({
        "valid": answer.valid,
        "code": answer.code().as_str_name().trim_start_matches("VERIFICATION_CODE_").to_lowercase(),
        "revision": answer.revision,
        "token_id": answer.token_id,
        "account_id": answer.account_id,
        "owner_id": owner.id,
        "owner_name": owner.display_name,
        "effective_scopes": answer.effective_scopes,
        "missing_scopes": answer.missing_scopes,
        "allowed_networks": answer.allowed_networks,
        "expire_time": time_json(answer.expire_time.as_ref()),
    })
}

pub fn print_json(value: &Value) -> Result<(), CliError> {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into())
    )
}

pub fn principal_row(principal: &proto::Principal) -> Vec<String> {
    vec![
        principal.id.clone(),
        principal.display_name.clone(),
        kind_name(principal.kind()),
        principal.account_id.clone(),
        principal.permissions.join(","),
        principal.disabled.to_string(),
        format_time(principal.create_time.as_ref()),
    ]
}

fn kind_name(kind: proto::PrincipalKind) -> String {
    kind.as_str_name()
        .trim_start_matches("PRINCIPAL_KIND_")
        .to_lowercase()
}

pub fn principal_json(principal: &proto::Principal) -> Value {
    json!({
        "id": principal.id,
        "account_id": principal.account_id,
        "kind": kind_name(principal.kind()),
        "display_name": principal.display_name,
        "permissions": principal.permissions,
        "disabled": principal.disabled,
        "create_time": time_json(principal.create_time.as_ref()),
        "update_time": time_json(principal.update_time.as_ref()),
        "etag": principal.etag,
    })
}

pub fn account_row(account: &proto::Account) -> Vec<String> {
    vec![
        account.id.clone(),
        account.display_name.clone(),
        if account.api_access_enabled {
            "on".into()
        } else {
            "off".into()
        },
        account.operator.to_string(),
        format_time(account.create_time.as_ref()),
    ]
}

pub fn account_json(account: &proto::Account) -> Value {
    json!({
        "id": account.id,
        "display_name": account.display_name,
        "api_access_enabled": account.api_access_enabled,
        "operator": account.operator,
        "create_time": time_json(account.create_time.as_ref()),
        "update_time": time_json(account.update_time.as_ref()),
        "etag": account.etag,
    })
}

pub fn audit_row(event: &proto::AuditEvent) -> Vec<String> {
    let details: Vec<String> = {
        let mut pairs: Vec<_> = event.details.iter().collect();
        pairs.sort();
        pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    };
    vec![
        event.id.clone(),
        format_time(event.occur_time.as_ref()),
        event.action.clone(),
        event.target_id.clone(),
        if event.actor_id.is_empty() {
            "(service)".into()
        } else {
            event.actor_id.clone()
        },
        if event.peer_address.is_empty() {
            "-".into()
        } else {
            event.peer_address.clone()
        },
        details.join(" "),
    ]
}

pub fn audit_json(event: &proto::AuditEvent) -> Value {
    json!({
        "id": event.id,
        "account_id": event.account_id,
        "actor_id": event.actor_id,
        "actor_token_id": event.actor_token_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "occur_time": time_json(event.occur_time.as_ref()),
        "peer_address": event.peer_address,
        "details": event.details,
    })
}

fn event_type(event: &proto::InvalidationEvent) -> String {
    event
        .r#type()
        .as_str_name()
        .trim_start_matches("INVALIDATION_TYPE_")
        .to_lowercase()
}

fn event_target(event: &proto::InvalidationEvent) -> (&'static str, String) {
    match &event.target {
        Some(proto::invalidation_event::Target::TokenId(id)) => ("token", id.clone()),
        Some(proto::invalidation_event::Target::PrincipalId(id)) => ("principal", id.clone()),
        None => ("account", event.account_id.clone()),
    }
}

/// One line per event: revision, type, target, account.
pub fn event_line(event: &proto::InvalidationEvent) -> String {
    let (kind, id) = event_target(event);
    format!(
        "{} {} {kind}={id} account={}",
        event.revision,
        event_type(event),
        event.account_id
    )
}

/// One JSON object per event (JSON lines).
pub fn event_json(event: &proto::InvalidationEvent) -> Value {
    let (kind, id) = event_target(event);
    json!({
        "revision": event.revision,
        "type": event_type(event),
        "account_id": event.account_id,
        "target_type": kind,
        "target_id": id,
        "occur_time": time_json(event.occur_time.as_ref()),
    })
}
