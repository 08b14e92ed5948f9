//! An account's token policy: the limits every token of the account must keep when it is
//! created, changed, duplicated or given a new secret. A policy never changes a token by
//! itself: tokens that predate a tightening keep working, and a listing filter finds them.

use std::fmt;

use chrono::Duration;

use super::{MAX_LIFETIME, PermissionSet, Timestamp, Token, ValidationError};

/// The limits of an account's tokens. The default (what every account starts with) limits
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenPolicy {
    /// None: tokens may live for ever. Some: every token must expire, at most this long
    /// after it was created (whole seconds, at least one).
    max_lifetime: Option<Duration>,
    /// None: only the server's `--max-grace-period` caps a reset's grace period. Some: a
    /// reset may leave the old secret working at most this long (zero: not at all).
    max_reset_grace: Option<Duration>,
    /// Empty: any scopes. Otherwise every token must list its scopes, each one of these (an
    /// unscoped token could do anything its owner can, so it breaks such a policy).
    allowed_scopes: PermissionSet,
}

/// A rule of a token policy that a token, or a reset, would break. Its message names the
/// rule as the API does, so that a caller can find it in `GetTokenPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error(
        "the account's token policy (max_lifetime {}) requires an expire time, at most {} after the token's creation",
        HumanDuration(*.0), HumanDuration(*.0)
    )]
    ExpiryRequired(Duration),
    #[error(
        "the account's token policy (max_lifetime {}) allows an expire time at most {} after the token's creation",
        HumanDuration(*.0), HumanDuration(*.0)
    )]
    LifetimeTooLong(Duration),
    #[error(
        "the account's token policy (allowed_scopes) requires the token to list its scopes, from: {}",
        .0.to_strings().join(", ")
    )]
    ScopesRequired(PermissionSet),
    #[error(
        "the account's token policy (allowed_scopes) does not allow: {}",
        .0.to_strings().join(", ")
    )]
    ScopesNotAllowed(PermissionSet),
    #[error(
        "the account's token policy (max_reset_grace_period {}) allows a grace period of at most {}",
        HumanDuration(*.0), HumanDuration(*.0)
    )]
    GraceTooLong(Duration),
}

impl TokenPolicy {
    /// Checks the rules' values: durations in whole seconds, a lifetime from one second to
    /// [`MAX_LIFETIME`], a grace period from zero to the same. Errors name the fields as the
    /// API does.
    pub fn new(
        max_lifetime: Option<Duration>,
        max_reset_grace: Option<Duration>,
        allowed_scopes: PermissionSet,
    ) -> Result<Self, ValidationError> {
        if let Some(lifetime) = max_lifetime {
            check_duration(lifetime, Duration::seconds(1), "max_lifetime")?;
        }
        if let Some(grace) = max_reset_grace {
            check_duration(grace, Duration::zero(), "max_reset_grace_period")?;
        }
        Ok(Self {
            max_lifetime,
            max_reset_grace,
            allowed_scopes,
        })
    }

    pub fn max_lifetime(&self) -> Option<Duration> {
        self.max_lifetime
    }

    pub fn max_reset_grace(&self) -> Option<Duration> {
        self.max_reset_grace
    }

    pub fn allowed_scopes(&self) -> &PermissionSet {
        &self.allowed_scopes
    }

    /// Whether a token could break this policy at all (it has a lifetime or a scope rule;
    /// the grace rule concerns resets, not tokens).
    pub fn limits_tokens(&self) -> bool {
        self.max_lifetime.is_some() || !self.allowed_scopes.is_empty()
    }

    /// The lifetime rule, for a token created at `created_at` that expires at `expires_at`.
    pub fn check_lifetime(
        &self,
        created_at: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<(), PolicyViolation> {
        let Some(max) = self.max_lifetime else {
            return Ok(());
        };
        match expires_at {
            None => Err(PolicyViolation::ExpiryRequired(max)),
            Some(end) if end.signed_duration_since(created_at) > max => {
                Err(PolicyViolation::LifetimeTooLong(max))
            }
            Some(_) => Ok(()),
        }
    }

    /// The scope rule, for a token limited to `scopes` (empty: unscoped).
    pub fn check_scopes(&self, scopes: &PermissionSet) -> Result<(), PolicyViolation> {
        if self.allowed_scopes.is_empty() {
            return Ok(());
        }
        if scopes.is_empty() {
            return Err(PolicyViolation::ScopesRequired(self.allowed_scopes.clone()));
        }
        let outside = scopes.difference(&self.allowed_scopes);
        if outside.is_empty() {
            Ok(())
        } else {
            Err(PolicyViolation::ScopesNotAllowed(outside))
        }
    }

    /// Every rule a token must keep. The listing filter `violates_token_policy` selects the
    /// tokens this refuses (`store/sql/tokens.rs` spells the same rules in SQL).
    pub fn check_token(&self, token: &Token) -> Result<(), PolicyViolation> {
        self.check_lifetime(token.created_at, token.expires_at)?;
        self.check_scopes(&token.scopes)
    }

    /// The grace rule, for a reset asking for `grace_period`.
    pub fn check_reset_grace(&self, grace_period: Duration) -> Result<(), PolicyViolation> {
        match self.max_reset_grace {
            Some(max) if grace_period > max => Err(PolicyViolation::GraceTooLong(max)),
            _ => Ok(()),
        }
    }
}

fn check_duration(value: Duration, min: Duration, field: &str) -> Result<(), ValidationError> {
    if value.subsec_nanos() != 0 {
        return Err(ValidationError::new(field, "must be whole seconds"));
    }
    if value < min || value > MAX_LIFETIME {
        return Err(ValidationError::new(
            field,
            format!(
                "must be from {} to 100 years",
                if min.is_zero() { "0s" } else { "1s" }
            ),
        ));
    }
    Ok(())
}

/// A duration as people read it, in days and smaller units: `90d`, `1d 12h`, `90s`.
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut seconds = self.0.num_seconds().max(0);
        if seconds == 0 {
            return f.write_str("0s");
        }
        let mut first = true;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            let count = seconds / size;
            if count > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{count}{unit}")?;
                first = false;
                seconds %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::now;

