//! The example backend of docs/client-library.md (`examples/backend.rs`) runs for real: started as its own
//! process against a real authority, it serves a token carrying `orders.read`, refuses one
//! without it, and refuses a token soon after its revocation. `cargo test` builds examples;
//! run this test alone after `cargo build --example backend`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::helpers::TestApp;

#[derive(Clone, PartialEq, prost::Message)]
struct ListOrdersRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct ListOrdersResponse {
    #[prost(string, tag = "1")]
    account_id: String,
    #[prost(string, tag = "2")]
    caller: String,
    #[prost(string, repeated, tag = "3")]
    scopes: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    orders: Vec<String>,
}

/// The example process, killed when dropped.
struct Backend(Child);

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example_binary() -> PathBuf {
    // target/<profile>/deps/api-… → target/<profile>/examples/backend
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile.join("examples").join("backend");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds it, or `cargo build --example backend`",
        binary.display()
    );
    binary
}

/// Starts the example against `app` with `verifier_token`; returns it and its address.
fn start_backend(app: &TestApp, verifier_token: &str) -> (Backend, String) {
    let mut child = Command::new(example_binary())
        .env("TOKEN_AUTHORITY_ENDPOINT", app.channel_uri())
        .env("VERIFIER_TOKEN", verifier_token)
        .env("BACKEND_LISTEN_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example starts");
    let stdout = child.stdout.take().expect("stdout");
    let backend = Backend(child);
    // A thread reads the line, so that a silent process fails the test instead of hanging it.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = sender.send(addr.to_owned());
                return;
            }
        }
    });
    let addr = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("the example says where it listens");
    (backend, addr)
}

async fn list_orders(
    channel: &Channel,
    token: Option<&str>,
) -> Result<ListOrdersResponse, tonic::Status> {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.expect("the backend is ready");
    let mut request = tonic::Request::new(ListOrdersRequest {});
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
        request.metadata_mut().insert("authorization", value);
    }
    client
        .unary(
            request,
            http::uri::PathAndQuery::from_static("/orders.v1.OrdersService/ListOrders"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_backend_serves_verified_callers_and_hears_revocations() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &["orders.read"]).await;
    let customer = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "ann",
            &["orders.read"],
        )
        .await;
    let customer_token = app
        .create_token(&tenant.admin_token, &customer.id, &[])
        .await;
    let verifier = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "orders-backend",
            &["tokens.verify"],
        )
        .await;
    let verifier_token = app
        .create_token(&tenant.admin_token, &verifier.id, &[])
        .await;

    let (_backend, addr) = start_backend(&app, &verifier_token.secret);
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects to the example");

    let answer = list_orders(&channel, Some(&customer_token.secret))
        .await
        .expect("a token with orders.read is served");
    assert_eq!(answer.account_id, tenant.account_id);
    assert_eq!(answer.caller, "ann");
    assert_eq!(answer.scopes, vec!["orders.read"]);
    assert_eq!(
        answer.orders,
        vec![format!("{}-order-1", tenant.account_id)]
    );
    let refused = list_orders(&channel, None).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    // The tenant administrator's token does not carry orders.read.
    let refused = list_orders(&channel, Some(&tenant.admin_token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    app.revoke(&tenant.admin_token, &customer_token.token.unwrap().id)
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match list_orders(&channel, Some(&customer_token.secret)).await {
            Err(status) if status.code() == Code::Unauthenticated => break,
            outcome => assert!(
                Instant::now() < deadline,
                "the revoked token is still served: {outcome:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
