//! Load tool: warm `VerifyToken` over gRPC against an empty unary RPC (the health `Check`)
//! on the same server stack, at a moderate and a saturating concurrency. Prints throughput,
//! latency percentiles and the VerifyToken/empty throughput ratio.
//!
//! The set-up is a backend's: a verifier credential holding only `tokens.verify` (a service
//! account of the operator account) checks a tenant's token that has one scope.
//!
//! Two load generators drive the same server: tonic clients in this process, and, when
//! `h2load` (Debian's nghttp2-client) is on the PATH, h2load from outside the process.
//!
//! Run with `cargo bench --bench verify_load`. Tunables (environment):
//! `LOAD_SECONDS` (per measurement, default 5), `LOAD_CONNECTIONS` (HTTP/2 connections,
//! default 4), `LOAD_MODERATE` (in-flight calls at moderate load, default 4),
//! `LOAD_SATURATING` (in-flight calls at saturation, default 64), `LOAD_METRICS` (1, the
//! default: the Prometheus recorder is installed as the server binary does; 0: metrics are
//! not recorded, to measure what recording costs).
//!
//! The server runs in this process on its own runtime, the clients on another; both share
//! the machine, so the figures are what one box does with the load generator on it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use token_authority::configuration::Settings;
use token_authority::proto::admin_service_client::AdminServiceClient;
use token_authority::proto::token_service_client::TokenServiceClient;
use token_authority::proto::{
    CreateAccountRequest, CreatePrincipalRequest, CreateTokenRequest, PrincipalKind,
    VerifyTokenRequest,
};
use token_authority::startup::Application;

/// Sends `request` with `token` as its Bearer credential.
fn authorized<T>(request: T, token: &str) -> Request<T> {
    let mut request = Request::new(request);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("metadata");
    request.metadata_mut().insert("authorization", value);
    request
}

/// Creates the verifier credential and the tenant token it verifies; returns both secrets.
async fn set_up_tokens(channel: Channel, operator: &str) -> (String, String) {
    let mut admin = AdminServiceClient::new(channel.clone());
    let mut tokens = TokenServiceClient::new(channel);
    let principal = |account_id: &str, name: &str, permission: &str| CreatePrincipalRequest {
        account_id: account_id.to_owned(),
        kind: PrincipalKind::ServiceAccount as i32,
        display_name: name.to_owned(),
        permissions: vec![permission.to_owned()],
    };
    let token = |owner_id: String, scopes: Vec<String>| CreateTokenRequest {
        owner_id,
        name: "load".into(),
        scopes,
        ..Default::default()
    };
    let verifier = admin
        .create_principal(authorized(
            principal("", "orders-api", "tokens.verify"),
            operator,
        ))
        .await
        .expect("verifier principal")
        .into_inner()
        .principal
        .expect("principal");
    let verifier_secret = tokens
        .create_token(authorized(token(verifier.id, vec![]), operator))
        .await
        .expect("verifier token")
        .into_inner()
        .secret;
    let account = admin
        .create_account(authorized(
            CreateAccountRequest {
                display_name: "Acme".into(),
            },
            operator,
        ))
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    let customer = admin
        .create_principal(authorized(
            principal(&account.id, "acme-integration", "tokens.read"),
            operator,
        ))
        .await
        .expect("customer principal")
        .into_inner()
        .principal
        .expect("principal");
    let customer_secret = tokens
        .create_token(authorized(
            token(customer.id, vec!["tokens.read".into()]),
            operator,
        ))
        .await
        .expect("customer token")
        .into_inner()
        .secret;
    (verifier_secret, customer_secret)
}

/// A gRPC message frame (uncompressed) around an encoded protobuf message.
fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(
        &u32::try_from(body.len())
            .expect("small message")
            .to_be_bytes(),
    );
    frame.extend_from_slice(&body);
    frame
}

/// Runs h2load against `path` and returns its calls per second, if h2load is installed.
fn h2load(addr: std::net::SocketAddr, path: &str, body: &[u8], headers: &[String]) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let body_file = dir.path().join("body.bin");
    std::fs::write(&body_file, body).ok()?;
    let mut command = std::process::Command::new("h2load");
    command.args(["-n", "300000", "-c", "4", "-m", "16", "-t", "1"]);
    command.args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
    for header in headers {
        command.args(["-H", header]);
    }
    command
        .arg("-d")
        .arg(&body_file)
        .arg(format!("http://{addr}{path}"));
    let output = command.output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "finished in 2.45s, 122469.37 req/s, 4.44MB/s"
    let line = stdout.lines().find(|l| l.starts_with("finished in"))?;
    line.split(", ")
        .nth(1)?
        .trim_end_matches(" req/s")
        .parse()
        .ok()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The outcome of one measurement.
