//! What the gateway tests put around the real gateways (`crates/gateways`): the edge in
//! process, an upstream that answers with the target and headers it received, and raw
//! HTTP/1.1 requests (a client library would normalise the very paths the tests send).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use token_authority::configuration::OptionalAddr;
use token_authority::gateway::edge::{Edge, EdgeSettings};

use super::app::TestApp;

pub use gateways::{EdgeAddrs, Gateway, GatewayKind};

/// An edge in process, verifying with `token` against `app`, by the rules `rules` (TOML).
pub async fn start_edge(app: &TestApp, token: &str, rules: &str, dir: &Path) -> EdgeAddrs {
    start_edge_with(&app.channel_uri(), token, rules, dir, |_| {}).await
}

/// An edge in process against the authority at `authority`, with its settings adjusted.
pub async fn start_edge_with(
    authority: &str,
    token: &str,
    rules: &str,
    dir: &Path,
    adjust: impl FnOnce(&mut EdgeSettings),
) -> EdgeAddrs {
    let rules_path = dir.join("rules.toml");
    std::fs::write(&rules_path, rules).expect("rules file");
    let token_path = dir.join("edge.token");
    std::fs::write(&token_path, token).expect("token file");
    let mut settings = EdgeSettings::for_authority(authority, &rules_path);
    settings.token_file = Some(token_path);
    settings.forward_auth_addr = "127.0.0.1:0".parse().expect("address");
    settings.ext_authz_addr = OptionalAddr::At("127.0.0.1:0".parse().expect("address"));
    settings.trusted_proxies = vec!["127.0.0.1".to_owned()];
    settings.metrics_addr = OptionalAddr::Off;
    adjust(&mut settings);
    let edge = Edge::build(&settings).await.expect("the edge starts");
    let addrs = EdgeAddrs {
        forward_auth: edge.forward_auth_addr,
        ext_authz: edge.ext_authz_addr.expect("ext_authz is served"),
    };
    tokio::spawn(edge.run_until_stopped(std::future::pending()));
    // Ready once its watch stream is live.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(addrs.forward_auth, "GET", "/ready", &[]).await.status != 200 {
        assert!(Instant::now() < deadline, "the edge never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    addrs
}

/// An upstream that answers every request with 200, the target it received (`target: …`)
/// and the headers it received, one `name: value` line each, names in lower case.
pub async fn start_echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: hyper::Request<_>| async move {
                    let mut lines: Vec<String> = request
                        .headers()
                        .iter()
                        .map(|(name, value)| {
                            format!("{name}: {}", String::from_utf8_lossy(value.as_bytes()))
                        })
                        .collect();
                    lines.sort();
                    // The target the service received, as a line of its own.
                    lines.insert(0, format!("target: {}", request.uri()));
                    let body = format!("{}\n", lines.join("\n"));
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A response read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    /// Every value of header `name`.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The upstream's echo: every value it received for header `name`, leaving out empty
    /// ones (Caddy passes a header the edge left empty as an empty header, nginx drops it:
    /// both mean "none").
    pub fn echoed(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}:");
        self.body
            .lines()
            .filter_map(|line| line.strip_prefix(prefix.as_str()))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect()
    }
}

/// Sends one HTTP/1.1 request with `target` exactly as given and reads the whole answer.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}
