//! Permissions (and scopes, which are permissions a token is limited to).

use std::collections::BTreeSet;
use std::fmt;

use super::ValidationError;

const MAX_PERMISSION_LEN: usize = 64;
const MAX_PERMISSIONS: usize = 100;

/// A permission such as `tokens.read` or `orders.write`: 1 to 64 characters, a lowercase
/// letter first, then lowercase letters, digits and `_ - . :`, with no empty segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(String);

impl Permission {
    pub const TOKENS_READ: &'static str = "tokens.read";
    pub const TOKENS_CREATE: &'static str = "tokens.create";
    /// Update, revoke, disable, enable, reset and duplicate.
    pub const TOKENS_UPDATE: &'static str = "tokens.update";
    pub const TOKENS_DELETE: &'static str = "tokens.delete";
    /// VerifyToken and WatchRevocations: the credential of backend services.
    pub const TOKENS_VERIFY: &'static str = "tokens.verify";
    pub const PRINCIPALS_MANAGE: &'static str = "principals.manage";
    pub const ACCOUNTS_MANAGE: &'static str = "accounts.manage";
    pub const AUDIT_READ: &'static str = "audit.read";
    /// Kubernetes RBAC's `escalate` verb: grant application permissions (any permission that
    /// is not a system one, such as `orders.read`) that the caller does not hold itself, to
    /// principals and in the tokens it issues. Every such grant is audited. System
    /// permissions can never be granted past the caller's own.
    pub const PERMISSIONS_ESCALATE: &'static str = "permissions.escalate";
    /// ReportLeakedTokens: revoke tokens by presenting their secrets, in any account (holding
    /// a secret is the proof). The credential of secret scanners and incident responders.
    pub const TOKENS_REPORT_LEAKED: &'static str = "tokens.report_leaked";

    /// Every permission the service itself checks; the bootstrap owner gets all of them.
    pub const SYSTEM: [&'static str; 10] = [
        Self::TOKENS_READ,
        Self::TOKENS_CREATE,
        Self::TOKENS_UPDATE,
        Self::TOKENS_DELETE,
        Self::TOKENS_VERIFY,
        Self::PRINCIPALS_MANAGE,
        Self::ACCOUNTS_MANAGE,
        Self::AUDIT_READ,
        Self::PERMISSIONS_ESCALATE,
        Self::TOKENS_REPORT_LEAKED,
    ];

    /// Whether this is one of the service's own permissions (as opposed to an application
    /// permission such as `orders.write`, which only backends interpret).
    pub fn is_system(&self) -> bool {
        Self::SYSTEM.contains(&self.0.as_str())
    }

