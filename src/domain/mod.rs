//! The rules of the token authority, free of I/O: the token format and its hashing, the
//! validated value types (ids, names, permissions, labels), the token lifecycle and the
//! verification verdict. Everything here is pure and unit-tested beside its code.

mod account;
mod clock;
mod error;
mod events;
mod ids;
mod labels;
mod networks;
mod permission;
mod principal;
mod random;
mod text;
mod token;
mod token_policy;
mod token_secret;
mod verification;

pub use account::Account;
pub use clock::Clock;
pub use error::{ValidationError, excerpt};
pub use events::{
    AuditAction, AuditEvent, AuditRecord, Invalidation, InvalidationEvent, InvalidationKind,
    InvalidationTarget,
};
pub use ids::{AccountId, LeakReportId, PrincipalId, TokenId};
pub use labels::Labels;
pub use networks::{AllowedNetworks, MAX_ALLOWED_NETWORKS, address_group};
pub use permission::{Permission, PermissionSet};
pub use principal::{Principal, PrincipalKind};
pub use text::{
    ApiVersion, Description, DisplayName, LeakSource, LeakUrl, MAX_LEAKED_SECRETS, RevokeReason,
    TokenName,
};
pub use token::{
    MAX_LIFETIME, ResetError, StoredState, Token, TokenSpec, TokenState, TransitionError,
    validate_expiry,
};
pub use token_policy::{HumanDuration, PolicyViolation, TokenPolicy};
pub use token_secret::{ParseError, SecretHash, TOKEN_PREFIX, TokenSecret};
#[cfg(test)]
pub(crate) use verification::sample_snapshot;
pub use verification::{Verdict, VerificationCode, VerificationSnapshot, evaluate};

/// Instants are UTC wall-clock times with microsecond precision (what both stores keep).
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The current time, truncated to the microsecond precision the stores keep, so that a value
/// read back equals the value written.
pub fn now() -> Timestamp {
    truncate_to_micros(chrono::Utc::now())
}

/// Drops sub-microsecond precision.
pub fn truncate_to_micros(t: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
