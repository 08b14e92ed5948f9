//! Rows as the databases return them, and their decoding into domain types. Used by the
//! one SQL implementation for every database: the column layout is the same in each.

use std::collections::BTreeMap;

use chrono::Duration;

use super::StoreError;
use super::time::{from_micros, opt_from_micros};
use crate::domain::{
    Account, AccountId, AllowedNetworks, ApiVersion, AuditEvent, Description, DisplayName,
    Invalidation, InvalidationEvent, InvalidationKind, InvalidationTarget, Labels, PermissionSet,
    Principal, PrincipalId, PrincipalKind, RevokeReason, StoredState, Token, TokenId, TokenName,
    TokenPolicy, VerificationSnapshot,
};

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: String,
    display_name: String,
    api_access_enabled: bool,
    operator: bool,
    created_at: i64,
    updated_at: i64,
    version: i64,
    token_max_lifetime_seconds: Option<i64>,
    token_max_reset_grace_seconds: Option<i64>,
    token_allowed_scopes: String,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(row: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            id: AccountId::from_trusted(row.id),
            display_name: DisplayName::from_trusted(row.display_name),
            api_access_enabled: row.api_access_enabled,
            operator: row.operator,
            token_policy: decode_token_policy(
                row.token_max_lifetime_seconds,
                row.token_max_reset_grace_seconds,
                &row.token_allowed_scopes,
            )?,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
            version: row.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PrincipalRow {
    id: String,
    account_id: String,
    kind: String,
    display_name: String,
    permissions: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
    version: i64,
}

impl TryFrom<PrincipalRow> for Principal {
    type Error = StoreError;

    fn try_from(row: PrincipalRow) -> Result<Self, StoreError> {
        Ok(Principal {
            id: PrincipalId::from_trusted(row.id),
            account_id: AccountId::from_trusted(row.account_id),
            kind: decode_kind(&row.kind)?,
            display_name: DisplayName::from_trusted(row.display_name),
            permissions: decode_permissions(&row.permissions)?,
            disabled: row.disabled,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
            version: row.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: String,
    account_id: String,
    owner_id: String,
    name: String,
    description: String,
    scopes: String,
    labels: String,
    api_version: String,
    allowed_networks: String,
    state: String,
    created_at: i64,
    created_by: String,
    updated_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    revoke_reason: Option<String>,
    display_hint: String,
    previous_secret_expires_at: Option<i64>,
    version: i64,
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(Token {
            state: decode_state(
                &row.state,
                row.revoked_at,
                row.revoked_by,
                row.revoke_reason,
            )?,
            id: TokenId::from_trusted(row.id),
            account_id: AccountId::from_trusted(row.account_id),
            owner_id: PrincipalId::from_trusted(row.owner_id),
            name: TokenName::from_trusted(row.name),
            description: Description::from_trusted(row.description),
            scopes: decode_permissions(&row.scopes)?,
            labels: decode_labels(&row.labels)?,
            api_version: ApiVersion::from_trusted(row.api_version),
            allowed_networks: decode_networks(&row.allowed_networks)?,
            created_at: from_micros(row.created_at)?,
            created_by: PrincipalId::from_trusted(row.created_by),
            updated_at: from_micros(row.updated_at)?,
            expires_at: opt_from_micros(row.expires_at)?,
            last_used_at: opt_from_micros(row.last_used_at)?,
            display_hint: row.display_hint,
            previous_secret_expires_at: opt_from_micros(row.previous_secret_expires_at)?,
            version: row.version,
        })
    }
}

/// The join of a secret with its token, owner and account.
#[derive(sqlx::FromRow)]
pub(crate) struct SnapshotRow {
    token_id: String,
    account_id: String,
    owner_id: String,
    owner_kind: String,
    owner_name: String,
    owner_permissions: String,
    owner_disabled: bool,
    api_access_enabled: bool,
    account_operator: bool,
    state: String,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    revoke_reason: Option<String>,
    scopes: String,
    expires_at: Option<i64>,
    secret_expires_at: Option<i64>,
    api_version: String,
    labels: String,
    allowed_networks: String,
}

impl TryFrom<SnapshotRow> for VerificationSnapshot {
    type Error = StoreError;

    fn try_from(row: SnapshotRow) -> Result<Self, StoreError> {
        Ok(VerificationSnapshot {
            state: decode_state(
                &row.state,
                row.revoked_at,
                row.revoked_by,
                row.revoke_reason,
            )?,
            token_id: TokenId::from_trusted(row.token_id),
            account_id: AccountId::from_trusted(row.account_id),
            owner_id: PrincipalId::from_trusted(row.owner_id),
            owner_kind: decode_kind(&row.owner_kind)?,
            owner_name: row.owner_name,
            owner_permissions: decode_permissions(&row.owner_permissions)?,
            owner_disabled: row.owner_disabled,
            api_access_enabled: row.api_access_enabled,
            account_operator: row.account_operator,
            scopes: decode_permissions(&row.scopes)?,
            expires_at: opt_from_micros(row.expires_at)?,
            secret_expires_at: opt_from_micros(row.secret_expires_at)?,
            api_version: ApiVersion::from_trusted(row.api_version),
            labels: decode_labels(&row.labels)?,
            allowed_networks: decode_networks(&row.allowed_networks)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    account_id: String,
    actor_id: Option<String>,
    actor_token_id: Option<String>,
    action: String,
    target_type: String,
    target_id: String,
    peer_address: Option<String>,
    details: String,
    occurred_at: i64,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            id: row.id,
            account_id: AccountId::from_trusted(row.account_id),
            actor_id: row.actor_id.map(PrincipalId::from_trusted),
            actor_token_id: row.actor_token_id.map(TokenId::from_trusted),
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id,
            peer_address: row.peer_address,
            details: decode_json(&row.details, "audit details")?,
            occurred_at: from_micros(row.occurred_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    revision: i64,
    kind: String,
    account_id: String,
    token_id: Option<String>,
    principal_id: Option<String>,
    occurred_at: i64,
}

impl TryFrom<EventRow> for InvalidationEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        let kind = InvalidationKind::from_stored(&row.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {:?}", row.kind)))?;
        let account_id = AccountId::from_trusted(row.account_id);
        let target = match (row.token_id, row.principal_id) {
            (Some(token), _) => InvalidationTarget::Token(TokenId::from_trusted(token)),
            (None, Some(principal)) => {
                InvalidationTarget::Principal(PrincipalId::from_trusted(principal))
            }
            (None, None) => InvalidationTarget::Account(account_id.clone()),
        };
        Ok(InvalidationEvent {
            revision: u64::try_from(row.revision)
                .map_err(|_| StoreError::Corrupt("negative revision".into()))?,
            invalidation: Invalidation {
                kind,
                target,
                account_id,
            },
            occurred_at: from_micros(row.occurred_at)?,
        })
    }
}

fn decode_state(
    state: &str,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    revoke_reason: Option<String>,
) -> Result<StoredState, StoreError> {
    match state {
        "active" => Ok(StoredState::Active),
        "disabled" => Ok(StoredState::Disabled),
        "revoked" => {
            Ok(StoredState::Revoked {
                at: from_micros(revoked_at.ok_or_else(|| {
                    StoreError::Corrupt("revoked token without revoke time".into())
                })?)?,
                by: revoked_by.map(PrincipalId::from_trusted),
                reason: RevokeReason::from_trusted(revoke_reason.unwrap_or_default()),
            })
        }
        other => Err(StoreError::Corrupt(format!(
            "unknown token state {other:?}"
        ))),
    }
}

fn decode_kind(kind: &str) -> Result<PrincipalKind, StoreError> {
    PrincipalKind::from_stored(kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown principal kind {kind:?}")))
}

fn decode_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn decode_permissions(json: &str) -> Result<PermissionSet, StoreError> {
    decode_json::<Vec<String>>(json, "permissions").map(PermissionSet::from_trusted)
}

/// A stored policy was validated on the way in; one that no longer passes is corruption,
/// not something to relax.
fn decode_token_policy(
    max_lifetime_seconds: Option<i64>,
    max_reset_grace_seconds: Option<i64>,
    allowed_scopes: &str,
) -> Result<TokenPolicy, StoreError> {
    let seconds = |value: Option<i64>, what: &str| {
        value
            .map(|s| {
                Duration::try_seconds(s)
                    .ok_or_else(|| StoreError::Corrupt(format!("{what}: {s} seconds")))
            })
            .transpose()
    };
    TokenPolicy::new(
        seconds(max_lifetime_seconds, "token_max_lifetime_seconds")?,
        seconds(max_reset_grace_seconds, "token_max_reset_grace_seconds")?,
        decode_permissions(allowed_scopes)?,
    )
    .map_err(|e| StoreError::Corrupt(format!("stored token policy: {e}")))
}

/// A policy's durations as stored: whole seconds (the policy holds nothing finer).
pub(crate) fn policy_seconds(duration: Option<chrono::Duration>) -> Option<i64> {
    duration.map(|d| d.num_seconds())
}

/// Stored networks were validated on the way in; one that no longer parses is corruption,
/// not something to drop (dropping entries would widen the allowlist, to anywhere if all go).
fn decode_networks(json: &str) -> Result<AllowedNetworks, StoreError> {
    let values = decode_json::<Vec<String>>(json, "allowed_networks")?;
    AllowedNetworks::parse(&values, "allowed_networks")
        .map_err(|e| StoreError::Corrupt(format!("stored {e}")))
}

pub(crate) fn encode_networks(networks: &AllowedNetworks) -> String {
    json(&networks.to_strings())
}

fn decode_labels(json: &str) -> Result<Labels, StoreError> {
    decode_json::<BTreeMap<String, String>>(json, "labels").map(Labels::from_trusted)
}

pub(crate) fn encode_permissions(permissions: &PermissionSet) -> String {
    json(&permissions.to_strings())
}

pub(crate) fn encode_labels(labels: &Labels) -> String {
    json(labels.as_map())
}

pub(crate) fn encode_details(details: &BTreeMap<String, String>) -> String {
    json(details)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Vectors and maps of strings always serialise.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
