//! The one place where errors become gRPC statuses.

use tonic::{Code, Status};

use crate::authority::AuthorityError;

impl From<AuthorityError> for Status {
    fn from(error: AuthorityError) -> Self {
        let code = match &error {
            AuthorityError::Unauthenticated(_) => Code::Unauthenticated,
            AuthorityError::PermissionDenied(_) => Code::PermissionDenied,
            AuthorityError::NotFound(_) => Code::NotFound,
            AuthorityError::Invalid(_) => Code::InvalidArgument,
            AuthorityError::FailedPrecondition(_) => Code::FailedPrecondition,
            AuthorityError::Aborted(_) => Code::Aborted,
            AuthorityError::ResourceExhausted(_) => Code::ResourceExhausted,
            AuthorityError::Unavailable
            | AuthorityError::ShuttingDown
            | AuthorityError::RevisionNotApplied { .. } => Code::Unavailable,
            AuthorityError::Internal => Code::Internal,
        };
        Status::new(code, error.to_string())
    }
}

impl From<crate::domain::ValidationError> for Status {
    fn from(error: crate::domain::ValidationError) -> Self {
        AuthorityError::from(error).into()
    }
}
