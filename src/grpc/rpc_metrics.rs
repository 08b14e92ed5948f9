//! Counts and times every RPC in grpc-ecosystem's metric names (`grpc_server_started_total`,
//! `grpc_server_handled_total`, `grpc_server_handling_seconds`), the ones existing gRPC
//! dashboards and alerts expect. The outermost of the server's own layers, so it sees the
//! code of panics and over-limit rewrites; tonic's deadline handling sits outside it, and
//! a call it (or the client) abandons before answering is counted as `Canceled`.
//!
//! Labels are bounded whatever a client sends: a path that is not one of the served methods
//! is counted as `unknown`, so requests to made-up paths cannot grow the metric series.
//! The code comes from the response headers (a trailers-only answer) or the trailers at the
//! end of the body; a call dropped before its end (the client went away, or its deadline
//! passed) counts as `Canceled`, so slow calls that time out still show in the counts and
//! the latency histogram.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{LazyLock, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use hyper::body::{Body, Frame, SizeHint};
use metrics::{Counter, Histogram};
use prost::Message;
use tower::{Layer, Service};

use crate::metrics::{RPC_HANDLED, RPC_HANDLING_SECONDS, RPC_STARTED};

/// gRPC's codes by number, named as grpc-go names them (the label values of
/// `grpc_server_handled_total` everywhere).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

/// The metric handles of one method, registered on first use.
struct MethodMetrics {
    service: String,
    method: String,
    kind: &'static str,
    started: OnceLock<Counter>,
    handling: OnceLock<Histogram>,
    handled: [OnceLock<Counter>; 17],
}

impl MethodMetrics {
    fn new(service: String, method: String, kind: &'static str) -> Self {
        Self {
            service,
            method,
            kind,
            started: OnceLock::new(),
            handling: OnceLock::new(),
            handled: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn labels(&self) -> [(&'static str, String); 3] {
        [
            ("grpc_service", self.service.clone()),
            ("grpc_method", self.method.clone()),
            ("grpc_type", self.kind.to_owned()),
        ]
    }

    fn started(&self) -> &Counter {
        self.started
            .get_or_init(|| metrics::counter!(RPC_STARTED, &self.labels()))
    }

    fn finished(&self, code: usize, elapsed: f64) {
        self.handling
            .get_or_init(|| metrics::histogram!(RPC_HANDLING_SECONDS, &self.labels()))
            .record(elapsed);
        let code = if code < CODE_NAMES.len() {
            code
        } else {
            UNKNOWN
        };
        if let Some(slot) = self.handled.get(code) {
            slot.get_or_init(|| {
                let mut labels = self.labels().to_vec();
                labels.push(("grpc_code", CODE_NAMES[code].to_owned()));
                metrics::counter!(RPC_HANDLED, &labels)
            })
            .increment(1);
        }
    }
}

/// Every served method by path (`/package.Service/Method`), read from the descriptor sets
/// of the services the server registers, and the one entry for any other path.
static METHODS: LazyLock<(HashMap<String, MethodMetrics>, MethodMetrics)> = LazyLock::new(|| {
    let mut methods = HashMap::new();
    for set in [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in set.file {
            for service in &file.service {
                let service_name = format!("{}.{}", file.package(), service.name());
                for method in &service.method {
                    let kind = match (method.client_streaming(), method.server_streaming()) {
                        (false, false) => "unary",
                        (false, true) => "server_stream",
                        (true, false) => "client_stream",
                        (true, true) => "bidi_stream",
                    };
                    let path = format!("/{service_name}/{}", method.name());
                    let entry =
                        MethodMetrics::new(service_name.clone(), method.name().to_owned(), kind);
                    methods.insert(path, entry);
                }
            }
        }
    }
    let unknown = MethodMetrics::new("unknown".into(), "unknown".into(), "unknown");
    (methods, unknown)
});

/// The entry of a request path; `unknown` for anything that is not a served method.
fn method_of(path: &str) -> &'static MethodMetrics {
    let (methods, unknown) = &*METHODS;
    methods.get(path).unwrap_or(unknown)
}

/// The layer; see the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// The service of [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

/// Wrapped around one service (the console puts it inside gRPC-Web's translation, where the
/// call's trailers are still trailers), it is routed by that service's name.
impl<S: tonic::server::NamedService> tonic::server::NamedService for RpcMetrics<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = MeteredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let method = method_of(request.uri().path());
        method.started().increment(1);
        MeteredFuture {
            inner: self.inner.call(request),
            rpc: Some(Rpc { method, started }),
        }
    }
}

/// One RPC in flight: recorded exactly once, when its code is known or it is dropped.
struct Rpc {
    method: &'static MethodMetrics,
    started: Instant,
}

impl Rpc {
    fn finish(self, code: usize) {
        let elapsed = self.started.elapsed().as_secs_f64();
        self.method.finished(code, elapsed);
    }
}

/// The gRPC code in a `grpc-status` header or trailer, if there is one.
fn code_in(headers: &http::HeaderMap) -> Option<usize> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
}

pin_project_lite::pin_project! {
    /// The response future of [`RpcMetrics`].
    pub struct MeteredFuture<F> {
        #[pin]
        inner: F,
        rpc: Option<Rpc>,
    }

    impl<F> PinnedDrop for MeteredFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response: the call was abandoned (reset or deadline).
            if let Some(rpc) = this.project().rpc.take() {
                rpc.finish(CANCELED);
            }
        }
    }
}

impl<F, ResBody, E> Future for MeteredFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<MeteredBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut rpc = this.rpc.take();
        Poll::Ready(match result {
            Ok(response) => {
                // A trailers-only answer (every error of ours) carries its code here.
                if let Some(code) = code_in(response.headers())
                    && let Some(rpc) = rpc.take()
                {
                    rpc.finish(code);
                }
                Ok(response.map(|inner| MeteredBody { inner, rpc }))
            }
            Err(error) => {
                if let Some(rpc) = rpc {
                    rpc.finish(UNKNOWN);
                }
                Err(error)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its RPC when the trailers pass, or when it is dropped.
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        rpc: Option<Rpc>,
    }

    impl<B> PinnedDrop for MeteredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(rpc) = this.project().rpc.take() {
                rpc.finish(CANCELED);
            }
        }
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(rpc) = this.rpc.take()
                {
                    rpc.finish(code_in(trailers).unwrap_or(UNKNOWN));
                }
            }
            Some(Err(_)) => {
                if let Some(rpc) = this.rpc.take() {
                    rpc.finish(UNKNOWN);
                }
            }
            None => {
                // The end without trailers: a gRPC response must carry a status.
                if let Some(rpc) = this.rpc.take() {
                    rpc.finish(UNKNOWN);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_methods_are_known_by_path_and_type_and_others_are_unknown() {
        let verify = method_of("/tokenauthority.v1.TokenService/VerifyToken");
        assert_eq!(
            (verify.service.as_str(), verify.method.as_str(), verify.kind),
            ("tokenauthority.v1.TokenService", "VerifyToken", "unary")
        );
        let watch = method_of("/tokenauthority.v1.TokenService/WatchRevocations");
        assert_eq!(watch.kind, "server_stream");
        assert_eq!(method_of("/grpc.health.v1.Health/Check").kind, "unary");
        let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(method_of(reflection).kind, "bidi_stream");
        for path in [
            "",
            "/",
            "/tokenauthority.v1.TokenService/",
            "/x/VerifyToken",
        ] {
            assert_eq!(method_of(path).service, "unknown", "{path:?}");
        }
    }
}
