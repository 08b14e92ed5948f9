//! The rules of issuing and changing tokens that need no storage: which scopes a new secret
//! gets, how scopes may change, what an escalation leaves on record, and a copy's name.

use std::collections::BTreeMap;

use super::{AuthorityError, AuthorityResult, Caller};
use crate::domain::{
    Invalidation, InvalidationKind, InvalidationTarget, PermissionSet, Principal, Timestamp, Token,
    TokenName,
};

/// The scopes a token gets when its secret goes to `caller`. Only an owner presenting an
/// unscoped token of its own keeps `scopes` as they are: the secret grows no further than the
/// caller's own power does. Anyone else (another principal, or the owner through a scoped
/// token) gets a secret pinned to what it can do now, the scopes within the owner's current
/// permissions, so that it never grows with permissions the owner gains later.
pub(super) fn issued_scopes(
    caller: &Caller,
    owner: &Principal,
    scopes: PermissionSet,
) -> AuthorityResult<PermissionSet> {
    if caller.principal_id() == &owner.id && caller.is_unscoped() {
        return Ok(scopes);
    }
    let pinned = PermissionSet::effective_scopes(&scopes, &owner.permissions);
    if pinned.is_empty() {
        return Err(AuthorityError::invalid(
            "scopes",
            "the token would be pinned to the owner's current permissions, and it holds none of the scopes; a token issued for another principal, or through a scoped token, can only carry permissions its owner holds",
        ));
    }
    Ok(pinned)
}

/// Records in an audit record's details the application permissions a secret carries only
/// because its issuer holds `permissions.escalate`.
pub(super) fn note_escalation(
    caller: &Caller,
    owner: &Principal,
    scopes: &PermissionSet,
    details: &mut BTreeMap<String, String>,
) {
    let granted = PermissionSet::effective_scopes(scopes, &owner.permissions);
    caller.note_escalation(&granted, details);
}

pub(super) fn token_invalidation(token: &Token, kind: InvalidationKind) -> Invalidation {
    Invalidation {
        kind,
        target: InvalidationTarget::Token(token.id.clone()),
        account_id: token.account_id.clone(),
    }
}

/// Scopes may only narrow: the new set must lie within what the token could do before. The
/// refusal names the scopes at fault only when `disclose` (the caller may read the owner's
/// permissions, which bound an unscoped token's).
pub(super) fn narrow_scopes(
    current: &PermissionSet,
    new: &PermissionSet,
    owner: &PermissionSet,
    disclose: bool,
) -> AuthorityResult<()> {
    if new.is_empty() && !current.is_empty() {
        return Err(AuthorityError::invalid(
            "scopes",
            "can only be narrowed; an empty list would widen the token to all of its owner's permissions",
        ));
    }
    let bound = if current.is_empty() { owner } else { current };
    let widening = new.difference(bound);
    if !widening.is_empty() {
        let message = if disclose {
            format!(
                "can only be narrowed; not allowed: {}",
                widening.to_strings().join(", ")
            )
        } else {
            "can only be narrowed to what the token may do now (which scopes are not is told only to a caller with `principals.manage`)".to_owned()
        };
        return Err(AuthorityError::invalid("scopes", message));
    }
    Ok(())
}

/// Whether changing a token's expiry from `current` to `new` lets it live longer (None:
/// never expires).
pub(super) fn extends_life(current: Option<Timestamp>, new: Option<Timestamp>) -> bool {
    match (current, new) {
        (_, None) => current.is_some(),
        (None, Some(_)) => false,
        (Some(current), Some(new)) => new > current,
    }
}

/// `"<name> (copy)"`, shortened to stay within the name's limit.
pub(super) fn copy_name(name: &TokenName) -> TokenName {
    const SUFFIX: &str = " (copy)";
    let keep: String = name
        .as_str()
        .chars()
        .take(200 - SUFFIX.chars().count())
        .collect();
    TokenName::from_trusted(format!("{keep}{SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> PermissionSet {
        PermissionSet::parse(values, "p").unwrap()
    }

    #[test]
    fn scopes_narrow_but_never_widen() {
        let owner = set(&["a", "b", "c"]);
        let narrow = |current: &PermissionSet, new: &PermissionSet| {
            narrow_scopes(current, new, &owner, true)
        };
        assert!(narrow(&set(&["a", "b"]), &set(&["a"])).is_ok());
        assert!(narrow(&set(&["a"]), &set(&["a", "b"])).is_err());
        assert!(narrow(&set(&["a"]), &PermissionSet::default()).is_err());
        // An unscoped token may be narrowed to anything its owner has.
        assert!(narrow(&PermissionSet::default(), &set(&["c"])).is_ok());
        let refused = narrow(&PermissionSet::default(), &set(&["z"])).unwrap_err();
        assert!(refused.to_string().contains('z'));
        // Not named to a caller who may not read the owner's permissions.
        let hidden = narrow_scopes(&PermissionSet::default(), &set(&["z"]), &owner, false);
        assert!(!hidden.unwrap_err().to_string().contains(": z"));
    }

    #[test]
    fn only_a_later_or_removed_expiry_extends_a_life() {
        let t = |s| chrono::DateTime::from_timestamp(s, 0);
        assert!(extends_life(t(10), t(11)));
        assert!(extends_life(t(10), None));
        assert!(!extends_life(t(10), t(10)));
        assert!(!extends_life(t(10), t(9)));
        assert!(!extends_life(None, t(9)));
        assert!(!extends_life(None, None));
    }

    #[test]
    fn copy_names_stay_within_the_limit() {
        let long = TokenName::parse(&"x".repeat(200), "name").unwrap();
        assert_eq!(copy_name(&long).as_str().chars().count(), 200);
        assert_eq!(
            copy_name(&TokenName::parse("ci", "name").unwrap()).as_str(),
            "ci (copy)"
        );
    }
}
