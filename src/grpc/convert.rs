//! Conversions between protobuf messages and domain values. Parsing functions validate
//! (parse, don't validate) and name the offending request field in their errors.

use chrono::Duration;
use prost_types::{FieldMask, Timestamp as ProtoTimestamp};

use crate::authority::{AuthorityError, LeakOutcome, LeakStatus, WatchItem, etag};
use crate::domain::{
    Account, AccountId, AuditEvent, InvalidationEvent, InvalidationKind, InvalidationTarget,
    PermissionSet, Principal, PrincipalId, PrincipalKind, StoredState, Timestamp, Token,
    TokenPolicy, TokenState, VerificationCode,
};
use crate::proto;

pub fn timestamp(t: Timestamp) -> ProtoTimestamp {
    ProtoTimestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn parse_timestamp(t: &ProtoTimestamp, field: &str) -> Result<Timestamp, AuthorityError> {
    u32::try_from(t.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| chrono::DateTime::from_timestamp(t.seconds, nanos))
        .map(crate::domain::truncate_to_micros)
        .ok_or_else(|| AuthorityError::invalid(field, "is not a valid timestamp"))
}

pub fn parse_opt_timestamp(
    t: Option<&ProtoTimestamp>,
    field: &str,
) -> Result<Option<Timestamp>, AuthorityError> {
    t.map(|t| parse_timestamp(t, field)).transpose()
}

pub fn parse_duration(d: &prost_types::Duration, field: &str) -> Result<Duration, AuthorityError> {
    if d.nanos.abs() >= 1_000_000_000
        || (d.seconds > 0 && d.nanos < 0)
        || (d.seconds < 0 && d.nanos > 0)
    {
        return Err(AuthorityError::invalid(field, "is not a valid duration"));
    }
    Duration::try_seconds(d.seconds)
        .and_then(|s| s.checked_add(&Duration::nanoseconds(i64::from(d.nanos))))
        .ok_or_else(|| AuthorityError::invalid(field, "is out of range"))
}

/// An optional id: empty means "not given".
pub fn opt_account_id(value: &str, field: &str) -> Result<Option<AccountId>, AuthorityError> {
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(AccountId::parse(value, field)?))
}

pub fn opt_principal_id(value: &str, field: &str) -> Result<Option<PrincipalId>, AuthorityError> {
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(PrincipalId::parse(value, field)?))
}

/// An optional etag: empty means "unconditional".
pub fn opt_etag(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// The paths of a required update mask, checked against the fields that may be updated.
pub fn mask_paths<'a>(
    mask: Option<&'a FieldMask>,
    allowed: &[&str],
) -> Result<Vec<&'a str>, AuthorityError> {
    let paths: Vec<&str> = mask
        .map(|m| m.paths.iter().map(String::as_str).collect())
        .unwrap_or_default();
    if paths.is_empty() {
        return Err(AuthorityError::invalid(
            "update_mask",
            "is required and must name at least one field",
        ));
    }
    if let Some(unknown) = paths.iter().find(|path| !allowed.contains(path)) {
        return Err(AuthorityError::invalid(
            "update_mask",
            format!(
                "`{}` cannot be updated; allowed: {}",
                crate::domain::excerpt(unknown),
                allowed.join(", ")
            ),
        ));
    }
    Ok(paths)
}

/// An optional IP address (a VerifyToken client's): empty is None.
pub fn opt_ip_address(
    value: &str,
    field: &str,
) -> Result<Option<std::net::IpAddr>, AuthorityError> {
    if value.is_empty() {
        return Ok(None);
    }
    value.trim().parse().map(Some).map_err(|_| {
        AuthorityError::invalid(
            field,
            "must be an IPv4 or IPv6 address, such as 192.0.2.7 or 2001:db8::7",
        )
    })
}

