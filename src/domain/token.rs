//! Tokens and their lifecycle: which state changes are allowed, and what a token's state is
//! at a given instant (EXPIRED is derived from the expire time, never stored).

use chrono::Duration;

use super::{
    AccountId, AllowedNetworks, ApiVersion, Description, Labels, PermissionSet, PrincipalId,
    RevokeReason, Timestamp, TokenId, TokenName, ValidationError,
};

/// The state as stored. Expiry is not a stored state: it follows from the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredState {
    Active,
    Disabled,
    Revoked {
        at: Timestamp,
        /// None when the revoker is not named to the token's account: a leak report from
        /// a principal of another account.
        by: Option<PrincipalId>,
        reason: RevokeReason,
    },
}

impl StoredState {
    /// The stable name used in storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Revoked { .. } => "revoked",
        }
    }
}

/// The state callers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Disabled,
    Revoked,
    Expired,
}

/// A state change that the token's current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the token is revoked; a revoked token cannot be changed")]
    Revoked,
    #[error("the token has expired")]
    Expired,
}

/// A token's metadata. The secret is not here: only its hash is stored, beside the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: TokenId,
    pub account_id: AccountId,
    pub owner_id: PrincipalId,
    pub name: TokenName,
    pub description: Description,
    /// Empty: everything the owner has.
    pub scopes: PermissionSet,
    pub labels: Labels,
    pub api_version: ApiVersion,
    /// Where the token may be used from; empty: anywhere.
    pub allowed_networks: AllowedNetworks,
    pub state: StoredState,
    pub created_at: Timestamp,
    pub created_by: PrincipalId,
    pub updated_at: Timestamp,
    /// None: never expires.
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// Prefix and last four characters of the current secret.
    pub display_hint: String,
    /// When a reset left the previous secret working for a while: until when.
    pub previous_secret_expires_at: Option<Timestamp>,
    pub version: i64,
}

/// What a new token is made of: everything its issuer chooses. The rest (id, state,
/// timestamps, version, display hint) follows from issuing it.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub account_id: AccountId,
    pub owner_id: PrincipalId,
    pub name: TokenName,
    pub description: Description,
    pub scopes: PermissionSet,
    pub labels: Labels,
    pub api_version: ApiVersion,
    pub allowed_networks: AllowedNetworks,
    pub expires_at: Option<Timestamp>,
    pub created_by: PrincipalId,
}

impl Token {
    /// A new, active token issued at `at`, whose secret shows as `display_hint`.
    pub fn issue(spec: TokenSpec, display_hint: String, at: Timestamp) -> Self {
        Self {
            id: TokenId::generate(),
            account_id: spec.account_id,
            owner_id: spec.owner_id,
            name: spec.name,
            description: spec.description,
            scopes: spec.scopes,
            labels: spec.labels,
            api_version: spec.api_version,
            allowed_networks: spec.allowed_networks,
            state: StoredState::Active,
            created_at: at,
            created_by: spec.created_by,
            updated_at: at,
            expires_at: spec.expires_at,
            last_used_at: None,
            display_hint,
            previous_secret_expires_at: None,
            version: 1,
        }
    }

    /// The state at `now`. Revoked wins over expired: the record says what was done to it.
    pub fn state_at(&self, now: Timestamp) -> TokenState {
        match self.state {
            StoredState::Revoked { .. } => TokenState::Revoked,
            _ if self.expires_at.is_some_and(|at| at <= now) => TokenState::Expired,
            StoredState::Active => TokenState::Active,
            StoredState::Disabled => TokenState::Disabled,
        }
    }

    /// Every change but delete requires a token that is not revoked.
    pub fn ensure_not_revoked(&self) -> Result<(), TransitionError> {
        match self.state {
            StoredState::Revoked { .. } => Err(TransitionError::Revoked),
            _ => Ok(()),
        }
    }

    /// Revokes for good. Revoking twice is refused so that the first actor and reason stay
    /// on record.
    pub fn revoke(
        &mut self,
        by: Option<PrincipalId>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        self.ensure_not_revoked()?;
        self.state = StoredState::Revoked {
            at: now,
            by,
            reason,
        };
        self.previous_secret_expires_at = None;
        Ok(())
    }

    /// Returns whether anything changed: disabling a disabled token is a no-op.
    pub fn disable(&mut self) -> Result<bool, TransitionError> {
        self.ensure_not_revoked()?;
        let changed = self.state == StoredState::Active;
        self.state = StoredState::Disabled;
        Ok(changed)
    }

