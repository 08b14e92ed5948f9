//! What a change leaves behind: an invalidation event (for changes that can alter a
//! verification answer) and an audit record (for every change).

use std::collections::BTreeMap;

use super::{AccountId, PrincipalId, Timestamp, TokenId};

/// What kind of change an invalidation event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidationKind {
    TokenRevoked,
    TokenReset,
    TokenDisabled,
    TokenEnabled,
    TokenDeleted,
    /// Scopes, expiry, labels or api_version changed.
    TokenUpdated,
    /// The grace period of a secret replaced by a reset has ended: it stops working now.
    TokenSecretExpired,
    /// Permissions, disabled flag or name changed.
    PrincipalUpdated,
    ApiAccessChanged,
}

impl InvalidationKind {
    pub const ALL: [Self; 9] = [
        Self::TokenRevoked,
        Self::TokenReset,
        Self::TokenDisabled,
        Self::TokenEnabled,
        Self::TokenDeleted,
        Self::TokenUpdated,
        Self::TokenSecretExpired,
        Self::PrincipalUpdated,
        Self::ApiAccessChanged,
    ];

    /// The stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenRevoked => "token_revoked",
            Self::TokenReset => "token_reset",
            Self::TokenDisabled => "token_disabled",
            Self::TokenEnabled => "token_enabled",
            Self::TokenDeleted => "token_deleted",
            Self::TokenUpdated => "token_updated",
            Self::TokenSecretExpired => "token_secret_expired",
            Self::PrincipalUpdated => "principal_updated",
            Self::ApiAccessChanged => "api_access_changed",
        }
    }

    pub fn from_stored(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

/// The smallest object a change affects: caches drop what depends on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InvalidationTarget {
    Token(TokenId),
    Principal(PrincipalId),
    Account(AccountId),
}

/// A change that can alter verification answers, before it is given a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub kind: InvalidationKind,
    pub target: InvalidationTarget,
    /// The account the target belongs to, so that watchers can be filtered by account.
    pub account_id: AccountId,
}

/// An invalidation as committed: its revision orders it among all others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidationEvent {
    pub revision: u64,
    pub invalidation: Invalidation,
    pub occurred_at: Timestamp,
}

/// What an audit record says was done: the action and the type of object it was done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    AccountCreate,
    AccountSetApiAccess,
    /// An account's token policy was set; the details give the rules before and after.
    AccountSetTokenPolicy,
    PrincipalCreate,
    PrincipalUpdate,
    TokenCreate,
    TokenUpdate,
    TokenRevoke,
    TokenDisable,
    TokenEnable,
    TokenDelete,
    TokenReset,
    TokenDuplicate,
    /// Secrets were reported leaked (ReportLeakedTokens): the reporter's own record, written
    /// before any revoke, whose target is the report's id; it names no token (each revoke is
    /// its own `token.revoke` record, in the token's account, carrying the report's id).
    TokenReportLeak,
}

impl AuditAction {
    /// The stable name stored and shown, e.g. `token.create`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreate => "account.create",
            Self::AccountSetApiAccess => "account.set_api_access",
            Self::AccountSetTokenPolicy => "account.set_token_policy",
            Self::PrincipalCreate => "principal.create",
            Self::PrincipalUpdate => "principal.update",
            Self::TokenCreate => "token.create",
            Self::TokenUpdate => "token.update",
            Self::TokenRevoke => "token.revoke",
            Self::TokenDisable => "token.disable",
            Self::TokenEnable => "token.enable",
            Self::TokenDelete => "token.delete",
            Self::TokenReset => "token.reset",
            Self::TokenDuplicate => "token.duplicate",
            Self::TokenReportLeak => "token.report_leak",
        }
    }

    /// The type of object acted on: `account`, `principal` or `token`.
    pub fn target_type(self) -> &'static str {
        match self {
            Self::AccountCreate | Self::AccountSetApiAccess | Self::AccountSetTokenPolicy => {
                "account"
            }
            Self::PrincipalCreate | Self::PrincipalUpdate => "principal",
            Self::TokenReportLeak => "leak_report",
            _ => "token",
        }
    }
}

/// Who did what to which object, when and from where. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The account the target belongs to.
    pub account_id: AccountId,
    /// None for the service itself (bootstrap).
    pub actor_id: Option<PrincipalId>,
    pub actor_token_id: Option<TokenId>,
    /// What was done, and so to which type of object.
    pub action: AuditAction,
    pub target_id: String,
    pub peer_address: Option<String>,
    pub details: BTreeMap<String, String>,
    pub occurred_at: Timestamp,
}

/// An audit record as stored, with its position in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: i64,
    pub account_id: AccountId,
    pub actor_id: Option<PrincipalId>,
    pub actor_token_id: Option<TokenId>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub peer_address: Option<String>,
    pub details: BTreeMap<String, String>,
    pub occurred_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_name_their_target_type() {
        assert_eq!(AuditAction::TokenReset.as_str(), "token.reset");
        assert_eq!(AuditAction::TokenReset.target_type(), "token");
        assert_eq!(AuditAction::AccountSetApiAccess.target_type(), "account");
        assert_eq!(AuditAction::PrincipalUpdate.as_str(), "principal.update");
    }

    #[test]
    fn kinds_round_trip_through_storage_names() {
        for kind in InvalidationKind::ALL {
            assert_eq!(InvalidationKind::from_stored(kind.as_str()), Some(kind));
        }
        assert_eq!(InvalidationKind::from_stored("nope"), None);
    }
}
