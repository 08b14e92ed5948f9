//! Load tool: what guarding a service costs at the gateway. nginx in front of an upstream,
//! with and without `auth_request` to the edge, and Envoy with and without ext_authz, each
//! with the shipped configuration (`deploy/gateway/`), driven by `wrk` (HTTP/1.1) in one
//! run. Prints requests/s and the 50th and 99th percentile latency of each pair, and the
//! guarded/unguarded ratios.
//!
//! Every request carries a valid token that the edge's cache holds (the warm path: a hit
//! never leaves the host). The authority, the edge and the upstream run in this process;
//! the gateways and wrk are processes of their own; all of them share the machine, so the
//! figures are what one box does with its load generator on it.
//!
//! Run with `cargo bench --bench gateway_load` after `scripts/test` has fetched the gateways
//! (needs `wrk`: Debian's `wrk` package). Tunables (environment): `LOAD_SECONDS` (per
//! measurement, default 10), `LOAD_CONNECTIONS` (default 16: moderate load).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use gateways::{EdgeAddrs, Gateway, GatewayKind};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use token_authority::configuration::{OptionalAddr, Settings};
use token_authority::gateway::edge::{Edge, EdgeSettings};
use token_authority::startup::Application;

/// Every request needs `tokens.read`, which the owner token the first start prints has.
const RULES: &str = "[[route]]\npath = \"/**\"\nscopes = [\"tokens.read\"]\n";

fn main() {
    let seconds: u64 = env_or("LOAD_SECONDS", 10);
    let connections: u64 = env_or("LOAD_CONNECTIONS", 16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (edge, upstream, token) = runtime.block_on(start(dir.path()));
    println!(
        "gateway overhead: wrk, {connections} connections, {seconds} s each, a warm valid token"
    );
    for kind in [GatewayKind::Nginx, GatewayKind::Envoy] {
        let plain = runtime.block_on(Gateway::start(kind, None, upstream));
        let guarded = runtime.block_on(Gateway::start(kind, Some(edge), upstream));
        let auth = format!("authorization: Bearer {token}");
        // Warm the edge's cache before measuring.
        let _ = wrk(guarded.addr, &auth, 1, 1);
        let without = wrk(plain.addr, &auth, connections, seconds);
        let with = wrk(guarded.addr, &auth, connections, seconds);
        println!(
            "  {kind:?} without the check: {:>8.0}/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
            without.per_second, without.p50_ms, without.p99_ms
        );
        println!(
            "  {kind:?} with the edge:     {:>8.0}/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({:.0} % of the throughput, p99 +{:.3} ms)",
            with.per_second,
            with.p50_ms,
            with.p99_ms,
            100.0 * with.per_second / without.per_second.max(1.0),
            with.p99_ms - without.p99_ms
        );
    }
}

/// The authority, the edge (with the authority's owner token as its own and as the
/// clients'), and an upstream answering 200.
async fn start(dir: &std::path::Path) -> (EdgeAddrs, SocketAddr, String) {
    let mut settings =
        Settings::for_database(format!("sqlite://{}", dir.join("load.db").display()));
    settings.listen_addr = "127.0.0.1:0".parse().expect("address");
    settings.console_addr = token_authority::configuration::OptionalAddr::Off;
    let mut app = Application::build(settings).await.expect("server starts");
    let token = app
        .take_bootstrap_token()
        .expect("new database")
        .expose()
        .to_owned();
    let authority = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    std::fs::write(dir.join("rules.toml"), RULES).expect("rules");
    std::fs::write(dir.join("edge.token"), &token).expect("token file");
    let mut settings = EdgeSettings::for_authority(&authority, &dir.join("rules.toml"));
    settings.token_file = Some(dir.join("edge.token"));
    settings.forward_auth_addr = "127.0.0.1:0".parse().expect("address");
    settings.ext_authz_addr = OptionalAddr::At("127.0.0.1:0".parse().expect("address"));
    settings.trusted_proxies = vec!["127.0.0.1".to_owned()];
    // Every token presented here is valid: no allowance to spend.
    settings.invalid_tokens_per_second = 0;
    settings.metrics_addr = OptionalAddr::Off;
    settings.log_level = "warn".to_owned();
    let edge = Edge::build(&settings).await.expect("edge starts");
    let addrs = EdgeAddrs {
        forward_auth: edge.forward_auth_addr,
        ext_authz: edge.ext_authz_addr.expect("ext_authz"),
    };
    tokio::spawn(edge.run_until_stopped(std::future::pending()));
    // Give the edge's watch stream a moment to go live.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"ok\n",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addrs, upstream, token)
}

/// What one wrk run measured.
struct Measured {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs wrk against `addr` with `header` on every request, and reads its figures.
fn wrk(addr: SocketAddr, header: &str, connections: u64, seconds: u64) -> Measured {
    let output = Command::new("wrk")
        .args(["--latency", "-t", "1", "-c"])
        .arg(connections.to_string())
        .arg("-d")
        .arg(format!("{seconds}s"))
        .args(["-H", header])
        .arg(format!("http://{addr}/v1/orders"))
        .output()
        .expect("wrk runs (Debian's wrk package)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "responses were refused, not measured:\n{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{prefix} in wrk's output:\n{text}"))
            .to_owned()
    };
    Measured {
        per_second: field("Requests/sec:").parse().expect("a rate"),
        p50_ms: millis(&field("50%")),
        p99_ms: millis(&field("99%")),
    }
}

/// A wrk latency (`812.00us`, `1.23ms`, `2.01s`) in milliseconds.
fn millis(value: &str) -> f64 {
    let (number, unit) = value
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|at| value.split_at(at))
        .unwrap_or((value, "ms"));
    let number: f64 = number.parse().expect("a latency");
    match unit {
        "us" => number / 1000.0,
        "s" => number * 1000.0,
        _ => number,
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
