//! `token-authority edge`: the sidecar that runs beside a gateway and answers its
//! questions (HTTP forward-auth, Envoy's ext_authz) from a [`CachingVerifier`], so that warm answers never leave the
//! host and a revocation reaches it by push (WatchRevocations). Past the staleness bound it
//! asks the authority, and refuses with 503 when it cannot.
//!
//! Its own credential (a token holding `tokens.verify`) comes from a file or from the
//! `TOKEN_AUTHORITY_EDGE_TOKEN` environment variable, never from an argument, which every
//! user of the host could read in the process list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::ext_authz::ExtAuthz;
use super::forward_auth::ForwardAuth;
use super::routes::{Routes, RulesError};
use crate::authority::failed_authentications::FailedAuthentications;
use crate::client::{CachingVerifier, TrustedProxies, VerifierConfig, VerifyError};
use crate::configuration::{LogFormat, OptionalAddr};
use crate::connections::{ConnectionLimits, FirstRequestLayer, GuardedListener};
use envoy_types::ext_authz::v3::pb::AuthorizationServer;

/// The environment variable that may hold the edge's token, when no file is named.
pub const TOKEN_VARIABLE: &str = "TOKEN_AUTHORITY_EDGE_TOKEN";

/// The edge's command line. It is its own: none of the server's settings apply to the
/// edge, so `token-authority edge --help` lists only the edge's.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "token-authority edge",
    bin_name = "token-authority edge",
    version,
    about = "The gateway sidecar: HTTP forward-auth for nginx, Caddy and Traefik, and \
             Envoy's ext_authz, answered from a cache the token authority keeps fresh \
             (docs/gateways.md)."
)]
pub struct EdgeCli {
    #[command(flatten)]
    pub settings: EdgeSettings,
}

/// The edge's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeSettings {
    /// The token authority's gRPC endpoint (`https://…`; `http://` only on loopback unless
    /// --allow-plaintext).
    #[arg(long, env = "TOKEN_AUTHORITY_EDGE_AUTHORITY", value_name = "URL")]
    pub authority: String,
    /// A file holding the edge's own token, which needs `tokens.verify`; without it,
    /// TOKEN_AUTHORITY_EDGE_TOKEN holds the token.
    #[arg(long, env = "TOKEN_AUTHORITY_EDGE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The rules file: which scopes each method and path needs (docs/gateways.md).
    #[arg(long, env = "TOKEN_AUTHORITY_EDGE_RULES", value_name = "FILE")]
    pub rules: PathBuf,
    /// Where the gateway asks: HTTP forward-auth at /forward-auth, with /healthz and
    /// /ready.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_EDGE_FORWARD_AUTH_ADDR",
        default_value = "127.0.0.1:9191"
    )]
    pub forward_auth_addr: SocketAddr,
    /// Where Envoy asks: `envoy.service.auth.v3.Authorization/Check` over gRPC (HTTP/2,
    /// plaintext: keep it on loopback or a private network), or `off`.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_EDGE_EXT_AUTHZ_ADDR",
        default_value = "127.0.0.1:9192"
    )]
    pub ext_authz_addr: OptionalAddr,
    /// Addresses or networks (CIDR) of load balancers in front of Envoy, comma-separated:
    /// when Envoy reports one as the client, the client is read from X-Forwarded-For.
    #[arg(
        long = "ext-authz-trusted-proxy",
        env = "TOKEN_AUTHORITY_EDGE_EXT_AUTHZ_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub ext_authz_trusted_proxies: Vec<String>,
    /// Pass the verified credential on to the service (ext_authz; forward-auth gateways
    /// remove it in their configuration). By default it is removed.
    #[arg(long, env = "TOKEN_AUTHORITY_EDGE_KEEP_CREDENTIAL")]
    pub keep_credential: bool,
    /// Addresses or networks (CIDR) of the forward-auth gateways whose X-Forwarded-For is
    /// believed, comma-separated; without them the gateway's own address is the client's.
    #[arg(
        long = "trusted-proxy",
        env = "TOKEN_AUTHORITY_EDGE_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<String>,
    /// A PEM file of the CA that signed the authority's certificate, when not a public one.
    #[arg(long, env = "TOKEN_AUTHORITY_EDGE_CA_CERTIFICATE", value_name = "FILE")]
    pub ca_certificate: Option<PathBuf>,
    /// Accept an `http://` authority off loopback (tokens then cross the network in clear).
    #[arg(long, env = "TOKEN_AUTHORITY_EDGE_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
    /// Invalid tokens (not answered from their shape alone) a client address may present
    /// per second, with a burst of five seconds' worth; past it the address is refused with
    /// 429 for a second without a look-up. 0: no limit (raise it behind a gateway that
    /// hides client addresses).
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_EDGE_INVALID_TOKENS_PER_SECOND",
        default_value = "20"
    )]
    pub invalid_tokens_per_second: u32,
    /// How long cached answers are trusted after the watch stream last confirmed them.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_EDGE_STALENESS_BOUND",
        default_value = "15s",
        value_parser = humantime::parse_duration
    )]
    pub staleness_bound: Duration,
    /// The Prometheus endpoint (`GET /metrics`, plain HTTP), or `off`; beside a server on
    /// one host, it needs a port of its own.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_EDGE_METRICS_ADDR",
        default_value = "127.0.0.1:9465"
    )]
    pub metrics_addr: OptionalAddr,
    /// Log format.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_EDGE_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// Log filter, in `tracing` EnvFilter syntax (`info`, `token_authority=debug,info`, …).
    #[arg(long, env = "TOKEN_AUTHORITY_EDGE_LOG", default_value = "info")]
    pub log_level: String,
}

