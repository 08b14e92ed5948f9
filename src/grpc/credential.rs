//! Reads the caller's credential from gRPC metadata and authenticates it.

use tonic::Status;

use crate::credential;

/// Authenticates the caller of `request` with the authority's verification.
pub(super) async fn authenticate<T>(
    authority: &crate::authority::Authority,
    request: &tonic::Request<T>,
) -> Result<crate::authority::Caller, Status> {
    let metadata = request.metadata();
    let text = |name| metadata.get(name).map(|value| value.to_str().ok());
    let presented = credential::presented_token(text("authorization"), text("x-api-key"))
        .map_err(|error| Status::unauthenticated(error.to_string()))?;
    Ok(authority
        .authenticate(presented, request.remote_addr())
        .await?)
}
