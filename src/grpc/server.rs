//! The gRPC server: the token and admin services with health and reflection, behind the
//! layers every call passes through (first-request bound, RPC metrics, panic catching,
//! RESOURCE_EXHAUSTED for oversized messages). Start-up hands it a listener and a shutdown
//! signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::server::{Connected, Server};
use tonic_health::pb::health_server::HealthServer;

use super::{AdminApi, TokenApi, limits, panics, rpc_metrics};
use crate::authority::{Authority, WatchOptions};
use crate::connections::FirstRequestLayer;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::token_service_server::TokenServiceServer;

/// How the gRPC server is set up.
pub struct ServerOptions {
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    pub watch: WatchOptions,
    /// Serve TLS with this identity; plaintext HTTP/2 without it.
    pub tls: Option<tonic::transport::Identity>,
    /// How long a connection lives before the server asks the client to reconnect.
    pub max_connection_age: Duration,
    /// The rules Envoy's `Check` decides by; without them the service is not served.
    pub gateway_rules: Option<Arc<crate::gateway::Routes>>,
}

/// How long calls in flight (watch streams) may go on after a connection's maximum age.
const CONNECTION_AGE_GRACE: Duration = Duration::from_secs(3600);

/// Serves every service on `incoming` until `shutdown` completes, then drains.
pub fn serve<I, IO, IE>(
    authority: Arc<Authority>,
    options: ServerOptions,
    health: HealthServer<impl tonic_health::pb::health_server::Health>,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = Result<(), tonic::transport::Error>>, ServerError>
where
    I: tokio_stream::Stream<Item = Result<IO, IE>> + Send + 'static,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    // Both reflection versions: grpcurl 1.8 asks only for v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let token_service = token_service(&authority, options.watch, options.max_message_bytes);
    let check_service = options.gateway_rules.map(|routes| {
        envoy_types::ext_authz::v3::pb::AuthorizationServer::new(super::ext_authz::AuthorityCheck {
            authority: authority.clone(),
            routes,
        })
        .max_decoding_message_size(options.max_message_bytes)
    });
    let admin_service = admin_service(&authority, options.max_message_bytes);

    // Calls in flight (watch streams) get an hour after a connection's maximum age.
    Ok(builder(
        options.tls,
        options.max_connection_age,
        CONNECTION_AGE_GRACE,
    )?
    .layer(FirstRequestLayer)
    .layer(rpc_metrics::RpcMetricsLayer)
    .layer(panics::catch_panic_layer())
    .layer(limits::resource_exhausted_layer())
    .add_service(health)
    .add_service(reflection_v1)
    .add_service(reflection_v1alpha)
    .add_service(token_service)
    .add_service(admin_service)
    .add_optional_service(check_service)
    .serve_with_incoming_shutdown(incoming, shutdown))
}

/// A server as every listener of the services starts: TLS with `tls`, keepalive that
/// notices dead peers (so that their streams and memory are released), connections closed
/// after `max_connection_age` (calls in flight get `grace`), and each request in the span
/// that panics are reported in.
pub fn builder(
    tls: Option<tonic::transport::Identity>,
    max_connection_age: Duration,
    grace: Duration,
) -> Result<Server, tonic::transport::Error> {
    let mut builder = Server::builder();
    if let Some(identity) = tls {
        builder =
            builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    Ok(builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_connection_age(max_connection_age)
        .max_connection_age_grace(grace)
        .trace_fn(
            |request| tracing::error_span!(panics::REQUEST_SPAN, method = %request.uri().path()),
        ))
}

/// The token service as every listener serves it (the gRPC port, the console's gRPC-Web).
pub fn token_service(
    authority: &Arc<Authority>,
    watch: WatchOptions,
    max_message_bytes: usize,
) -> TokenServiceServer<TokenApi> {
    TokenServiceServer::new(TokenApi::new(authority.clone(), watch))
        .max_decoding_message_size(max_message_bytes)
}

/// The admin service as every listener serves it.
pub fn admin_service(
    authority: &Arc<Authority>,
    max_message_bytes: usize,
) -> AdminServiceServer<AdminApi> {
    AdminServiceServer::new(AdminApi::new(authority.clone()))
        .max_decoding_message_size(max_message_bytes)
}

/// Why the gRPC server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not build server reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("could not configure TLS")]
    Tls(#[from] tonic::transport::Error),
}
