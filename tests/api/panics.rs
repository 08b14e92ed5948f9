//! A panic in a handler answers `INTERNAL` with no details, and what is logged of it holds
//! the location and the RPC, never the panic message (which could quote request data).
//! No input reaches a panic in the real services any more (see `bad_input.rs`), so a
//! service that panics on purpose runs in the server's own panic guard here.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Code;
use tonic::server::NamedService;
use tonic::transport::Server;

use token_authority::domain::TokenSecret;
use token_authority::grpc::panics;

use crate::helpers::captured_logs;

/// A gRPC service whose every call panics with a secret in the message.
#[derive(Clone)]
struct Panicking {
    secret: String,
}

impl NamedService for Panicking {
    const NAME: &'static str = "test.Panics";
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Panicking {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
        let secret = self.secret.clone();
        Box::pin(async move { panic!("the handler saw {secret}") })
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_and_logs_no_payload() {
    let _ = captured_logs();
    panics::install_panic_hook();
    let secret = TokenSecret::generate().expose().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The same request span and panic layer as `grpc/server.rs`.
    let server = Server::builder()
        .trace_fn(
            |request| tracing::error_span!(panics::REQUEST_SPAN, method = %request.uri().path()),
        )
        .layer(panics::catch_panic_layer())
        .add_service(Panicking {
            secret: secret.clone(),
        })
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let server = tokio::spawn(server);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let status = client
        .unary::<(), (), _>(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/test.Panics/Boom"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("a panic is an error");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(status.message(), "internal error");
    // The server keeps serving after it.
    client.ready().await.unwrap();
    let again = client
        .unary::<(), (), _>(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/test.Panics/Boom"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(again.unwrap_err().code(), Code::Internal);
    server.abort();

    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|line| {
            line.contains("a request handler panicked") && line.contains("/test.Panics/Boom")
        })
        .expect("the panic is logged with its RPC");
    assert!(
        line.contains("tests/api/panics.rs"),
        "with its location: {line}"
    );
    assert!(
        !logs.contains(&secret),
        "the panic message never reaches the log"
    );
    assert!(!logs.contains(&secret[4..20]));
}