pub fn token_state(state: TokenState) -> proto::TokenState {
    match state {
        TokenState::Active => proto::TokenState::Active,
        TokenState::Disabled => proto::TokenState::Disabled,
        TokenState::Revoked => proto::TokenState::Revoked,
        TokenState::Expired => proto::TokenState::Expired,
    }
}

pub fn parse_token_state(value: i32) -> Result<Option<TokenState>, AuthorityError> {
    match proto::TokenState::try_from(value) {
        Ok(proto::TokenState::Unspecified) => Ok(None),
        Ok(proto::TokenState::Active) => Ok(Some(TokenState::Active)),
        Ok(proto::TokenState::Disabled) => Ok(Some(TokenState::Disabled)),
        Ok(proto::TokenState::Revoked) => Ok(Some(TokenState::Revoked)),
        Ok(proto::TokenState::Expired) => Ok(Some(TokenState::Expired)),
        Err(_) => Err(AuthorityError::invalid(
            "state",
            "is not a known token state",
        )),
    }
}

pub fn principal_kind(kind: PrincipalKind) -> proto::PrincipalKind {
    match kind {
        PrincipalKind::User => proto::PrincipalKind::User,
        PrincipalKind::ServiceAccount => proto::PrincipalKind::ServiceAccount,
    }
}

pub fn parse_principal_kind(value: i32) -> Result<PrincipalKind, AuthorityError> {
    match proto::PrincipalKind::try_from(value) {
        Ok(proto::PrincipalKind::User) => Ok(PrincipalKind::User),
        Ok(proto::PrincipalKind::ServiceAccount) => Ok(PrincipalKind::ServiceAccount),
        _ => Err(AuthorityError::invalid(
            "kind",
            "must be USER or SERVICE_ACCOUNT",
        )),
    }
}

pub fn verification_code(code: VerificationCode) -> proto::VerificationCode {
    match code {
        VerificationCode::Valid => proto::VerificationCode::Valid,
        VerificationCode::Malformed => proto::VerificationCode::Malformed,
        VerificationCode::NotFound => proto::VerificationCode::NotFound,
        VerificationCode::Expired => proto::VerificationCode::Expired,
        VerificationCode::Revoked => proto::VerificationCode::Revoked,
        VerificationCode::Disabled => proto::VerificationCode::Disabled,
        VerificationCode::OwnerDisabled => proto::VerificationCode::OwnerDisabled,
        VerificationCode::ApiAccessDisabled => proto::VerificationCode::ApiAccessDisabled,
        VerificationCode::InsufficientScopes => proto::VerificationCode::InsufficientScopes,
        VerificationCode::AddressNotAllowed => proto::VerificationCode::AddressNotAllowed,
    }
}

pub fn leak_outcome(outcome: &LeakOutcome) -> proto::LeakedTokenResult {
    let status = match outcome.status {
        LeakStatus::Revoked => proto::LeakStatus::Revoked,
        LeakStatus::AlreadyInactive => proto::LeakStatus::AlreadyInactive,
        LeakStatus::NotFound => proto::LeakStatus::NotFound,
        LeakStatus::Malformed => proto::LeakStatus::Malformed,
    };
    let (token_id, account_id) = match &outcome.token {
        Some((token, account)) => (token.to_string(), account.to_string()),
        None => Default::default(),
    };
    proto::LeakedTokenResult {
        status: status as i32,
        token_id,
        account_id,
    }
}