impl EdgeSettings {
    /// The defaults with `authority` and `rules`, whatever the environment holds: for tests
    /// and benchmarks that start an edge in process.
    pub fn for_authority(authority: &str, rules: &std::path::Path) -> Self {
        let command = <EdgeCli as clap::CommandFactory>::command().mut_args(|arg| arg.env(None));
        let matches = command.get_matches_from([
            std::ffi::OsStr::new("token-authority edge"),
            std::ffi::OsStr::new("--authority"),
            std::ffi::OsStr::new(authority),
            std::ffi::OsStr::new("--rules"),
            rules.as_os_str(),
        ]);
        <EdgeCli as clap::FromArgMatches>::from_arg_matches(&matches)
            .map(|cli| cli.settings)
            .unwrap_or_else(|error| error.exit())
    }
}

/// How long a gateway's new connection may take to send its first request.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(
        "no credential: name a file holding the edge's token with --token-file (or \
         TOKEN_AUTHORITY_EDGE_TOKEN_FILE), or set {TOKEN_VARIABLE}"
    )]
    NoCredential,
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--trusted-proxy: {0}")]
    TrustedProxies(String),
    #[error(transparent)]
    Verifier(#[from] VerifyError),
    #[error("could not listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A started edge: its listeners bound, its verifier connecting.
pub struct Edge {
    /// Where forward-auth is served (a port 0 request gets a free port).
    pub forward_auth_addr: SocketAddr,
    /// Where ext_authz is served, if it is.
    pub ext_authz_addr: Option<SocketAddr>,
    forward_auth: ForwardAuth,
    listener: TcpListener,
    ext_authz: Option<(ExtAuthz<CachingVerifier>, TcpListener)>,
}

impl Edge {
    /// Reads the rules and the credential, starts the verifier and binds the listener.
    pub async fn build(settings: &EdgeSettings) -> Result<Self, EdgeError> {
        let routes = Routes::load(&settings.rules)?;
        let credential = credential(settings)?;
        let mut config = VerifierConfig::new(settings.authority.clone(), credential);
        config.allow_plaintext = settings.allow_plaintext;
        config.staleness_bound = settings.staleness_bound;
        if let Some(path) = &settings.ca_certificate {
            config.ca_certificate = Some(read(path)?);
        }
        let verifier = CachingVerifier::new(config)?;
        let trusted_proxies = TrustedProxies::parse(&settings.trusted_proxies)
            .map_err(|e| EdgeError::TrustedProxies(e.to_string()))?;
        let (listener, forward_auth_addr) = bind(settings.forward_auth_addr).await?;
        let routes = Arc::new(routes);
        let trusted_proxies = Arc::new(trusted_proxies);
        let failures = Arc::new(FailedAuthentications::new(
            settings.invalid_tokens_per_second,
        ));
        let ext_authz = match settings.ext_authz_addr {
            OptionalAddr::Off => None,
            OptionalAddr::At(addr) => {
                let proxies = TrustedProxies::parse(&settings.ext_authz_trusted_proxies)
                    .map_err(|e| EdgeError::TrustedProxies(e.to_string()))?;
                let service = ExtAuthz {
                    routes: routes.clone(),
                    verifier: verifier.clone(),
                    trusted_proxies: Arc::new(proxies),
                    keep_credential: settings.keep_credential,
                    failures: failures.clone(),
                };
                Some((service, bind(addr).await?))
            }
        };
        Ok(Self {
            forward_auth_addr,
            ext_authz_addr: ext_authz.as_ref().map(|(_, (_, addr))| *addr),
            forward_auth: ForwardAuth {
                routes,
                verifier,
                trusted_proxies,
                failures,
            },
            listener,
            ext_authz: ext_authz.map(|(service, (listener, _))| (service, listener)),
        })
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()>) {
        let limits = ConnectionLimits {
            max_connections: ConnectionLimits::default_max_connections(),
            // The gateway is one address: no cap per address.
            max_per_address: 0,
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
        };
        let ext_authz = async {
            match self.ext_authz {
                Some((service, listener)) => {
                    let incoming =
                        GuardedListener::new(listener, "ext_authz", limits).into_incoming();
                    let (reporter, health) = tonic_health::server::health_reporter();
                    tokio::spawn(report_readiness(reporter, service.verifier.clone()));
                    let served = tonic::transport::Server::builder()
                        // Marks each connection's first request: without it, the listener's
                        // first-request deadline would close Envoy's connections.
                        .layer(FirstRequestLayer)
                        .add_service(health)
                        .add_service(AuthorizationServer::new(service))
                        .serve_with_incoming(incoming)
                        .await;
                    if let Err(error) = served {
                        tracing::error!(%error, "the ext_authz listener failed");
                    }
                }
                None => std::future::pending().await,
            }
        };
        // The allowances of addresses that stopped failing are forgotten, as the server's.
        let failures = self.forward_auth.failures.clone();
        let forget = async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                failures.forget_idle();
            }
        };
        tokio::select! {
            () = self.forward_auth.serve(self.listener, limits) => {}
            () = forget => {}
            () = ext_authz => {}
            () = shutdown => {}
        }
    }
}

