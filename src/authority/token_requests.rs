//! The validated requests of the token use cases, as the gRPC layer builds them.

use chrono::Duration;

use super::{AuthorityError, AuthorityResult};
use crate::domain::{
    AccountId, AllowedNetworks, ApiVersion, Description, Labels, MAX_LIFETIME, PermissionSet,
    PrincipalId, Timestamp, TokenName, TokenState, validate_expiry,
};

/// When a new token stops working.
#[derive(Debug, Clone, Copy)]
pub enum Expiry {
    Never,
    At(Timestamp),
    After(Duration),
}

impl Expiry {
    /// The end of a token issued at `at`: a time must lie ahead and within the longest
    /// lifetime; a duration must be positive and at most that lifetime.
    pub fn resolve(self, at: Timestamp) -> AuthorityResult<Option<Timestamp>> {
        match self {
            Self::Never => Ok(None),
            Self::At(when) => {
                validate_expiry(when, at, "expire_time")?;
                Ok(Some(when))
            }
            Self::After(ttl) => (ttl > Duration::zero() && ttl <= MAX_LIFETIME)
                .then(|| at.checked_add_signed(ttl))
                .flatten()
                .map(Some)
                .ok_or_else(|| {
                    AuthorityError::invalid("ttl", "must be positive and at most 100 years")
                }),
        }
    }
}

/// A validated CreateToken request.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// None: the caller's own principal.
    pub owner_id: Option<PrincipalId>,
    pub name: TokenName,
    pub description: Description,
    pub scopes: PermissionSet,
    pub labels: Labels,
    pub api_version: ApiVersion,
    pub allowed_networks: AllowedNetworks,
    pub expiry: Expiry,
}

/// A validated UpdateToken request: only the fields present change.
#[derive(Debug, Clone, Default)]
pub struct TokenUpdate {
    pub name: Option<TokenName>,
    pub description: Option<Description>,
    /// Some(None): never expires.
    pub expires_at: Option<Option<Timestamp>>,
    pub scopes: Option<PermissionSet>,
    pub labels: Option<Labels>,
    pub api_version: Option<ApiVersion>,
    /// Some(empty): usable from anywhere again.
    pub allowed_networks: Option<AllowedNetworks>,
}

/// The filters of ListTokens.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub account_id: Option<AccountId>,
    pub owner_id: Option<PrincipalId>,
    pub name_contains: Option<String>,
    pub state: Option<TokenState>,
    pub created_at_or_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub last_used_before: Option<Timestamp>,
    /// Expiring (or expired) before this time.
    pub expires_before: Option<Timestamp>,
    /// Only tokens that break the account's current token policy.
    pub violates_token_policy: bool,
}