/// A token as the API shows it, its state as of `at` (by the authority's clock).
pub fn token(token: &Token, at: crate::domain::Timestamp) -> proto::Token {
    let (revoke_time, revoker_id, revoke_reason) = match &token.state {
        StoredState::Revoked { at, by, reason } => (
            Some(timestamp(*at)),
            by.as_ref().map(ToString::to_string).unwrap_or_default(),
            reason.as_str().to_owned(),
        ),
        _ => (None, String::new(), String::new()),
    };
    proto::Token {
        allowed_networks: token.allowed_networks.to_strings(),
        id: token.id.to_string(),
        account_id: token.account_id.to_string(),
        owner_id: token.owner_id.to_string(),
        name: token.name.as_str().to_owned(),
        description: token.description.as_str().to_owned(),
        scopes: token.scopes.to_strings(),
        labels: token
            .labels
            .as_map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        api_version: token.api_version.as_str().to_owned(),
        state: token_state(token.state_at(at)).into(),
        create_time: Some(timestamp(token.created_at)),
        creator_id: token.created_by.to_string(),
        update_time: Some(timestamp(token.updated_at)),
        expire_time: token.expires_at.map(timestamp),
        last_use_time: token.last_used_at.map(timestamp),
        revoke_time,
        revoker_id,
        revoke_reason,
        display_hint: token.display_hint.clone(),
        previous_secret_expire_time: token.previous_secret_expires_at.map(timestamp),
        etag: etag(token.version),
    }
}

pub fn principal(principal: &Principal) -> proto::Principal {
    proto::Principal {
        id: principal.id.to_string(),
        account_id: principal.account_id.to_string(),
        kind: principal_kind(principal.kind).into(),
        display_name: principal.display_name.as_str().to_owned(),
        permissions: principal.permissions.to_strings(),
        disabled: principal.disabled,
        create_time: Some(timestamp(principal.created_at)),
        update_time: Some(timestamp(principal.updated_at)),
        etag: etag(principal.version),
    }
}

pub fn account(account: &Account) -> proto::Account {
    proto::Account {
        id: account.id.to_string(),
        display_name: account.display_name.as_str().to_owned(),
        api_access_enabled: account.api_access_enabled,
        operator: account.operator,
        create_time: Some(timestamp(account.created_at)),
        update_time: Some(timestamp(account.updated_at)),
        etag: etag(account.version),
    }
}

/// An account's token policy, with the account's etag.
pub fn token_policy(account: &Account) -> proto::TokenPolicy {
    let policy = &account.token_policy;
    let duration = |d: Option<Duration>| {
        d.map(|d| prost_types::Duration {
            seconds: d.num_seconds(),
            nanos: 0,
        })
    };
    proto::TokenPolicy {
        account_id: account.id.to_string(),
        max_lifetime: duration(policy.max_lifetime()),
        max_reset_grace_period: duration(policy.max_reset_grace()),
        allowed_scopes: policy.allowed_scopes().to_strings(),
        etag: etag(account.version),
    }
}

/// A SetTokenPolicy request's policy; fields are named as `policy.<field>` in errors.
pub fn parse_token_policy(policy: &proto::TokenPolicy) -> Result<TokenPolicy, AuthorityError> {
    let duration = |d: Option<&prost_types::Duration>, field: &str| {
        d.map(|d| parse_duration(d, field)).transpose()
    };
    TokenPolicy::new(
        duration(policy.max_lifetime.as_ref(), "policy.max_lifetime")?,
        duration(
            policy.max_reset_grace_period.as_ref(),
            "policy.max_reset_grace_period",
        )?,
        PermissionSet::parse(&policy.allowed_scopes, "policy.allowed_scopes")?,
    )
    .map_err(|e| AuthorityError::invalid(&format!("policy.{}", e.field), e.problem))
}

pub fn invalidation_type(kind: InvalidationKind) -> proto::InvalidationType {
    match kind {
        InvalidationKind::TokenRevoked => proto::InvalidationType::TokenRevoked,
        InvalidationKind::TokenReset => proto::InvalidationType::TokenReset,
        InvalidationKind::TokenDisabled => proto::InvalidationType::TokenDisabled,
        InvalidationKind::TokenEnabled => proto::InvalidationType::TokenEnabled,
        InvalidationKind::TokenDeleted => proto::InvalidationType::TokenDeleted,
        InvalidationKind::TokenUpdated => proto::InvalidationType::TokenUpdated,
        InvalidationKind::TokenSecretExpired => proto::InvalidationType::TokenSecretExpired,
        InvalidationKind::PrincipalUpdated => proto::InvalidationType::PrincipalUpdated,
        InvalidationKind::ApiAccessChanged => proto::InvalidationType::ApiAccessChanged,
    }
}

