//! The verification verdict: given everything a token's answer depends on (the token, the
//! secret it was presented with, its owner and its account), is it usable now, with these
//! scopes? One pure function, so the server's cache and the store give the same answers.

use std::net::IpAddr;

use super::{
    AccountId, AllowedNetworks, ApiVersion, Labels, PermissionSet, PrincipalId, PrincipalKind,
    StoredState, Timestamp, TokenId,
};

/// Why a token did or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationCode {
    Valid,
    Malformed,
    NotFound,
    Expired,
    Revoked,
    Disabled,
    OwnerDisabled,
    ApiAccessDisabled,
    InsufficientScopes,
    /// The token lists the networks it may be used from, and the client's address is not in
    /// them (or was not given).
    AddressNotAllowed,
}

/// Everything a verification answer depends on, read together (see
/// `Store::verification_snapshot` for what the read guarantees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationSnapshot {
    pub token_id: TokenId,
    pub account_id: AccountId,
    pub owner_id: PrincipalId,
    pub owner_kind: PrincipalKind,
    pub owner_name: String,
    pub owner_permissions: PermissionSet,
    pub owner_disabled: bool,
    pub api_access_enabled: bool,
    /// The account is the operator account (its principals may act in every account).
    pub account_operator: bool,
    pub state: StoredState,
    pub scopes: PermissionSet,
    pub expires_at: Option<Timestamp>,
    /// Set for a secret replaced by a reset with a grace period: when it stops working.
    pub secret_expires_at: Option<Timestamp>,
    pub api_version: ApiVersion,
    pub labels: Labels,
    pub allowed_networks: AllowedNetworks,
}

impl VerificationSnapshot {
    /// The token's scopes within its owner's current permissions. Depends only on the
    /// snapshot, so a cache computes it once per entry rather than once per call.
    pub fn effective_scopes(&self) -> PermissionSet {
        PermissionSet::effective_scopes(&self.scopes, &self.owner_permissions)
    }
}

/// The outcome of [`evaluate`]. A valid token's effective scopes are the snapshot's
/// [`VerificationSnapshot::effective_scopes`]; an invalid one grants none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub code: VerificationCode,
    /// With `InsufficientScopes`: the required scopes the token lacks.
    pub missing_scopes: PermissionSet,
    /// When the answer stops holding by the clock alone: the sooner of the token's expiry and
    /// the secret's grace end.
    pub expires_at: Option<Timestamp>,
}