/// Reports the ext_authz listener's gRPC health as the forward-auth listener's `/ready`
/// answers: SERVING only while the verifier's watch stream is live (checked every second),
/// for the whole server (`""`) and for the Authorization service, so that Envoy's health
/// checks can follow it.
async fn report_readiness(
    reporter: tonic_health::server::HealthReporter,
    verifier: CachingVerifier,
) {
    const SERVICE: &str = "envoy.service.auth.v3.Authorization";
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let status = if verifier.is_fresh() {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        for service in ["", SERVICE] {
            reporter.set_service_status(service, status).await;
        }
    }
}

/// A listener on `addr`, and the address it got (a port 0 request gets a free port).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), EdgeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| EdgeError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| EdgeError::Listen { addr, source })?;
    Ok((listener, local))
}

fn credential(settings: &EdgeSettings) -> Result<String, EdgeError> {
    let token = match &settings.token_file {
        Some(path) => String::from_utf8(read(path)?).map_err(|_| EdgeError::Read {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
        })?,
        None => std::env::var(TOKEN_VARIABLE).map_err(|_| EdgeError::NoCredential)?,
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(EdgeError::NoCredential);
    }
    Ok(token.to_owned())
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, EdgeError> {
    std::fs::read(path).map_err(|source| EdgeError::Read {
        path: path.display().to_string(),
        source,
    })
}