    pub fn parse(value: &str, field: &str) -> Result<Self, ValidationError> {
        let valid_chars = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.:".contains(&b));
        let starts_with_letter = value.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        let no_empty_segment = !value.split(['.', ':']).any(str::is_empty);
        if value.is_empty() || value.len() > MAX_PERMISSION_LEN {
            return Err(ValidationError::new(field, "must be 1 to 64 characters"));
        }
        if !(valid_chars && starts_with_letter && no_empty_segment) {
            return Err(ValidationError::new(
                field,
                "must be lowercase letters, digits and `_ - . :`, starting with a letter, such as `orders.write`",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// Wraps a permission read back from storage, where it was validated on the way in.
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of permissions, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// Parses a list a caller sent (`field` names it in errors); duplicates are merged.
    pub fn parse<S: AsRef<str>>(values: &[S], field: &str) -> Result<Self, ValidationError> {
        if values.len() > MAX_PERMISSIONS {
            return Err(ValidationError::new(field, "at most 100 entries"));
        }
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Permission::parse(v.as_ref(), &format!("{field}[{i}]")))
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    /// Every system permission.
    pub fn system() -> Self {
        Self(
            Permission::SYSTEM
                .iter()
                .map(|p| Permission((*p).to_owned()))
                .collect(),
        )
    }

    /// The application permissions in this set: those that are not system permissions.
    pub fn application(&self) -> Self {
        Self(self.0.iter().filter(|p| !p.is_system()).cloned().collect())
    }

    pub fn from_trusted(values: impl IntoIterator<Item = String>) -> Self {
        Self(values.into_iter().map(Permission).collect())
    }

    pub fn contains(&self, permission: &str) -> bool {
        // BTreeSet<Permission> cannot be searched by &str without an allocation-free Borrow
        // impl; Permission is a plain String newtype, so compare directly.
        self.0.iter().any(|p| p.0 == permission)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &Self) -> Self {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn union(&self, other: &Self) -> Self {
        Self(self.0.union(&other.0).cloned().collect())
    }

    /// The members of `self` that `other` lacks.
    pub fn difference(&self, other: &Self) -> Self {
        Self(self.0.difference(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|p| p.0.clone()).collect()
    }

    /// What a token may do: its scopes within its owner's current permissions, where empty
    /// scopes mean "everything the owner has".
    pub fn effective_scopes(token_scopes: &Self, owner_permissions: &Self) -> Self {
        if token_scopes.is_empty() {
            owner_permissions.clone()
        } else {
            token_scopes.intersection(owner_permissions)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> PermissionSet {
        PermissionSet::parse(values, "p").unwrap()
    }

    #[test]
    fn valid_permissions_parse() {
        for ok in [
            "tokens.read",
            "orders.write",
            "a",
            "billing:invoices.read",
            "x-y_z.1",
        ] {
            assert!(Permission::parse(ok, "p").is_ok(), "{ok}");
        }
    }

    #[test]
    fn invalid_permissions_are_rejected() {
        let long = "a".repeat(65);
        for bad in [
            "",
            "Tokens.read",
            "1abc",
            "tokens..read",
            "tokens.",
            ".x",
            "a b",
            "ä",
            "*",
            long.as_str(),
        ] {
            assert!(Permission::parse(bad, "p").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn errors_name_the_index() {
        let err = PermissionSet::parse(&["ok", "NOT OK"], "scopes").unwrap_err();
        assert_eq!(err.field, "scopes[1]");
    }

    #[test]
    fn too_many_permissions_are_rejected() {
        let many: Vec<String> = (0..101).map(|i| format!("p{i}")).collect();
        assert!(PermissionSet::parse(&many, "p").is_err());
    }

    #[test]
    fn duplicates_merge() {
        assert_eq!(set(&["a", "b", "a"]).len(), 2);
    }

    #[test]
    fn empty_scopes_mean_everything_the_owner_has() {
        let owner = set(&["a", "b"]);
        assert_eq!(
            PermissionSet::effective_scopes(&PermissionSet::default(), &owner),
            owner
        );
    }

    #[test]
    fn scopes_are_limited_to_the_owners_current_permissions() {
        let owner = set(&["a", "b"]);
        assert_eq!(
            PermissionSet::effective_scopes(&set(&["b", "c"]), &owner),
            set(&["b"])
        );
        // An owner who lost everything leaves nothing, even for an unscoped token.
        assert!(
            PermissionSet::effective_scopes(&set(&["a"]), &PermissionSet::default()).is_empty()
        );
    }

    #[test]
    fn system_set_has_every_checked_permission() {
        let system = PermissionSet::system();
        for p in Permission::SYSTEM {
            assert!(system.contains(p));
        }
        assert_eq!(
            system.difference(&set(&["tokens.read"])).len(),
            Permission::SYSTEM.len() - 1
        );
    }

    #[test]
    fn application_permissions_are_the_non_system_ones() {
        let mixed = set(&["tokens.read", "orders.write", "permissions.escalate", "a"]);
        assert_eq!(mixed.application(), set(&["a", "orders.write"]));
        assert!(PermissionSet::system().application().is_empty());
    }
}
