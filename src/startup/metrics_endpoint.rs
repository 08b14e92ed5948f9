//! The Prometheus scrape endpoint: installs the Prometheus recorder as the process's
//! metrics recorder and serves its text format on a listener of its own (HTTP/1, `GET
//! /metrics`), apart from the gRPC port, so that scraping needs no gRPC and the port can be
//! firewalled on its own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::connections::{ConnectionLimits, GuardedListener};
use crate::metrics::{RPC_BUCKETS, RPC_HANDLING_SECONDS, describe};

/// How often histograms are compacted (the exporter's own listener does the same).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Scrape connections served at once; more are closed at accept. Prometheus needs one.
const MAX_CONNECTIONS: usize = 64;
/// Scrape connections served at once from one address: one client cannot take every slot.
const MAX_CONNECTIONS_PER_ADDRESS: usize = 4;
/// The longest a scrape connection lives, whatever its client does (or does not) send.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head read: a scrape is one short GET.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("could not listen for metrics on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not install the metrics recorder: {0}")]
    Recorder(String),
}

/// The installed recorder and its bound listener, ready to serve.
pub struct MetricsEndpoint {
    /// The address actually bound (a port 0 request gets a free port).
    pub local_addr: SocketAddr,
    listener: TcpListener,
    handle: PrometheusHandle,
}

/// Installs the Prometheus recorder for the whole process and binds `addr`. Call once,
/// before the server is built.
pub async fn install(addr: SocketAddr) -> Result<MetricsEndpoint, MetricsError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(RPC_HANDLING_SECONDS.to_owned()), RPC_BUCKETS)
        .map_err(|error| MetricsError::Recorder(error.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    metrics::set_global_recorder(recorder)
        .map_err(|error| MetricsError::Recorder(error.to_string()))?;
    describe();
    // Histogram samples queue until compacted: compact from the moment recording starts.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(MetricsEndpoint {
        local_addr,
        listener,
        handle,
    })
}

impl MetricsEndpoint {
    /// Serves scrapes until the process ends. The endpoint shares the process with the
    /// token service, so a client of it cannot hold more than a few connections, for long,
    /// or with large requests: a connection must send its request within
    /// `first_request_timeout` and is closed after one answer.
    pub async fn serve(self, first_request_timeout: Duration) {
        let limits = ConnectionLimits {
            max_connections: MAX_CONNECTIONS,
            max_per_address: MAX_CONNECTIONS_PER_ADDRESS,
            first_request_timeout,
        };
        let listener = GuardedListener::new(self.listener, "metrics", limits);
        loop {
            let stream = listener.accept().await;
            let handle = self.handle.clone();
            tokio::spawn(async move {
                let info = tonic::transport::server::Connected::connect_info(&stream);
                let service = hyper::service::service_fn(move |request| {
                    crate::connections::mark_request(&info);
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(answer(&request, &handle)) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(first_request_timeout)
                    .max_buf_size(MAX_REQUEST_BYTES)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "metrics connection ended with an error");
                    }
                    Err(_) => tracing::debug!("metrics connection timed out"),
                    Ok(Ok(())) => {}
                }
            });
        }
    }
}

fn answer<B>(request: &Request<B>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if request.method() == hyper::Method::GET && request.uri().path() == "/metrics" {
            (StatusCode::OK, "text/plain; version=0.0.4", handle.render())
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain",
                "metrics are served at GET /metrics\n".to_owned(),
            )
        };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