    /// Returns whether anything changed: enabling an active token is a no-op.
    pub fn enable(&mut self) -> Result<bool, TransitionError> {
        self.ensure_not_revoked()?;
        let changed = self.state == StoredState::Disabled;
        self.state = StoredState::Active;
        Ok(changed)
    }

    /// Checks that a reset is allowed at `now` and works out until when the old secret keeps
    /// working: `None` when it stops at once.
    pub fn reset_grace_end(
        &self,
        grace_period: Duration,
        max_grace_period: Duration,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, ResetError> {
        self.ensure_not_revoked().map_err(ResetError::Transition)?;
        if self.state_at(now) == TokenState::Expired {
            return Err(ResetError::Transition(TransitionError::Expired));
        }
        if grace_period < Duration::zero() {
            return Err(ResetError::Invalid(ValidationError::new(
                "grace_period",
                "must not be negative",
            )));
        }
        if grace_period > max_grace_period {
            return Err(ResetError::Invalid(ValidationError::new(
                "grace_period",
                format!("must be at most {} seconds", max_grace_period.num_seconds()),
            )));
        }
        if grace_period.is_zero() {
            return Ok(None);
        }
        let end = now.checked_add_signed(grace_period).ok_or_else(|| {
            ResetError::Invalid(ValidationError::new("grace_period", "is out of range"))
        })?;
        if self.expires_at.is_some_and(|expiry| end > expiry) {
            return Err(ResetError::Invalid(ValidationError::new(
                "grace_period",
                "must end no later than the token's expire time",
            )));
        }
        Ok(Some(end))
    }

    /// The lifetime the token was given, which a duplicate inherits; None: never expires.
    pub fn lifetime(&self) -> Option<Duration> {
        self.expires_at.map(|at| at - self.created_at)
    }
}

/// Why a reset was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Transition(TransitionError),
    #[error(transparent)]
    Invalid(ValidationError),
}

/// The longest lifetime a token can be given: 100 years is "practically never" while
/// keeping every time computed from it (a duplicate's expiry, a grace end) far inside the
/// representable range.
pub const MAX_LIFETIME: Duration = Duration::days(36_500);