pub fn invalidation_event(event: &InvalidationEvent) -> proto::InvalidationEvent {
    let target = match &event.invalidation.target {
        InvalidationTarget::Token(id) => {
            Some(proto::invalidation_event::Target::TokenId(id.to_string()))
        }
        InvalidationTarget::Principal(id) => Some(proto::invalidation_event::Target::PrincipalId(
            id.to_string(),
        )),
        InvalidationTarget::Account(_) => None,
    };
    proto::InvalidationEvent {
        revision: event.revision,
        r#type: invalidation_type(event.invalidation.kind).into(),
        account_id: event.invalidation.account_id.to_string(),
        target,
        occur_time: Some(timestamp(event.occurred_at)),
    }
}

/// A watch item as sent, in the database's `history`.
pub fn watch_item(item: WatchItem, history: &str) -> proto::WatchRevocationsResponse {
    use proto::watch_revocations_response::Message;
    let message = match item {
        WatchItem::Events(events) => Message::Batch(proto::InvalidationBatch {
            events: events.iter().map(invalidation_event).collect(),
        }),
        WatchItem::Checkpoint { revision, account } => Message::Checkpoint(proto::Checkpoint {
            revision,
            account_id: account.map(|id| id.to_string()).unwrap_or_default(),
            history: history.to_owned(),
        }),
        WatchItem::Reset { revision } => Message::Reset(proto::Reset {
            revision,
            history: history.to_owned(),
        }),
    };
    proto::WatchRevocationsResponse {
        message: Some(message),
    }
}

pub fn audit_event(event: &AuditEvent) -> proto::AuditEvent {
    proto::AuditEvent {
        id: event.id.to_string(),
        account_id: event.account_id.to_string(),
        actor_id: event
            .actor_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        actor_token_id: event
            .actor_token_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        action: event.action.clone(),
        target_type: event.target_type.clone(),
        target_id: event.target_id.clone(),
        occur_time: Some(timestamp(event.occurred_at)),
        peer_address: event.peer_address.clone().unwrap_or_default(),
        details: event
            .details
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let t = crate::domain::now();
        assert_eq!(parse_timestamp(&timestamp(t), "t").unwrap(), t);
    }

    #[test]
    fn invalid_timestamps_and_durations_are_refused() {
        assert!(
            parse_timestamp(
                &ProtoTimestamp {
                    seconds: 0,
                    nanos: -1
                },
                "t"
            )
            .is_err()
        );
        assert!(
            parse_timestamp(
                &ProtoTimestamp {
                    seconds: i64::MAX,
                    nanos: 0
                },
                "t"
            )
            .is_err()
        );
        assert!(
            parse_duration(
                &prost_types::Duration {
                    seconds: i64::MAX,
                    nanos: 0
                },
                "d"
            )
            .is_err()
        );
        assert!(
            parse_duration(
                &prost_types::Duration {
                    seconds: 1,
                    nanos: -1
                },
                "d"
            )
            .is_err()
        );
        assert_eq!(
            parse_duration(
                &prost_types::Duration {
                    seconds: 60,
                    nanos: 0
                },
                "d"
            )
            .unwrap(),
            Duration::seconds(60)
        );
    }

    #[test]
    fn masks_must_name_known_fields() {
        let mask = |paths: &[&str]| FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        assert!(mask_paths(None, &["name"]).is_err());
        assert!(mask_paths(Some(&mask(&[])), &["name"]).is_err());
        assert!(mask_paths(Some(&mask(&["owner_id"])), &["name"]).is_err());
        assert_eq!(
            mask_paths(Some(&mask(&["name"])), &["name"]).unwrap(),
            vec!["name"]
        );
    }
}
