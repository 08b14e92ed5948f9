//! Envoy's external authorization API, `envoy.service.auth.v3.Authorization/Check`: Envoy
//! (or Istio) sends each request's method, path, headers and client address, and lets it
//! through when the answer's status is OK, applying the header changes it carries.
//!
//! Envoy joins a repeated header's values with commas in the `headers` map it sends, so a
//! credential sent twice reads as one malformed token and is refused. The path is the
//! request target as it appeared in the request line, undecoded. The client's address is
//! the source Envoy reports, which is the connection's peer whatever Envoy's
//! `xff_num_trusted_hops` says: when that peer is a load balancer the operator trusts
//! (`--ext-authz-trusted-proxy`), the client is read from the `X-Forwarded-For` Envoy
//! passes on, as the client library reads it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::ext_authz::v3::pb::{
    Address, Authorization, CheckRequest, CheckResponse, HeaderAppendAction, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use tonic::{Request, Response, Status};

use super::decision::{
    Decision, GatewayRequest, Outcome, Refusal, Verifier, decide, identity_headers,
};
use super::metrics::record;
use super::routes::Routes;
use crate::authority::failed_authentications::FailedAuthentications;
use crate::client::TrustedProxies;

/// The Authorization service, answering from `verifier` by `routes`.
pub struct ExtAuthz<V> {
    pub routes: Arc<Routes>,
    pub verifier: V,
    /// Whose `X-Forwarded-For` is believed: the load balancers in front of Envoy, when
    /// Envoy reports them as the source.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Whether the service behind receives the credential headers.
    pub keep_credential: bool,
    /// Each client address's allowance of invalid tokens.
    pub(crate) failures: Arc<FailedAuthentications>,
}

#[tonic::async_trait]
impl<V: Verifier + 'static> Authorization for ExtAuthz<V> {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let answer = answer(
            &self.routes,
            &self.verifier,
            &self.failures,
            &self.trusted_proxies,
            request.into_inner(),
            self.keep_credential,
        )
        .await;
        Ok(Response::new(answer))
    }
}

/// The answer to one `Check`: the decision on the request it describes, by `routes`, with
/// `verifier`'s verdicts, as the header changes or refusal Envoy applies. Shared by the
/// edge and the authority's own `Check`.
pub(crate) async fn answer(
    routes: &Routes,
    verifier: &impl Verifier,
    failures: &FailedAuthentications,
    trusted_proxies: &TrustedProxies,
    request: CheckRequest,
    keep_credential: bool,
) -> CheckResponse {
    let started = Instant::now();
    let attributes = request.attributes.unwrap_or_default();
    let http = attributes
        .request
        .and_then(|request| request.http)
        .unwrap_or_default();
    let headers = header_map(&http.headers);
    let source = attributes.source.and_then(|peer| socket_ip(peer.address));
    let client = trusted_proxies.client_address(source, &headers);
    let gateway_request = GatewayRequest {
        method: &http.method,
        target: &http.path,
        headers: &headers,
        client,
    };
    let decision = decide(routes, verifier, failures, &gateway_request).await;
    record(&decision, started.elapsed());
    respond(&decision, keep_credential)
}

fn respond(decision: &Decision, keep_credential: bool) -> CheckResponse {
    match &decision.outcome {
        Outcome::Allow(identity) => {
            let mut ok = OkHttpResponseBuilder::new();
            for (name, value) in identity_headers(identity.as_deref()) {
                if value.is_empty() {
                    // The client's own copy must not reach the service.
                    ok.remove_header(name.as_str());
                } else {
                    ok.add_header(
                        name.as_str(),
                        value.to_str().unwrap_or_default(),
                        Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                        false,
                    );
                }
            }
            if !keep_credential {
                for name in crate::credential::HEADERS {
                    ok.remove_header(name);
                }
            }
            let mut response = CheckResponse::with_status(Status::ok("allowed"));
            response.set_http_response(ok);
            response
        }
        Outcome::Refuse(refusal) => {
            let mut denied = DeniedHttpResponseBuilder::new();
            denied
                .set_http_status(http_status(*refusal))
                .set_body(refusal.body());
            if let Some(challenge) = refusal.challenge() {
                denied.add_header(
                    header::WWW_AUTHENTICATE.as_str(),
                    challenge,
                    Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                    false,
                );
            }
            let status = match refusal {
                Refusal::NoCredential | Refusal::InvalidToken => {
                    Status::unauthenticated(refusal.body())
                }
                Refusal::Unavailable => Status::unavailable(refusal.body()),
                Refusal::TooManyInvalidTokens => Status::resource_exhausted(refusal.body()),
                Refusal::Path
                | Refusal::Ambiguous
                | Refusal::ForgedIdentity
                | Refusal::NoRoute
                | Refusal::InsufficientScope => Status::permission_denied(refusal.body()),
            };
            let mut response = CheckResponse::with_status(status);
            response.set_http_response(denied);
            response
        }
    }
}

fn http_status(refusal: Refusal) -> HttpStatusCode {
    match refusal {
        Refusal::NoCredential | Refusal::InvalidToken => HttpStatusCode::Unauthorized,
        Refusal::Unavailable => HttpStatusCode::ServiceUnavailable,
        Refusal::TooManyInvalidTokens => HttpStatusCode::TooManyRequests,
        Refusal::Path
        | Refusal::Ambiguous
        | Refusal::ForgedIdentity
        | Refusal::NoRoute
        | Refusal::InsufficientScope => HttpStatusCode::Forbidden,
    }
}

/// The request's headers as a header map; a name or value that cannot be one is left out
/// (the credential headers then read as absent or malformed, never as something else).
fn header_map(headers: &std::collections::HashMap<String, String>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// The IP of a socket address Envoy reports.
fn socket_ip(address: Option<envoy_types::pb::envoy::config::core::v3::Address>) -> Option<IpAddr> {
    match address?.address? {
        Address::SocketAddress(socket) => socket.address.parse().ok(),
        _ => None,
    }
}
