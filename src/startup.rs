//! Start-up: open and migrate the store, bootstrap an empty database, build the authority
//! and serve the gRPC services (with health and reflection) until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::authority::{Authority, AuthorityError, bootstrap};
use crate::configuration::Settings;
use crate::connections::{FirstRequestLayer, GuardedListener};
use crate::domain::TokenSecret;
use crate::grpc::{AdminApi, TokenApi, limits, panics, rpc_metrics};
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::token_service_server::TokenServiceServer;
use crate::store::postgres::{PoolSettings, PostgresStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Why the server could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("unsupported database URL scheme (expected sqlite:// or postgres://): {0}")]
    UnsupportedDatabase(String),
    #[error("could not open the database")]
    Store(#[from] StoreError),
    #[error("could not initialise the authority")]
    Authority(#[from] AuthorityError),
    #[error("could not listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not build server reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed")]
    Serve(#[from] tonic::transport::Error),
    #[error("cannot read the TLS certificate or key {path}")]
    TlsFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`backup` copies SQLite databases; back up PostgreSQL with pg_dump or a base backup (docs/operations.md)"
    )]
    BackupUnsupported,
    #[error("cannot create the backup file {path} (it must not exist yet)")]
    BackupFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes a consistent copy of the SQLite database that `settings` names to the new file
/// `to` (mode 0600: it holds secret hashes and the page-token key), while servers keep
/// using the database. Restoring is starting a server on the copy.
///
/// The copy is written in a private directory made beside `to`, then hard-linked into place:
/// nobody can swap what SQLite opens for a link of their own, the file never exists under
/// its final name half-written or readable by others, a `file:` name is never read as an
/// SQLite URI, and an existing file is never replaced (linking fails instead).
pub async fn backup(settings: &Settings, to: &Path) -> Result<(), StartupError> {
    let url = settings.database_url.as_str();
    if !url.starts_with("sqlite:") {
        return Err(StartupError::BackupUnsupported);
    }
    let file_error = |source| StartupError::BackupFile {
        path: to.display().to_string(),
        source,
    };
    if to.symlink_metadata().is_ok() {
        return Err(file_error(std::io::ErrorKind::AlreadyExists.into()));
    }
    let staging = staging_directory(to).map_err(file_error)?;
    let staged = staging.join("backup.db");
    let copied = match staged.to_str() {
        Some(staged) => SqliteStore::backup(url, staged)
            .await
            .map_err(StartupError::Store),
        None => Err(file_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is not UTF-8",
        ))),
    };
    let placed = copied.and_then(|()| {
        crate::private_file::restrict(&staged)
            .and_then(|()| std::fs::hard_link(&staged, to))
            .map_err(file_error)
    });
    let _ = std::fs::remove_dir_all(&staging);
    placed
}

/// A new directory only this user can enter, beside `path`, for writing `path` in private.
fn staging_directory(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let absolute = std::path::absolute(path)?;
    let parent = absolute.parent().unwrap_or(Path::new("/"));
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let staging = parent.join(format!(
        ".token-authority-backup-{:016x}",
        u64::from_le_bytes(random)
    ));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&staging)?;
    Ok(staging)
}

/// Opens the store the URL names; migrates it when `migrate` is set; refuses a schema that
/// is not the one this binary expects.
pub async fn open_store(
    settings: &Settings,
    migrate: bool,
) -> Result<Arc<dyn Store>, StartupError> {
    let url = settings.database_url.as_str();
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url, settings.database_read_connections).await?;
        if migrate {
            store.migrate().await?;
        }
        store.check_schema().await?;
        crate::metrics::record_build_info("sqlite");
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = PoolSettings {
            max_connections: settings.database_max_connections,
            acquire_timeout: settings.database_acquire_timeout,
            listen: settings.database_listen,
        };
        let store = PostgresStore::connect(url, pool).await?;
        if migrate {
            store.migrate().await?;
        }
        store.check_schema().await?;
        crate::metrics::record_build_info("postgres");
        return Ok(Arc::new(store));
    }
    // Only the scheme: the rest of a URL may hold a password.
    let scheme = url.split(':').next().unwrap_or_default().to_owned();
    Err(StartupError::UnsupportedDatabase(scheme))
}

/// A server that is listening, but not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    authority: Arc<Authority>,
    settings: Settings,
    bootstrap_token: Option<TokenSecret>,
}

