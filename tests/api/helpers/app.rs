//! The real server in process, on a random port, over a real database: a SQLite file, or a
//! fresh database on the suite's PostgreSQL cluster, per the test's backend. Its clock and
//! its background work are the test's to drive.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use token_authority::authority::Authority;
use token_authority::configuration::Settings;
use token_authority::domain::Clock;
use token_authority::proto::admin_service_client::AdminServiceClient;
use token_authority::proto::token_service_client::TokenServiceClient;
use token_authority::startup::{Application, StartupError};

use super::clients::{Admin, Credential, Tokens};
use super::logs::log_buffer;

/// A running server.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The console's listener, when the settings turned it on.
    pub console_addr: Option<std::net::SocketAddr>,
    /// The operator owner's token, printed on first start.
    pub bootstrap_token: String,
    pub database_url: String,
    /// The directory holding the SQLite file; kept alive (and reusable across restarts).
    pub dir: Arc<TempDir>,
    pub channel: Channel,
    /// The server's clock, which [`TestApp::advance_clock`] moves forward.
    clock: Clock,
    /// The server's authority, whose background work tests drive themselves.
    authority: Arc<Authority>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartupError>>>,
}

/// The databases the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    /// The backend of the test running in this task (set by `backend_tests!`).
    pub static BACKEND: Backend;
}

/// The backend of the current test; SQLite outside `backend_tests!`.
pub fn backend() -> Backend {
    BACKEND
        .try_with(|backend| *backend)
        .unwrap_or(Backend::Sqlite)
}

/// Settings for a test server: random port, quick last-use flushes.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::for_database(database_url);
    settings.listen_addr = "127.0.0.1:0".parse().expect("valid address");
    // Only the console's tests serve it (on a free port of their own).
    settings.console_addr = token_authority::configuration::OptionalAddr::Off;
    settings.last_use_flush_interval = Duration::from_millis(100);
    settings.max_grace_period = Duration::from_secs(24 * 3600);
    settings.watch_checkpoint_interval = Duration::from_millis(200);
    // Every test client connects from loopback, and many tests fail authentications on
    // purpose: the tests of the limit (forgery.rs) set their own.
    settings.auth_failures_per_second = 0;
    // Deadlines (expiries, grace periods) are reached by moving this clock, not by waiting.
    settings.clock = Clock::adjustable();
    settings
}

impl TestApp {
    /// A fresh server on a fresh database.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A fresh server on a fresh database, with adjusted settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database_url = match backend() {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("authority.db").display()),
            Backend::Postgres => pg_cluster::fresh_database().await,
        };
        let mut settings = test_settings(&database_url);
        adjust(&mut settings);
        let app = Self::start(settings, dir).await;
        assert!(
            !app.bootstrap_token.is_empty(),
            "a new database prints a bootstrap token"
        );
        app
    }

    /// Starts a server with `settings` on the database in `dir`.
    pub async fn start(settings: Settings, dir: Arc<TempDir>) -> TestApp {
        log_buffer();
        let database_url = settings.database_url.clone();
        let clock = settings.clock.clone();
        let tls_ca = settings
            .tls_cert
            .as_ref()
            .map(|path| std::fs::read(path).expect("certificate"));
        let mut application = Application::build(settings).await.expect("server starts");
        let addr = application.local_addr();
        let console_addr = application.console_addr();
        let authority = application.authority();
        let bootstrap_token = application
            .take_bootstrap_token()
            .map(|t| t.expose().to_owned())
            .unwrap_or_default();
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until_stopped(async {
            let _ = stop.await;
        }));
        let channel = match &tls_ca {
            // A TLS server: trust its certificate, issued for `localhost`.
            Some(ca) => Channel::from_shared(format!("https://localhost:{}", addr.port()))
                .expect("valid uri")
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
                )
                .expect("TLS configuration"),
            None => Channel::from_shared(format!("http://{addr}")).expect("valid uri"),
        }
        .connect()
        .await
        .expect("connects to the server");
        TestApp {
            addr,
            console_addr,
            bootstrap_token,
            database_url,
            dir,
            channel,
            clock,
            authority,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// The server again, on the same database, after [`TestApp::stop`]. It listens on a new
    /// random port: re-binding the old one would race with other tests taking it. Clients
    /// that must find it at the same address connect through a [`Proxy`].
    pub async fn restart(stopped: Stopped, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(&stopped.database_url);
        adjust(&mut settings);
        let mut app = Self::start(settings, stopped.dir).await;
        assert!(
            app.bootstrap_token.is_empty(),
            "a second start prints nothing secret"
        );
        app.bootstrap_token = stopped.bootstrap_token;
        app
    }

    /// Another server on the same database (PostgreSQL: a second replica).
    pub async fn replica(&self) -> TestApp {
        self.replica_with(|_| {}).await
    }

    /// Another server on the same database, with adjusted settings.
    pub async fn replica_with(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(&self.database_url);
        adjust(&mut settings);
        let mut app = Self::start(settings, self.dir.clone()).await;
        assert!(
            app.bootstrap_token.is_empty(),
            "only the first replica bootstraps"
        );
        app.bootstrap_token = self.bootstrap_token.clone();
        app
    }

    /// Stops the server gracefully (pending last-use times are written).
    pub async fn stop(mut self) -> Stopped {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
        Stopped {
            dir: self.dir.clone(),
            database_url: self.database_url.clone(),
            bootstrap_token: self.bootstrap_token.clone(),
        }
    }

    /// Moves the server's clock forward by `by`: what a test of a deadline does instead of
    /// sleeping until it passes.
    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Writes the last-use times recorded so far, as the periodic flush would: what a test of
    /// last use does instead of waiting for the next flush.
    pub async fn flush_last_use(&self) {
        self.authority
            .flush_last_use()
            .await
            .expect("last-use times are written");
    }

    /// The server's address as a URI, for custom channels.
    pub fn channel_uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn tokens_with(&self, credential: Credential) -> Tokens {
        TokenServiceClient::with_interceptor(self.channel.clone(), credential)
    }

    pub fn admin_with(&self, credential: Credential) -> Admin {
        AdminServiceClient::with_interceptor(self.channel.clone(), credential)
    }

    /// A TokenService client presenting `token` as a Bearer credential.
    pub fn tokens(&self, token: &str) -> Tokens {
        self.tokens_with(Credential::Bearer(token.to_owned()))
    }

    /// An AdminService client presenting `token` as a Bearer credential.
    pub fn admin(&self, token: &str) -> Admin {
        self.admin_with(Credential::Bearer(token.to_owned()))
    }

    /// The operator's clients.
    pub fn operator_tokens(&self) -> Tokens {
        self.tokens(&self.bootstrap_token)
    }

    pub fn operator_admin(&self) -> Admin {
        self.admin(&self.bootstrap_token)
    }
}

/// What is left of a stopped server: enough to start it again.
pub struct Stopped {
    pub dir: Arc<TempDir>,
    pub database_url: String,
    /// The operator token printed by the first start.
    pub bootstrap_token: String,
}
