//! The admin console's listener (`--console-addr`): the console's page, embedded in the
//! binary ([`assets`]), and gRPC-Web for the token and admin services it calls. Every rule
//! is the services' own; the page only asks, with the credential its user pasted.
//!
//! Same origin only. The listener sends no CORS headers, so no other site's script may read
//! an answer, and [`origin`] refuses a request that names another origin or reaches the
//! listener under a host name it is not served as (DNS rebinding: another site's name made
//! to point here). The page's answers carry a strict Content-Security-Policy and are never
//! framed, cached or given a referrer.

pub mod assets;
pub mod origin;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tonic::transport::server::Connected;
use tonic_web::GrpcWebLayer;
use tower::Layer;

use crate::authority::{Authority, WatchOptions};
use crate::connections::{ConnectionLimits, FirstRequestLayer};
use crate::grpc::rpc_metrics::RpcMetricsLayer;
use crate::grpc::server::{admin_service, builder, token_service};
use crate::grpc::{limits, panics};
use origin::AllowedHosts;

/// How the console's listener is set up.
pub struct ConsoleOptions {
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    pub watch: WatchOptions,
    /// Serve TLS with this identity; plaintext HTTP without it.
    pub tls: Option<tonic::transport::Identity>,
    /// The host names the console is reached by, besides IP addresses and `localhost`.
    pub hosts: AllowedHosts,
    /// How long a connection lives before the server asks the browser to reconnect.
    pub max_connection_age: Duration,
}

/// How long calls in flight (the page's live updates) may go on after a connection's
/// maximum age; the page opens its stream again.
const CONNECTION_AGE_GRACE: Duration = Duration::from_secs(60);

/// Serves the console on `incoming` until `shutdown` completes.
pub fn serve<I, IO, IE>(
    authority: Arc<Authority>,
    options: ConsoleOptions,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = Result<(), tonic::transport::Error>>, tonic::transport::Error>
where
    I: tokio_stream::Stream<Item = Result<IO, IE>> + Send + 'static,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    let hosts = Arc::new(options.hosts);
    // gRPC-Web on the services' routes only: tonic-web refuses any other HTTP/1.1 request,
    // and the page's own files are such requests. The RPC metrics sit inside the
    // translation, where a call's status is still in its trailers.
    let web = GrpcWebLayer::new();
    let router = tonic::service::Routes::new(web.layer(RpcMetricsLayer.layer(token_service(
        &authority,
        options.watch,
        options.max_message_bytes,
    ))))
    .add_service(
        web.layer(RpcMetricsLayer.layer(admin_service(&authority, options.max_message_bytes))),
    )
    .into_axum_router()
    // Not tonic's UNIMPLEMENTED with a 200: a path that is neither a file nor a method.
    .fallback(|| async { (http::StatusCode::NOT_FOUND, "not found") });
    let router = assets::add_to(router).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let hosts = hosts.clone();
            async move { same_origin_only(&hosts, request, next).await }
        },
    ));
    // As on the gRPC port: TLS, keepalive, a maximum connection age. Browsers speak
    // gRPC-Web over HTTP/1.1 (or HTTP/2 where TLS lets them choose it).
    Ok(builder(
        options.tls,
        options.max_connection_age,
        CONNECTION_AGE_GRACE,
    )?
    .accept_http1(true)
    .layer(FirstRequestLayer)
    .layer(panics::catch_panic_layer())
    .layer(limits::resource_exhausted_layer())
    .add_routes(tonic::service::Routes::from(router))
    .serve_with_incoming_shutdown(incoming, shutdown))
}

/// The console's share of connections, beside the gRPC port's `grpc` limits: a sixteenth
/// of its cap (between 16 and 256), so that both listeners together stay within the
/// process's file limit; from one address at most 64 (a browser opens a handful), the gRPC
/// port's cap per address, and half of the console's, so that no one address holds them all.
pub fn connection_limits(grpc: &ConnectionLimits) -> ConnectionLimits {
    let max_connections = (grpc.max_connections / 16).clamp(16, 256);
    let per_address = match grpc.max_per_address {
        0 => 64,
        cap => cap.min(64),
    };
    ConnectionLimits {
        max_connections,
        max_per_address: per_address.min(max_connections / 2).max(1),
        first_request_timeout: grpc.first_request_timeout,
    }
}

/// Refuses a request from another origin or for another host (403); gives every answer the
/// page's security headers.
async fn same_origin_only(hosts: &AllowedHosts, request: Request, next: Next) -> Response {
    if let Err(refusal) = hosts.check(&request) {
        tracing::debug!(%refusal, "console request refused");
        return assets::with_security_headers(
            (http::StatusCode::FORBIDDEN, refusal.to_string()).into_response(),
        );
    }
    assets::with_security_headers(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::Settings;

    // Review of issue 24: the console's share keeps both listeners inside the file limit,
    // and no single address can hold all of the console's connections.
    #[test]
    fn the_consoles_connections_are_a_bounded_share() {
        for (max_connections, per_address) in [(48, 1024), (768, 1024), (15_000, 0), (50_000, 8)] {
            let mut settings = Settings::defaults();
            settings.max_connections = max_connections;
            settings.max_connections_per_address = per_address;
            let grpc = settings.grpc_connection_limits();
            let console = connection_limits(&grpc);
            assert!(console.max_connections <= 256);
            assert!(console.max_connections >= 16);
            // At most a sixteenth of the gRPC cap (which is itself three quarters of the file
            // limit by default).
            assert!(console.max_connections * 16 <= grpc.max_connections.max(256));
            assert!(console.max_per_address >= 1);
            assert!(console.max_per_address <= console.max_connections / 2);
            assert!(console.max_per_address <= 64);
            if per_address != 0 {
                assert!(console.max_per_address <= per_address);
            }
        }
    }
}
