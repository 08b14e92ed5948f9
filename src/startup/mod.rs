//! Start-up: open the store, bootstrap an empty database, build the authority, and serve
//! until told to stop, then drain. What runs beside the gRPC server lives next door: the
//! periodic tasks (`background.rs`) and the Prometheus endpoint (`metrics_endpoint.rs`,
//! started by the binary before the server is built). A new listener is one more future in
//! [`Application::run_until_stopped`].

mod background;
pub mod metrics_endpoint;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::authority::{Authority, AuthorityError, bootstrap};
use crate::configuration::{OptionalAddr, Settings};
use crate::connections::GuardedListener;
use crate::console::ConsoleOptions;
use crate::console::origin::AllowedHosts;
use crate::domain::TokenSecret;
use crate::gateway::{Routes, RulesError};
use crate::grpc::server::{ServerError, ServerOptions};
use crate::grpc::{health, panics};
use crate::store::{Store, StoreError};

/// Why the server could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not open the database")]
    Store(#[from] StoreError),
    #[error("--gateway-rules")]
    GatewayRules(#[from] RulesError),
    #[error("could not initialise the authority")]
    Authority(#[from] AuthorityError),
    #[error("could not listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not set up the gRPC server")]
    Server(#[from] ServerError),
    #[error("the gRPC server failed")]
    Serve(#[from] tonic::transport::Error),
    #[error("cannot read the TLS certificate or key {path}")]
    TlsFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Opens the store `settings` name; migrates it when `migrate` is set; refuses a schema
/// that is not the one this binary expects.
pub async fn open_store(
    settings: &Settings,
    migrate: bool,
) -> Result<Arc<dyn Store>, StartupError> {
    Ok(crate::store::open(&settings.database_url, &settings.store_options(migrate)).await?)
}

/// A server that is listening, but not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    authority: Arc<Authority>,
    settings: Settings,
    bootstrap_token: Option<TokenSecret>,
    /// The rules of Envoy's `Check` on the gRPC port, when it is served.
    gateway_rules: Option<Arc<Routes>>,
    /// The console's listener and its address, unless `--console-addr off`.
    console: Option<(TcpListener, SocketAddr)>,
}

impl Application {
    /// Opens the store, bootstraps it if empty, and binds the listen address (port 0 picks a
    /// free port).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        panics::install_panic_hook();
        // Read first: a bad rules file stops the start before anything else happens.
        let gateway_rules = settings
            .gateway_rules
            .as_deref()
            .map(Routes::load)
            .transpose()?
            .map(Arc::new);
        let store = open_store(&settings, settings.migrate_on_start).await?;
        let bootstrap_token = bootstrap(store.as_ref()).await?;
        let authority = Arc::new(Authority::new(store, settings.authority()).await?);
        let bind_error = |source| StartupError::Bind {
            addr: settings.listen_addr,
            source,
        };
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let console = match settings.console_addr {
            OptionalAddr::Off => None,
            OptionalAddr::At(addr) => {
                let bind_error = |source| StartupError::Bind { addr, source };
                let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
                let local_addr = listener.local_addr().map_err(bind_error)?;
                Some((listener, local_addr))
            }
        };
        Ok(Self {
            listener,
            local_addr,
            authority,
            settings,
            bootstrap_token,
            gateway_rules,
            console,
        })
    }

    /// Where the console listens, unless it is off.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console.as_ref().map(|(_, addr)| *addr)
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The authority the server serves: for tests that drive its background work (a
    /// last-use flush, a sweep) instead of waiting for it.
    pub fn authority(&self) -> Arc<Authority> {
        self.authority.clone()
    }

    /// The owner token created on first start; None on later starts. Taking it leaves None.
    pub fn take_bootstrap_token(&mut self) -> Option<TokenSecret> {
        self.bootstrap_token.take()
    }

    /// Serves until `shutdown` completes, then drains in-flight calls (for at most
    /// `--shutdown-timeout`) and writes pending last-use times.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (health, health_service) = health::service().await;
        let intervals = background::Intervals {
            event_poll: self.settings.event_poll_interval,
            last_use_flush: self.settings.last_use_flush_interval,
            event_retention: self.settings.event_retention,
        };
        let mut background = background::spawn(&self.authority, &intervals);
        background.spawn(health::follow_database(
            self.authority.clone(),
            health.clone(),
        ));

        let (stop_requested, mut stop_heard) = tokio::sync::watch::channel(false);
        let mut console_stop = stop_requested.subscribe();
        let authority = self.authority.clone();
        let stopping = async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight calls");
            // First: the health probe stops reporting once this is set (see `health::Health`).
            authority.stop_watches();
            health::report_stopping(&health).await;
            let _ = stop_requested.send(true);
        };
        // Draining waits for in-flight calls, but no longer than the shutdown timeout: a
        // client that never closes its connection must not hold up a restart.
        let shutdown_timeout = self.settings.shutdown_timeout;
        let drain_deadline = async move {
            if stop_heard.wait_for(|stopped| *stopped).await.is_ok() {
                tokio::time::sleep(shutdown_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };

        let tls = self.settings.tls_cert.is_some();
        tracing::info!(addr = %self.local_addr, tls, "token authority listening");
        if !tls && !self.local_addr.ip().is_loopback() {
            tracing::warn!(
                addr = %self.local_addr,
                "listening without TLS on a non-loopback address: tokens cross the network in clear unless a TLS-terminating proxy is in front (--tls-cert, --tls-key)"
            );
        }
        let limits = self.settings.grpc_connection_limits();
        tracing::info!(
            max_connections = limits.max_connections,
            max_per_address = limits.max_per_address,
            first_request_timeout = ?limits.first_request_timeout,
            "connection limits"
        );
        let options = ServerOptions {
            max_message_bytes: self.settings.max_message_bytes,
            watch: self.settings.watch(),
            tls: self.tls_identity()?,
            max_connection_age: self.settings.max_connection_age,
            gateway_rules: self.gateway_rules.clone(),
        };
        let console_tls = self.tls_identity()?;
        if let Some((listener, addr)) = self.console {
            let options = ConsoleOptions {
                max_message_bytes: self.settings.max_message_bytes,
                watch: self.settings.watch(),
                tls: console_tls,
                hosts: AllowedHosts::new(self.settings.console_hosts.iter().cloned()),
                max_connection_age: self.settings.max_connection_age,
            };
            if !tls && !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "the console listens without TLS on a non-loopback address: the tokens pasted into it cross the network in clear unless a TLS-terminating proxy is in front (--tls-cert, --tls-key)"
                );
            }
            let limits = crate::console::connection_limits(&limits);
            let incoming = GuardedListener::new(listener, "console", limits).into_incoming();
            let stopped = async move {
                let _ = console_stop.wait_for(|stopped| *stopped).await;
            };
            let console =
                crate::console::serve(self.authority.clone(), options, incoming, stopped)?;
            tracing::info!(%addr, tls, "console listening");
            background.spawn(async move {
                if let Err(error) = console.await {
                    tracing::error!(%error, "the console's listener failed");
                }
            });
        }
        let incoming = GuardedListener::new(self.listener, "grpc", limits).into_incoming();
        let serve = crate::grpc::server::serve(
            self.authority.clone(),
            options,
            health_service,
            incoming,
            stopping,
        )?;
        let served = tokio::select! {
            served = serve => served,
            () = drain_deadline => {
                tracing::warn!(timeout = ?shutdown_timeout, "drain timed out; closing the remaining connections");
                Ok(())
            }
        };

        background.abort_all();
        if let Err(error) = self.authority.flush_last_use().await {
            tracing::warn!(%error, "could not write last-use times at shutdown");
        }
        served?;
        tracing::info!("stopped");
        Ok(())
    }

    /// The TLS identity of `--tls-cert` and `--tls-key`, when both are given.
    fn tls_identity(&self) -> Result<Option<tonic::transport::Identity>, StartupError> {
        let (Some(cert), Some(key)) = (&self.settings.tls_cert, &self.settings.tls_key) else {
            return Ok(None);
        };
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path).map_err(|source| StartupError::TlsFile {
                path: path.display().to_string(),
                source,
            })
        };
        Ok(Some(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        )))
    }
}
