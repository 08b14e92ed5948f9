//! A tower layer for tonic servers: verifies the caller's token with a [`CachingVerifier`]
//! before the request reaches the service, refuses it with UNAUTHENTICATED,
//! PERMISSION_DENIED or UNAVAILABLE otherwise, and puts the verified [`Identity`] in the
//! request extensions (`request.extensions().get::<Arc<Identity>>()` in a handler).
//!
//! The client's address, for tokens that list allowed networks, is the connection's peer,
//! or what trusted proxies forwarded (see [`TrustedProxies`]).
//!
//! A request must present one credential: `authorization` or `x-api-key` sent twice, or
//! both with different tokens, is refused (UNAUTHENTICATED), so that the service behind
//! cannot act on a token nobody verified. The credential headers are removed before the
//! request reaches the service (its identity is in the extensions) unless
//! [`VerifyLayer::keep_credential`] says otherwise.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower_layer::Layer;
use tower_service::Service;

use super::{CachingVerifier, Identity, Requirements, TrustedProxies, VerifyError};
use crate::proto::VerificationCode;

/// Verifies every request's token, requiring `required_scopes`.
#[derive(Clone)]
pub struct VerifyLayer {
    verifier: CachingVerifier,
    required_scopes: Arc<[String]>,
    /// Path prefixes that pass unverified (health checks, reflection).
    open_paths: Arc<[String]>,
    /// Whose `X-Forwarded-For` is believed; none by default.
    trusted_proxies: Arc<TrustedProxies>,
    /// Whether the service behind receives the credential headers.
    keep_credential: bool,
}

impl VerifyLayer {
    pub fn new(verifier: CachingVerifier, required_scopes: &[&str]) -> Self {
        Self {
            verifier,
            required_scopes: required_scopes.iter().map(|s| (*s).to_owned()).collect(),
            open_paths: Arc::new([]),
            trusted_proxies: Arc::default(),
            keep_credential: false,
        }
    }

    /// Passes the verified credential on to the service behind (for a service that calls
    /// others on the caller's behalf); by default it is removed.
    pub fn keep_credential(mut self) -> Self {
        self.keep_credential = true;
        self
    }

    /// Believes `X-Forwarded-For` from peers in `proxies` (the load balancers in front of
    /// this service), so that allowlisted tokens are checked against the real client's
    /// address. Without it, the peer's address is the client's.
    pub fn trust_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Arc::new(proxies);
        self
    }

    /// Lets requests whose path starts with `prefix` through without a token, e.g.
    /// `/grpc.health.v1.Health/`.
    pub fn allow_unauthenticated(mut self, prefix: &str) -> Self {
        let mut open: Vec<String> = self.open_paths.to_vec();
        open.push(prefix.to_owned());
        self.open_paths = open.into();
        self
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> VerifyService<S> {
        VerifyService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around another.
#[derive(Clone)]
pub struct VerifyService<S> {
    inner: S,
    layer: VerifyLayer,
}

impl<S, B> Service<http::Request<B>> for VerifyService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The ready service handles this request; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let path = request.uri().path();
            if layer
                .open_paths
                .iter()
                .any(|prefix| path.starts_with(prefix.as_str()))
            {
                return inner.call(request).await;
            }
            let client = layer
                .trusted_proxies
                .client_address(peer(&request), request.headers());
            match check(&layer, request.headers(), client).await {
                Ok(identity) => {
                    if !layer.keep_credential {
                        for header in crate::credential::HEADERS {
                            request.headers_mut().remove(header);
                        }
                    }
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// The connection's peer, as tonic's server records it (over TCP, with or without TLS).
fn peer<B>(request: &http::Request<B>) -> Option<IpAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .map(|addr| addr.ip())
}

/// The caller's identity, or the status that refuses the request.
async fn check(
    layer: &VerifyLayer,
    headers: &http::HeaderMap,
    client_address: Option<IpAddr>,
) -> Result<Arc<Identity>, Status> {
    let token = crate::credential::from_headers(headers)
        .map_err(|e| Status::unauthenticated(e.to_string()))?
        .ok_or_else(|| {
            Status::unauthenticated("missing credential: send `authorization: Bearer <token>`")
        })?;
    let required: Vec<&str> = layer.required_scopes.iter().map(String::as_str).collect();
    let requirements = Requirements {
        client_address,
        ..Requirements::scopes(&required)
    };
    let verification = layer
        .verifier
        .verify_with(token, &requirements)
        .await
        .map_err(|error| match error {
            VerifyError::Unavailable(_) => {
                Status::unavailable("the token authority is unavailable")
            }
            VerifyError::Refused(_) | VerifyError::Config(_) => {
                tracing::error!(%error, "token verification is misconfigured");
                Status::unavailable("token verification is unavailable")
            }
        })?;
    match (verification.code, verification.identity) {
        (VerificationCode::Valid, Some(identity)) => Ok(identity),
        (VerificationCode::InsufficientScopes, _) => Err(Status::permission_denied(format!(
            "the token lacks: {}",
            verification.missing_scopes.join(", ")
        ))),
        (code, _) => Err(Status::unauthenticated(format!(
            "the token is not valid: {}",
            code.as_str_name()
        ))),
    }
}
