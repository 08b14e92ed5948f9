//! Printing: aligned tables for people, JSON (stable snake_case field names) for scripts.

use serde_json::{Value, json};

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

    pub fn print(&self) {
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
            println!("{}", line.join("  ").trim_end());
        }
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
        "expire_time": time_json(answer.expire_time.as_ref()),
    })
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into())
    );
}
