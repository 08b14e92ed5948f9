//! Reads the caller's credential from gRPC metadata and authenticates it.

use tonic::Status;

use crate::credential;

/// Authenticates the caller of `request` with the authority's verification.
pub(super) async fn authenticate<T>(
    authority: &crate::authority::Authority,
    request: &tonic::Request<T>,
) -> Result<crate::authority::Caller, Status> {
    let metadata = request.metadata();
    let values = |name| {
        metadata
            .get_all(name)
            .into_iter()
            .map(|value| value.to_str().ok())
    };
    let presented = credential::presented_token(values("authorization"), values("x-api-key"))
        .map_err(|error| Status::unauthenticated(error.to_string()))?;
    Ok(authority
        .authenticate(presented, peer_addr(request))
        .await?)
}

/// The client's address: from the guarded listener's connection info, or tonic's own (a
/// server built on a plain TCP listener).
pub(super) fn peer_addr<T>(request: &tonic::Request<T>) -> Option<std::net::SocketAddr> {
    crate::connections::peer_addr(request.extensions()).or_else(|| request.remote_addr())
}

/// Authenticates the caller of `request` and checks that it holds `permission`, before any
/// field of the request is parsed: a caller without the permission learns nothing about the
/// request's validity (AIP-211). The use case checks the permission again; this check only
/// puts it first.
pub(super) async fn authorize<T>(
    authority: &crate::authority::Authority,
    request: &tonic::Request<T>,
    permission: &str,
) -> Result<crate::authority::Caller, Status> {
    let caller = authenticate(authority, request).await?;
    caller.require(permission)?;
    Ok(caller)
}