/// Decides whether the token in `snapshot`, whose effective scopes are `effective_scopes`,
/// may be used at `now` by a client at `client` (None: unknown) for `required` scopes.
///
/// The order matters: an account whose API access is off fails every token with that
/// reason; then the token's own state; then its owner; then the client's address; scopes
/// last. So ADDRESS_NOT_ALLOWED means the token is good but for where it is used from.
pub fn evaluate(
    snapshot: &VerificationSnapshot,
    effective_scopes: &PermissionSet,
    required: &PermissionSet,
    client: Option<IpAddr>,
    now: Timestamp,
) -> Verdict {
    let expires_at = match (snapshot.expires_at, snapshot.secret_expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let verdict = |code| Verdict {
        code,
        missing_scopes: PermissionSet::default(),
        expires_at,
    };
    if !snapshot.api_access_enabled {
        return verdict(VerificationCode::ApiAccessDisabled);
    }
    if matches!(snapshot.state, StoredState::Revoked { .. }) {
        return verdict(VerificationCode::Revoked);
    }
    if expires_at.is_some_and(|at| at <= now) {
        return verdict(VerificationCode::Expired);
    }
    if snapshot.state == StoredState::Disabled {
        return verdict(VerificationCode::Disabled);
    }
    if snapshot.owner_disabled {
        return verdict(VerificationCode::OwnerDisabled);
    }
    if !snapshot.allowed_networks.permits(client) {
        return verdict(VerificationCode::AddressNotAllowed);
    }
    if required.is_subset(effective_scopes) {
        return verdict(VerificationCode::Valid);
    }
    Verdict {
        code: VerificationCode::InsufficientScopes,
        missing_scopes: required.difference(effective_scopes),
        expires_at,
    }
}

/// A valid snapshot of an unscoped service-account token whose owner holds `orders.read`
/// and `orders.write`: the starting point of unit tests.
#[cfg(test)]
pub(crate) fn sample_snapshot() -> VerificationSnapshot {
    VerificationSnapshot {
        token_id: TokenId::generate(),
        account_id: AccountId::generate(),
        owner_id: PrincipalId::generate(),
        owner_kind: PrincipalKind::ServiceAccount,
        owner_name: "billing".into(),
        owner_permissions: PermissionSet::from_trusted([
            "orders.read".to_owned(),
            "orders.write".to_owned(),
        ]),
        owner_disabled: false,
        api_access_enabled: true,
        account_operator: false,
        state: StoredState::Active,
        scopes: PermissionSet::default(),
        expires_at: None,
        secret_expires_at: None,
        api_version: ApiVersion::default(),
        labels: Labels::default(),
        allowed_networks: AllowedNetworks::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::sample_snapshot as snapshot;
    use super::*;
    use crate::domain::{RevokeReason, now};
    use chrono::Duration;

    fn set(values: &[&str]) -> PermissionSet {
        PermissionSet::parse(values, "p").unwrap()
    }

    fn verdict(s: &VerificationSnapshot, required: &[&str]) -> Verdict {
        evaluate(s, &s.effective_scopes(), &set(required), None, now())
    }

    fn code(s: &VerificationSnapshot, required: &[&str]) -> VerificationCode {
        verdict(s, required).code
    }

    #[test]
    fn an_active_unscoped_token_has_all_its_owners_permissions() {
        let s = snapshot();
        assert_eq!(code(&s, &["orders.write"]), VerificationCode::Valid);
        assert_eq!(s.effective_scopes(), set(&["orders.read", "orders.write"]));
    }

    #[test]
    fn scopes_limit_and_the_owner_bounds() {
        let mut s = snapshot();
        s.scopes = set(&["orders.read", "admin.all"]);
        assert_eq!(code(&s, &["orders.read"]), VerificationCode::Valid);
        assert_eq!(s.effective_scopes(), set(&["orders.read"]));
        let refused = verdict(&s, &["orders.write", "admin.all"]);
        assert_eq!(refused.code, VerificationCode::InsufficientScopes);
        assert_eq!(refused.missing_scopes, set(&["admin.all", "orders.write"]));
    }

    #[test]
    fn an_owner_losing_a_permission_takes_it_from_the_token() {
        let mut s = snapshot();
        s.owner_permissions = set(&["orders.read"]);
        assert_eq!(
            code(&s, &["orders.write"]),
            VerificationCode::InsufficientScopes
        );
    }

    #[test]
    fn each_refusal_has_its_code() {
        let mut s = snapshot();
        s.state = StoredState::Disabled;
        assert_eq!(code(&s, &[]), VerificationCode::Disabled);

        let mut s = snapshot();
        s.state = StoredState::Revoked {
            at: now(),
            by: Some(PrincipalId::generate()),
            reason: RevokeReason::default(),
        };
        assert_eq!(code(&s, &[]), VerificationCode::Revoked);

        let mut s = snapshot();
        s.expires_at = Some(now() - Duration::seconds(1));
        assert_eq!(code(&s, &[]), VerificationCode::Expired);

        let mut s = snapshot();
        s.secret_expires_at = Some(now() - Duration::seconds(1));
        assert_eq!(code(&s, &[]), VerificationCode::Expired);

        let mut s = snapshot();
        s.owner_disabled = true;
        assert_eq!(code(&s, &[]), VerificationCode::OwnerDisabled);

        let mut s = snapshot();
        s.api_access_enabled = false;
        assert_eq!(code(&s, &[]), VerificationCode::ApiAccessDisabled);
    }

    #[test]
    fn api_access_wins_over_every_other_reason() {
        let mut s = snapshot();
        s.api_access_enabled = false;
        s.state = StoredState::Revoked {
            at: now(),
            by: Some(PrincipalId::generate()),
            reason: RevokeReason::default(),
        };
        s.owner_disabled = true;
        assert_eq!(code(&s, &[]), VerificationCode::ApiAccessDisabled);
    }

    #[test]
    fn the_answer_expires_with_the_sooner_of_token_and_secret() {
        let t = now();
        let none = PermissionSet::default();
        let mut s = snapshot();
        s.expires_at = Some(t + Duration::days(30));
        s.secret_expires_at = Some(t + Duration::hours(1));
        let at = |s: &VerificationSnapshot| {
            evaluate(s, &s.effective_scopes(), &none, None, t).expires_at
        };
        assert_eq!(at(&s), Some(t + Duration::hours(1)));
        s.secret_expires_at = None;
        assert_eq!(at(&s), Some(t + Duration::days(30)));
    }

    #[test]
    fn an_allowlist_refuses_other_and_unknown_addresses_after_every_other_reason() {
        let mut s = snapshot();
        s.allowed_networks = AllowedNetworks::parse(&["10.0.0.0/8"], "allowed_networks").unwrap();
        let from = |s: &VerificationSnapshot, client: Option<&str>, required: &[&str]| {
            let client = client.map(|c| c.parse().unwrap());
            evaluate(s, &s.effective_scopes(), &set(required), client, now()).code
        };
        assert_eq!(from(&s, Some("10.1.2.3"), &[]), VerificationCode::Valid);
        assert_eq!(
            from(&s, Some("192.0.2.1"), &[]),
            VerificationCode::AddressNotAllowed
        );
        assert_eq!(from(&s, None, &[]), VerificationCode::AddressNotAllowed);
        // Before scopes: the answer says the token is good but for its client's address ...
        assert_eq!(
            from(&s, Some("192.0.2.1"), &["admin.all"]),
            VerificationCode::AddressNotAllowed
        );
        // ... and after the token's and its owner's state.
        s.state = StoredState::Disabled;
        assert_eq!(from(&s, None, &[]), VerificationCode::Disabled);
    }

    #[test]
    fn refusals_list_no_missing_scopes() {
        let mut s = snapshot();
        s.state = StoredState::Disabled;
        assert!(verdict(&s, &["admin.all"]).missing_scopes.is_empty());
    }
}
