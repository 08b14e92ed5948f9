//! The errors of the use cases, in the vocabulary of the API: the gRPC layer maps each
//! variant to one status code (in `grpc::status`), and nothing else needs to.

use crate::domain::{PolicyViolation, TransitionError, ValidationError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// No credential, or one that does not verify. The message says why, never echoing it.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller lacks a permission, or would grant more than it has.
    #[error("{0}")]
    PermissionDenied(String),
    /// No such object, or one in an account the caller may not see (indistinguishable on
    /// purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The request is well formed but the object's state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change won, or the caller's etag is stale: read again and retry.
    #[error("{0}")]
    Aborted(String),
    /// A watcher could not keep up and was cut off; it resumes from the revision given.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The server is shutting down; resume on another replica or after the restart.
    #[error("the server is shutting down; resume from the last revision seen")]
    ShuttingDown,
    /// A `min_revision` this replica has not applied within the wait: worth a retry, here or
    /// on another replica. The message does not say which revision the replica has applied:
    /// the revision counts every account's changes (see SECURITY.md).
    #[error(
        "this replica has not applied revision {wanted} yet, after waiting {waited:?}: retry, or ask another replica"
    )]
    RevisionNotApplied {
        wanted: u64,
        waited: std::time::Duration,
    },
    /// The database cannot be reached; worth a retry.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// A bug or corrupt data; details are in the server log, not in the answer.
    #[error("internal error")]
    Internal,
}

impl AuthorityError {
    pub fn invalid(field: &str, problem: impl Into<String>) -> Self {
        Self::Invalid(ValidationError::new(field, problem))
    }
}

impl From<StoreError> for AuthorityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Self::Aborted(format!(
                "the {what} was changed concurrently; read it again and retry"
            )),
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                Self::Unavailable
            }
            other => {
                tracing::error!(error = ?other, "store failure");
                Self::Internal
            }
        }
    }
}

impl From<TransitionError> for AuthorityError {
    fn from(error: TransitionError) -> Self {
        Self::FailedPrecondition(error.to_string())
    }
}

impl From<PolicyViolation> for AuthorityError {
    fn from(violation: PolicyViolation) -> Self {
        Self::FailedPrecondition(violation.to_string())
    }
}
