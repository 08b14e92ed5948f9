//! Principals: the users and service accounts tokens act on behalf of.

use super::{AccountId, DisplayName, PermissionSet, PrincipalId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    ServiceAccount,
}

impl PrincipalKind {
    /// The stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ServiceAccount => "service_account",
        }
    }

    pub fn from_stored(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Self::User),
            "service_account" => Some(Self::ServiceAccount),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: PrincipalId,
    pub account_id: AccountId,
    pub kind: PrincipalKind,
    pub display_name: DisplayName,
    /// What the principal may do; its tokens never do more, evaluated at verification time.
    pub permissions: PermissionSet,
    /// A disabled principal's tokens fail verification.
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_storage_names() {
        for kind in [PrincipalKind::User, PrincipalKind::ServiceAccount] {
            assert_eq!(PrincipalKind::from_stored(kind.as_str()), Some(kind));
        }
        assert_eq!(PrincipalKind::from_stored("robot"), None);
    }
}