    fn set(values: &[&str]) -> PermissionSet {
        PermissionSet::parse(values, "p").unwrap()
    }

    fn policy(
        lifetime_days: Option<i64>,
        grace_hours: Option<i64>,
        scopes: &[&str],
    ) -> TokenPolicy {
        TokenPolicy::new(
            lifetime_days.map(Duration::days),
            grace_hours.map(Duration::hours),
            set(scopes),
        )
        .unwrap()
    }

    #[test]
    fn the_default_policy_limits_nothing() {
        let open = TokenPolicy::default();
        let t = now();
        assert!(!open.limits_tokens());
        assert!(open.check_lifetime(t, None).is_ok());
        assert!(open.check_scopes(&PermissionSet::default()).is_ok());
        assert!(open.check_reset_grace(MAX_LIFETIME).is_ok());
    }

    #[test]
    fn a_max_lifetime_requires_an_expiry_within_it() {
        let p = policy(Some(30), None, &[]);
        let t = now();
        assert_eq!(
            p.check_lifetime(t, None),
            Err(PolicyViolation::ExpiryRequired(Duration::days(30)))
        );
        assert!(p.check_lifetime(t, Some(t + Duration::days(30))).is_ok());
        assert_eq!(
            p.check_lifetime(t, Some(t + Duration::days(30) + Duration::microseconds(1))),
            Err(PolicyViolation::LifetimeTooLong(Duration::days(30)))
        );
        // Measured from creation, not from now: an old token cannot be extended past it.
        let created = t - Duration::days(29);
        assert!(
            p.check_lifetime(created, Some(t + Duration::days(2)))
                .is_err()
        );
    }

    #[test]
    fn allowed_scopes_require_listed_scopes_within_them() {
        let p = policy(None, None, &["orders.read", "orders.write"]);
        assert!(matches!(
            p.check_scopes(&PermissionSet::default()),
            Err(PolicyViolation::ScopesRequired(_))
        ));
        assert!(p.check_scopes(&set(&["orders.read"])).is_ok());
        assert_eq!(
            p.check_scopes(&set(&["orders.read", "billing.read"])),
            Err(PolicyViolation::ScopesNotAllowed(set(&["billing.read"])))
        );
    }

    #[test]
    fn the_grace_rule_caps_resets_including_at_zero() {
        let p = policy(None, Some(0), &[]);
        assert!(p.check_reset_grace(Duration::zero()).is_ok());
        assert_eq!(
            p.check_reset_grace(Duration::seconds(1)),
            Err(PolicyViolation::GraceTooLong(Duration::zero()))
        );
        assert!(!p.limits_tokens());
    }

    #[test]
    fn rule_values_are_checked() {
        let none = PermissionSet::default;
        assert!(TokenPolicy::new(Some(Duration::zero()), None, none()).is_err());
        assert!(TokenPolicy::new(Some(Duration::milliseconds(1500)), None, none()).is_err());
        assert!(TokenPolicy::new(Some(MAX_LIFETIME + Duration::seconds(1)), None, none()).is_err());
        assert!(TokenPolicy::new(Some(MAX_LIFETIME), None, none()).is_ok());
        assert!(TokenPolicy::new(None, Some(Duration::seconds(-1)), none()).is_err());
        let e = TokenPolicy::new(None, Some(Duration::zero() - Duration::days(1)), none());
        assert_eq!(e.unwrap_err().field, "max_reset_grace_period");
    }

    #[test]
    fn messages_name_the_rule_and_its_value() {
        let message = PolicyViolation::ExpiryRequired(Duration::days(90)).to_string();
        assert!(message.contains("max_lifetime 90d"), "{message}");
        let message = PolicyViolation::GraceTooLong(Duration::seconds(93_784)).to_string();
        assert!(message.contains("1d 2h 3m 4s"), "{message}");
        let message = PolicyViolation::ScopesNotAllowed(set(&["b", "a"])).to_string();
        assert!(message.ends_with("does not allow: a, b"), "{message}");
    }

    proptest! {
        /// A lifetime is within the rule exactly when its length is at most the maximum,
        /// to the microsecond, whatever the creation time.
        #[test]
        fn lifetimes_are_judged_by_their_length(
            max_seconds in 1i64..=MAX_LIFETIME.num_seconds(),
            offset_micros in -10_000_000i64..10_000_000,
            created_seconds in 0i64..4_000_000_000,
        ) {
            let p = TokenPolicy::new(Some(Duration::seconds(max_seconds)), None, PermissionSet::default()).unwrap();
            let created = chrono::DateTime::from_timestamp(created_seconds, 0).unwrap();
            let length = Duration::seconds(max_seconds) + Duration::microseconds(offset_micros);
            let verdict = p.check_lifetime(created, Some(created + length));
            prop_assert_eq!(verdict.is_ok(), offset_micros <= 0);
        }
    }
}