impl Application {
    /// Opens the store, bootstraps it if empty, and binds the listen address (port 0 picks a
    /// free port).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        panics::install_panic_hook();
        let store = open_store(&settings, settings.migrate_on_start).await?;
        let bootstrap_token = bootstrap(store.as_ref()).await?;
        let authority = Arc::new(Authority::new(store, settings.authority()).await?);
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.listen_addr,
            source,
        })?;
        Ok(Self {
            listener,
            local_addr,
            authority,
            settings,
            bootstrap_token,
        })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The owner token created on first start; None on later starts. Taking it leaves None.
    pub fn take_bootstrap_token(&mut self) -> Option<TokenSecret> {
        self.bootstrap_token.take()
    }

    /// Serves until `shutdown` completes, then drains in-flight calls and writes pending
    /// last-use times.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<TokenServiceServer<TokenApi>>().await;
        health.set_serving::<AdminServiceServer<AdminApi>>().await;

        // Both reflection versions: grpcurl 1.8 asks only for v1alpha.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let max_message = self.settings.max_message_bytes;
        let token_service =
            TokenServiceServer::new(TokenApi::new(self.authority.clone(), self.settings.watch()))
                .max_decoding_message_size(max_message);
        let admin_service = AdminServiceServer::new(AdminApi::new(self.authority.clone()))
            .max_decoding_message_size(max_message);

        let mut background = spawn_background_tasks(&self.authority, &self.settings);
        background.spawn(report_database_health(
            self.authority.clone(),
            health.clone(),
        ));

        // Draining waits for in-flight calls, but no longer than the shutdown timeout: a
        // client that never closes its connection must not hold up a restart.
        let (stop_requested, mut stop_heard) = tokio::sync::watch::channel(false);
        let authority = self.authority.clone();
        let stopping = async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight calls");
            // First, so that the health probe, which stops reporting once this is set, cannot
            // report SERVING again after the lines below.
            authority.stop_watches();
            health
                .set_not_serving::<TokenServiceServer<TokenApi>>()
                .await;
            health
                .set_not_serving::<AdminServiceServer<AdminApi>>()
                .await;
            // The whole server too: it is what probes ask by default.
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            for service in SERVICES.into_iter().chain([""]) {
                crate::metrics::record_health(service, false);
            }
            let _ = stop_requested.send(true);
        };
        let shutdown_timeout = self.settings.shutdown_timeout;
        let drain_deadline = async move {
            if stop_heard.wait_for(|stopped| *stopped).await.is_ok() {
                tokio::time::sleep(shutdown_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };

        tracing::info!(addr = %self.local_addr, tls = self.settings.tls_cert.is_some(), "token authority listening");
        if self.settings.tls_cert.is_none() && !self.local_addr.ip().is_loopback() {
            tracing::warn!(
                addr = %self.local_addr,
                "listening without TLS on a non-loopback address: tokens cross the network in clear unless a TLS-terminating proxy is in front (--tls-cert, --tls-key)"
            );
        }
        let mut builder = Server::builder();
        if let (Some(cert), Some(key)) = (&self.settings.tls_cert, &self.settings.tls_key) {
            let read = |path: &std::path::PathBuf| {
                std::fs::read(path).map_err(|source| StartupError::TlsFile {
                    path: path.display().to_string(),
                    source,
                })
            };
            let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
            builder =
                builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
        }
        let limits = self.settings.grpc_connection_limits();
        tracing::info!(
            max_connections = limits.max_connections,
            max_per_address = limits.max_per_address,
            first_request_timeout = ?limits.first_request_timeout,
            "connection limits"
        );
        let incoming = GuardedListener::new(self.listener, "grpc", limits).into_incoming();
        let serve = builder
            // Notices dead peers so that their streams and memory are released.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            // Idle clients cannot hold a connection for ever; calls in flight get an hour.
            .max_connection_age(self.settings.max_connection_age)
            .max_connection_age_grace(CONNECTION_AGE_GRACE)
            .trace_fn(
                |request| tracing::error_span!(panics::REQUEST_SPAN, method = %request.uri().path()),
            )
            .layer(FirstRequestLayer)
            .layer(rpc_metrics::RpcMetricsLayer)
            .layer(panics::catch_panic_layer())
            .layer(limits::resource_exhausted_layer())
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(token_service)
            .add_service(admin_service)
            .serve_with_incoming_shutdown(incoming, stopping);
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
}

/// How long calls in flight (watch streams) may go on after a connection's maximum age.
const CONNECTION_AGE_GRACE: Duration = Duration::from_secs(3600);
/// How often the gauges that describe state (revision, lag, cache size) are sampled.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// How often secrets whose grace period has ended are looked for.
const GRACE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often the failure allowances of peers and credentials that stopped failing are
/// forgotten.
const FAILURE_MEMORY_INTERVAL: Duration = Duration::from_secs(10);
/// How often old invalidation events are pruned at most (short retentions prune sooner).
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The authority's periodic work, stopped at shutdown.
fn spawn_background_tasks(
    authority: &Arc<Authority>,
    settings: &Settings,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(
        authority
            .clone()
            .follow_events(settings.event_poll_interval),
    );
    let flusher = authority.clone();
    tasks.spawn(every(settings.last_use_flush_interval, move || {
        let authority = flusher.clone();
        async move {
            match authority.flush_last_use().await {
                Ok(0) => {}
                Ok(count) => tracing::debug!(count, "last-use times written"),
                Err(error) => tracing::warn!(%error, "could not write last-use times; will retry"),
            }
        }
    }));
    let sampled = authority.clone();
    tasks.spawn(every(GAUGE_INTERVAL, move || {
        sampled.record_gauges();
        std::future::ready(())
    }));
    let sweeper = authority.clone();
    tasks.spawn(every(GRACE_SWEEP_INTERVAL, move || {
        let authority = sweeper.clone();
        async move {
            match authority.announce_expired_secrets().await {
                Ok(0) => {}
                Ok(count) => tracing::debug!(count, "grace periods ended"),
                Err(error) => {
                    tracing::warn!(%error, "could not announce ended grace periods; will retry")
                }
            }
        }
    }));
    let forgetter = authority.clone();
    tasks.spawn(every(FAILURE_MEMORY_INTERVAL, move || {
        forgetter.forget_idle_failures();
        std::future::ready(())
    }));
    let pruner = authority.clone();
    let retention = settings.event_retention;
    let prune_every = (retention / 2).clamp(Duration::from_millis(100), PRUNE_INTERVAL);
    tasks.spawn(every(prune_every, move || {
        let authority = pruner.clone();
        async move {
            match authority.prune_events(retention).await {
                Ok(0) => {}
                Ok(count) => tracing::debug!(count, "old invalidation events pruned"),
                Err(error) => {
                    tracing::warn!(%error, "could not prune invalidation events; will retry")
                }
            }
        }
    }));
    tasks
}

/// The services whose health follows the database's.
const SERVICES: [&str; 2] = [
    "tokenauthority.v1.TokenService",
    "tokenauthority.v1.AdminService",
];

/// How often the health service checks that the database answers.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What the health service reports, until shutdown begins (then everything is NOT_SERVING):
///
/// - `tokenauthority.v1.TokenService` and `AdminService`: NOT_SERVING while the database is
///   unreachable (their writes and cold reads fail);
/// - `""`, the whole server, as load balancers and Kubernetes' gRPC probes ask by default:
///   SERVING as long as verifications are answered, which during a database outage is while
///   warm answers are still trusted (`--max-event-lag`). Every replica shares the database,
///   so taking them all out of rotation at once would turn a degraded service (cached
///   verifications work, writes fail) into no service at all.
async fn report_database_health(
    authority: Arc<Authority>,
    health: tonic_health::server::HealthReporter,
) {
    // (services, server) as last reported.
    let mut reported = (true, true);
    let mut ticks = tokio::time::interval(HEALTH_PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let probe = tokio::time::timeout(HEALTH_PROBE_INTERVAL, authority.store_revision());
        let revision = probe.await.ok().and_then(Result::ok);
        crate::metrics::record_database_probe(revision);
        let reachable = revision.is_some();
        if authority.is_stopping() {
            return;
        }
        let now = (reachable, reachable || authority.cache_trusted());
        for service in SERVICES {
            crate::metrics::record_health(service, now.0);
        }
        crate::metrics::record_health("", now.1);
        if now == reported {
            continue;
        }
        if now.0 != reported.0 {
            if reachable {
                tracing::info!("database reachable again: serving");
            } else {
                tracing::warn!(
                    "database unreachable: the services report NOT_SERVING; warm verifications continue"
                );
            }
            for service in SERVICES {
                health.set_service_status(service, serving(now.0)).await;
            }
        }
        if now.1 != reported.1 {
            if !now.1 {
                tracing::warn!(
                    "cached answers are no longer trusted: the server reports NOT_SERVING"
                );
            }
            health.set_service_status("", serving(now.1)).await;
        }
        reported = now;
    }
}

fn serving(up: bool) -> tonic_health::ServingStatus {
    if up {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    }
}

/// Runs `work` every `period`, forever.
async fn every<F, Fut>(period: Duration, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        work().await;
    }
}