/// Checks a requested expire time: it must lie in the future, and at most
/// [`MAX_LIFETIME`] ahead.
pub fn validate_expiry(
    expires_at: Timestamp,
    now: Timestamp,
    field: &str,
) -> Result<(), ValidationError> {
    if expires_at <= now {
        return Err(ValidationError::new(field, "must be in the future"));
    }
    if now
        .checked_add_signed(MAX_LIFETIME)
        .is_none_or(|latest| expires_at > latest)
    {
        return Err(ValidationError::new(
            field,
            "must be at most 100 years ahead",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Labels, now};

    pub(crate) fn token(expires_in: Option<Duration>) -> Token {
        let t = now();
        Token {
            id: TokenId::generate(),
            account_id: AccountId::generate(),
            owner_id: PrincipalId::generate(),
            name: TokenName::parse("ci", "name").unwrap(),
            description: Description::default(),
            scopes: PermissionSet::default(),
            labels: Labels::default(),
            api_version: ApiVersion::default(),
            allowed_networks: AllowedNetworks::default(),
            state: StoredState::Active,
            created_at: t,
            created_by: PrincipalId::generate(),
            updated_at: t,
            expires_at: expires_in.map(|d| t + d),
            last_used_at: None,
            display_hint: "tka_…abcd".into(),
            previous_secret_expires_at: None,
            version: 1,
        }
    }

    fn reason() -> RevokeReason {
        RevokeReason::parse("leaked", "reason").unwrap()
    }

    #[test]
    fn state_is_derived_from_the_clock() {
        let t = token(Some(Duration::hours(1)));
        assert_eq!(t.state_at(t.created_at), TokenState::Active);
        assert_eq!(
            t.state_at(t.created_at + Duration::hours(1)),
            TokenState::Expired
        );
    }

    #[test]
    fn revoked_wins_over_expired() {
        let mut t = token(Some(Duration::hours(1)));
        t.revoke(Some(PrincipalId::generate()), reason(), now())
            .unwrap();
        assert_eq!(
            t.state_at(t.created_at + Duration::days(2)),
            TokenState::Revoked
        );
    }

    #[test]
    fn revoke_is_permanent_and_keeps_the_first_reason() {
        let mut t = token(None);
        let by = PrincipalId::generate();
        t.revoke(Some(by.clone()), reason(), now()).unwrap();
        assert_eq!(
            t.revoke(Some(PrincipalId::generate()), reason(), now()),
            Err(TransitionError::Revoked)
        );
        assert!(matches!(&t.state, StoredState::Revoked { by: b, .. } if b.as_ref() == Some(&by)));
        assert_eq!(t.enable(), Err(TransitionError::Revoked));
        assert_eq!(t.disable(), Err(TransitionError::Revoked));
    }

    #[test]
    fn disable_and_enable_are_reversible_and_idempotent() {
        let mut t = token(None);
        assert_eq!(t.disable(), Ok(true));
        assert_eq!(t.disable(), Ok(false));
        assert_eq!(t.state_at(now()), TokenState::Disabled);
        assert_eq!(t.enable(), Ok(true));
        assert_eq!(t.enable(), Ok(false));
        assert_eq!(t.state_at(now()), TokenState::Active);
    }

    #[test]
    fn reset_without_grace_stops_the_old_secret_at_once() {
        let t = token(None);
        assert_eq!(
            t.reset_grace_end(Duration::zero(), Duration::days(7), now()),
            Ok(None)
        );
    }

    #[test]
    fn grace_period_is_capped_and_never_outlives_the_token() {
        let t = token(Some(Duration::hours(2)));
        let at = t.created_at;
        assert_eq!(
            t.reset_grace_end(Duration::hours(1), Duration::days(7), at),
            Ok(Some(at + Duration::hours(1)))
        );
        assert!(matches!(
            t.reset_grace_end(Duration::hours(3), Duration::days(7), at),
            Err(ResetError::Invalid(_))
        ));
        assert!(matches!(
            t.reset_grace_end(Duration::days(8), Duration::days(30), at),
            Err(ResetError::Invalid(_))
        ));
        let long = token(None);
        assert!(matches!(
            long.reset_grace_end(Duration::days(8), Duration::days(7), at),
            Err(ResetError::Invalid(_))
        ));
        assert!(matches!(
            long.reset_grace_end(Duration::seconds(-1), Duration::days(7), at),
            Err(ResetError::Invalid(_))
        ));
    }

    #[test]
    fn expired_and_revoked_tokens_cannot_be_reset() {
        let t = token(Some(Duration::hours(1)));
        let later = t.created_at + Duration::hours(2);
        assert_eq!(
            t.reset_grace_end(Duration::zero(), Duration::days(7), later),
            Err(ResetError::Transition(TransitionError::Expired))
        );
        let mut r = token(None);
        r.revoke(Some(PrincipalId::generate()), reason(), now())
            .unwrap();
        assert_eq!(
            r.reset_grace_end(Duration::zero(), Duration::days(7), now()),
            Err(ResetError::Transition(TransitionError::Revoked))
        );
    }

    #[test]
    fn lifetime_is_the_expiry_policy_a_duplicate_inherits() {
        assert_eq!(
            token(Some(Duration::days(30))).lifetime(),
            Some(Duration::days(30))
        );
        assert_eq!(token(None).lifetime(), None);
    }

    #[test]
    fn expiry_must_be_in_the_future() {
        let t = now();
        assert!(validate_expiry(t + Duration::seconds(1), t, "expire_time").is_ok());
        assert!(validate_expiry(t, t, "expire_time").is_err());
        assert!(validate_expiry(t - Duration::days(1), t, "expire_time").is_err());
    }

    #[test]
    fn expiry_is_capped_at_one_hundred_years() {
        let t = now();
        assert!(validate_expiry(t + MAX_LIFETIME, t, "expire_time").is_ok());
        let too_far = t + MAX_LIFETIME + Duration::seconds(1);
        assert!(validate_expiry(too_far, t, "expire_time").is_err());
        // Regression: year ~255,000 was accepted, and a duplicate's expiry then overflowed.
        let far = chrono::DateTime::from_timestamp(8_000_000_000_000, 0).unwrap();
        assert!(validate_expiry(far, t, "expire_time").is_err());
    }

    #[test]
    fn a_grace_period_past_the_representable_range_is_refused() {
        let t = token(None);
        let huge = Duration::MAX;
        assert!(matches!(
            t.reset_grace_end(huge, huge, now()),
            Err(ResetError::Invalid(_))
        ));
    }
}