struct Figures {
    calls: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Figures {
    fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// Runs `in_flight` loops of `call` for `seconds`, spread over `channels`.
async fn measure<F, Fut>(channels: &[Channel], in_flight: usize, seconds: u64, call: F) -> Figures
where
    F: Fn(Channel) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let started = Instant::now();
    for i in 0..in_flight {
        let channel = channels[i % channels.len()].clone();
        let stop = stop.clone();
        let call = call.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                call(channel.clone()).await;
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for worker in workers {
        latencies_us.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Figures {
        calls: latencies_us.len(),
        elapsed,
        latencies_us,
    }
}

fn main() {
    let seconds = env_or("LOAD_SECONDS", 5);
    let connections = env_or("LOAD_CONNECTIONS", 4) as usize;
    let levels = [
        ("moderate", env_or("LOAD_MODERATE", 4) as usize),
        ("saturating", env_or("LOAD_SATURATING", 64) as usize),
    ];

    // The server, on its own runtime and threads.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings =
        Settings::for_database(format!("sqlite://{}", dir.path().join("load.db").display()));
    settings.listen_addr = "127.0.0.1:0".parse().expect("address");
    settings.console_addr = token_authority::configuration::OptionalAddr::Off;
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .expect("server runtime");
    let metrics = env_or("LOAD_METRICS", 1) == 1;
    let (addr, operator) = server_runtime.block_on(async {
        if metrics {
            let endpoint = token_authority::startup::metrics_endpoint::install(
                "127.0.0.1:0".parse().expect("address"),
            )
            .await
            .expect("metrics endpoint");
            tokio::spawn(endpoint.serve(std::time::Duration::from_secs(10)));
        }
        let mut app = Application::build(settings).await.expect("server starts");
        let operator = app
            .take_bootstrap_token()
            .expect("new database")
            .expose()
            .to_owned();
        let addr = app.local_addr();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        (addr, operator)
    });

    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()
        .expect("client runtime");
    client_runtime.block_on(async move {
        let mut channels = Vec::new();
        for _ in 0..connections {
            let channel = Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connects");
            channels.push(channel);
        }
        let (verifier, customer) = set_up_tokens(channels[0].clone(), &operator).await;
        let bearer: MetadataValue<_> = format!("Bearer {verifier}").parse().expect("metadata");

        let empty = |channel: Channel| async move {
            HealthClient::new(channel)
                .check(HealthCheckRequest { service: String::new() })
                .await
                .expect("health check");
        };
        let verify = {
            let token = customer.clone();
            move |channel: Channel| {
                let mut request = Request::new(VerifyTokenRequest {
                    token: token.clone(),
                    required_scopes: vec!["tokens.read".into()],
                    min_revision: 0,
                    client_address: String::new(),
                });
                request.metadata_mut().insert("authorization", bearer.clone());
                async move {
                    let answer = TokenServiceClient::new(channel).verify_token(request).await.expect("verify");
                    assert!(answer.into_inner().valid);
                }
            }
        };

        // Warm up connections, caches and the allocator.
        measure(&channels, 8, 1, empty).await;
        measure(&channels, 8, 1, verify.clone()).await;

        println!(
            "warm VerifyToken vs empty unary RPC (health Check), {connections} HTTP/2 connections, {seconds} s each, metrics {}",
            if metrics { "recorded" } else { "off" }
        );
        println!(
            "{:<11} {:>9} {:<12} {:>12} {:>9} {:>9} {:>9}",
            "load", "in-flight", "rpc", "calls/s", "p50 ms", "p99 ms", "max ms"
        );
        for (name, in_flight) in levels {
            let baseline = measure(&channels, in_flight, seconds, empty).await;
            let verified = measure(&channels, in_flight, seconds, verify.clone()).await;
            for (rpc, figures) in [("empty", &baseline), ("VerifyToken", &verified)] {
                println!(
                    "{:<11} {:>9} {:<12} {:>12.0} {:>9.3} {:>9.3} {:>9.3}",
                    name,
                    in_flight,
                    rpc,
                    figures.per_second(),
                    figures.percentile(0.50),
                    figures.percentile(0.99),
                    figures.percentile(1.0),
                );
            }
            println!(
                "{:<11} {:>9} VerifyToken/empty throughput ratio: {:.1}%",
                name,
                in_flight,
                100.0 * verified.per_second() / baseline.per_second()
            );
        }

        // The same two calls from outside the process.
        let empty_frame = grpc_frame(&HealthCheckRequest { service: String::new() });
        let verify_frame = grpc_frame(&VerifyTokenRequest {
            token: customer.clone(),
            required_scopes: vec!["tokens.read".into()],
            min_revision: 0,
            client_address: String::new(),
        });
        let auth = [format!("authorization: Bearer {verifier}")];
        let external = tokio::task::spawn_blocking(move || {
            let empty = h2load(addr, "/grpc.health.v1.Health/Check", &empty_frame, &[])?;
            let verify = h2load(addr, "/tokenauthority.v1.TokenService/VerifyToken", &verify_frame, &auth)?;
            Some((empty, verify))
        })
        .await
        .expect("h2load task");
        match external {
            Some((empty, verify)) => println!(
                "h2load (4 connections, 64 in flight): empty {empty:.0} calls/s, VerifyToken {verify:.0} calls/s, ratio {:.1}%",
                100.0 * verify / empty
            ),
            None => println!("h2load not found: install Debian's nghttp2-client for the out-of-process figures"),
        }
    });
    drop(server_runtime);
}
