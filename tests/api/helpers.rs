//! The test harness: spawns the real server in process on a random port over a real database
//! (a SQLite file, or a fresh database on the suite's PostgreSQL cluster, per the test's
//! backend), hands out generated gRPC clients that present a given token, and holds the
//! helpers tests share (watch reading, direct SQL, a restart-proof proxy).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use token_authority::authority::Authority;
use token_authority::configuration::{LogFormat, Settings};
use token_authority::domain::Clock;
use token_authority::proto::admin_service_client::AdminServiceClient;
use token_authority::proto::token_service_client::TokenServiceClient;
use token_authority::proto::{self, PrincipalKind};
use token_authority::startup::{Application, StartupError};
use token_authority::telemetry;

/// Everything the server logged, across all tests of this binary (captured at debug level
/// and finer for this crate, so that a leaked secret would show).
pub fn captured_logs() -> String {
    let buffer = log_buffer().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buffer).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let filter =
            "token_authority=trace,sqlx=debug,tonic=debug,h2=debug,hyper=debug,tower=debug,info";
        let sink = move || LogSink(sink.clone());
        telemetry::init(telemetry::subscriber(LogFormat::Json, filter, sink, false));
        buffer
    })
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every system permission but `accounts.manage`: what a tenant's administrator holds.
pub const TENANT_PERMISSIONS: [&str; 9] = [
    "audit.read",
    "permissions.escalate",
    "principals.manage",
    "tokens.create",
    "tokens.delete",
    "tokens.read",
    "tokens.report_leaked",
    "tokens.update",
    "tokens.verify",
];

/// Adds a credential to every request, as a backend or admin tool would.
#[derive(Clone)]
pub enum Credential {
    Bearer(String),
    ApiKey(String),
    /// A raw `authorization` value, for malformed-header tests.
    RawAuthorization(String),
    None,
}

impl Interceptor for Credential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let (key, value) = match self {
            Credential::Bearer(token) => ("authorization", format!("Bearer {token}")),
            Credential::ApiKey(token) => ("x-api-key", token.clone()),
            Credential::RawAuthorization(value) => ("authorization", value.clone()),
            Credential::None => return Ok(request),
        };
        let value: MetadataValue<_> = value
            .parse()
            .map_err(|_| Status::internal("bad test metadata"))?;
        request.metadata_mut().insert(key, value);
        Ok(request)
    }
}

pub type Tokens = TokenServiceClient<InterceptedService<Channel, Credential>>;
pub type Admin = AdminServiceClient<InterceptedService<Channel, Credential>>;

/// A running server.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
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

    /// Creates a tenant account with an administrator holding every tenant permission
    /// (all system permissions but `accounts.manage`) plus the application permissions
    /// `extra`, and an unscoped token for it.
    pub async fn create_tenant(&self, name: &str, extra: &[&str]) -> Tenant {
        let account = self
            .operator_admin()
            .create_account(proto::CreateAccountRequest {
                display_name: name.to_owned(),
            })
            .await
            .expect("operator creates an account")
            .into_inner()
            .account
            .expect("account");
        let system: Vec<&str> = TENANT_PERMISSIONS.to_vec();
        let admin = self
            .create_principal(&self.bootstrap_token, &account.id, "admin", &system)
            .await;
        let created = self
            .create_token(&self.bootstrap_token, &admin.id, &[])
            .await;
        if !extra.is_empty() {
            // The tenant admin brings application permissions into its account by
            // `permissions.escalate`, as the client library's walk-through (docs/client-library.md) does.
            let mut permissions: Vec<String> = system
                .iter()
                .chain(extra)
                .map(|p| (*p).to_owned())
                .collect();
            permissions.sort();
            self.admin(&created.secret)
                .update_principal(proto::UpdatePrincipalRequest {
                    principal: Some(proto::Principal {
                        id: admin.id.clone(),
                        permissions,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["permissions".to_owned()],
                    }),
                })
                .await
                .expect("the tenant admin escalates to application permissions");
        }
        Tenant {
            account_id: account.id,
            admin_id: admin.id,
            admin_token: created.secret,
        }
    }

    /// Creates a principal in `account_id` as the holder of `caller_token`.
    pub async fn create_principal(
        &self,
        caller_token: &str,
        account_id: &str,
        name: &str,
        permissions: &[&str],
    ) -> proto::Principal {
        self.admin(caller_token)
            .create_principal(proto::CreatePrincipalRequest {
                account_id: account_id.to_owned(),
                kind: PrincipalKind::ServiceAccount as i32,
                display_name: name.to_owned(),
                permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            })
            .await
            .expect("principal created")
            .into_inner()
            .principal
            .expect("principal")
    }

    /// Creates a token for `owner_id` with `scopes`, as the holder of `caller_token`.
    pub async fn create_token(
        &self,
        caller_token: &str,
        owner_id: &str,
        scopes: &[&str],
    ) -> proto::CreateTokenResponse {
        self.tokens(caller_token)
            .create_token(proto::CreateTokenRequest {
                owner_id: owner_id.to_owned(),
                name: "test token".to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            })
            .await
            .expect("token created")
            .into_inner()
    }

    /// Revokes token `id` as the holder of `caller_token`; panics if refused.
    pub async fn revoke(&self, caller_token: &str, id: &str) -> proto::Token {
        self.tokens(caller_token)
            .revoke_token(proto::RevokeTokenRequest {
                id: id.to_owned(),
                ..Default::default()
            })
            .await
            .expect("token revoked")
            .into_inner()
            .token
            .expect("token")
    }

    /// Disables token `id` as the holder of `caller_token`; panics if refused.
    pub async fn disable(&self, caller_token: &str, id: &str) -> proto::Token {
        self.tokens(caller_token)
            .disable_token(proto::DisableTokenRequest {
                id: id.to_owned(),
                ..Default::default()
            })
            .await
            .expect("token disabled")
            .into_inner()
            .token
            .expect("token")
    }

    /// Reads token `id` as the holder of `caller_token`; panics if refused.
    pub async fn get_token(&self, caller_token: &str, id: &str) -> proto::Token {
        self.tokens(caller_token)
            .get_token(proto::GetTokenRequest { id: id.to_owned() })
            .await
            .expect("token read")
            .into_inner()
            .token
            .expect("token")
    }

    /// The id of the bootstrap owner (the principal of `bootstrap_token`).
    pub async fn bootstrap_owner_id(&self) -> String {
        self.verify(&self.bootstrap_token, &[])
            .await
            .owner
            .expect("the bootstrap token has an owner")
            .id
    }

    /// Verifies `token` as the operator (who may verify tokens of every account).
    pub async fn verify(&self, token: &str, required: &[&str]) -> proto::VerifyTokenResponse {
        self.operator_tokens()
            .verify_token(proto::VerifyTokenRequest {
                token: token.to_owned(),
                required_scopes: required.iter().map(|s| (*s).to_owned()).collect(),
                min_revision: 0,
                client_address: String::new(),
            })
            .await
            .expect("VerifyToken answers OK")
            .into_inner()
    }
}

/// What a watcher has read so far.
#[derive(Debug, Default)]
pub struct Watched {
    pub events: Vec<proto::InvalidationEvent>,
    pub checkpoints: Vec<u64>,
    pub resets: Vec<u64>,
    /// How the stream ended, if it did.
    pub ended: Option<Result<(), Status>>,
}

impl Watched {
    /// The revision to resume from: the newest one seen in any message.
    pub fn last_revision(&self) -> u64 {
        let events = self.events.iter().map(|e| e.revision);
        events
            .chain(self.checkpoints.iter().copied())
            .chain(self.resets.iter().copied())
            .max()
            .unwrap_or(0)
    }

    pub fn types(&self) -> Vec<proto::InvalidationType> {
        self.events.iter().map(|e| e.r#type()).collect()
    }
}

/// Reads `stream` until `done` holds for what was read, the stream ends, or `within` passes.
pub async fn read_until(
    stream: &mut tonic::Streaming<proto::WatchRevocationsResponse>,
    watched: &mut Watched,
    within: Duration,
    done: impl Fn(&Watched) -> bool,
) {
    use proto::watch_revocations_response::Message;
    let deadline = tokio::time::Instant::now() + within;
    while !done(watched) && watched.ended.is_none() {
        let Ok(next) = tokio::time::timeout_at(deadline, stream.message()).await else {
            return;
        };
        match next {
            Ok(Some(response)) => match response.message {
                Some(Message::Batch(batch)) => {
                    assert!(!batch.events.is_empty(), "batches are never empty");
                    watched.events.extend(batch.events);
                }
                Some(Message::Checkpoint(c)) => watched.checkpoints.push(c.revision),
                Some(Message::Reset(r)) => watched.resets.push(r.revision),
                None => panic!("an empty watch message"),
            },
            Ok(None) => watched.ended = Some(Ok(())),
            Err(status) => watched.ended = Some(Err(status)),
        }
    }
}

impl TestApp {
    /// Opens a WatchRevocations stream as the holder of `token`, resuming after
    /// `after_revision` (0 included: everything retained).
    pub async fn watch(
        &self,
        token: &str,
        after_revision: u64,
        account_id: &str,
    ) -> Result<tonic::Streaming<proto::WatchRevocationsResponse>, Status> {
        self.tokens(token)
            .watch_revocations(proto::WatchRevocationsRequest {
                after_revision,
                account_id: account_id.to_owned(),
                start_from_now: false,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Opens a WatchRevocations stream that starts at the current revision.
    pub async fn watch_from_now(
        &self,
        token: &str,
        account_id: &str,
    ) -> Result<tonic::Streaming<proto::WatchRevocationsResponse>, Status> {
        self.tokens(token)
            .watch_revocations(proto::WatchRevocationsRequest {
                after_revision: 0,
                account_id: account_id.to_owned(),
                start_from_now: true,
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

/// What is left of a stopped server: enough to start it again.
pub struct Stopped {
    pub dir: Arc<TempDir>,
    pub database_url: String,
    /// The operator token printed by the first start.
    pub bootstrap_token: String,
}

/// A tenant account and its administrator.
pub struct Tenant {
    pub account_id: String,
    pub admin_id: String,
    pub admin_token: String,
}

/// Asserts that a call failed with `code`, and returns the status for further checks.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got OK: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// An update mask naming one field.
pub fn mask(path: &str) -> Option<prost_types::FieldMask> {
    masks(&[path])
}

/// An update mask naming `paths`.
pub fn masks(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// The code of a verification answer.
pub fn code_of(response: &proto::VerifyTokenResponse) -> proto::VerificationCode {
    proto::VerificationCode::try_from(response.code).expect("known code")
}

/// Runs `statements` directly on a test database (of the current backend), for tests that
/// set up what no RPC can: data of an older version, or events with skewed clocks.
pub async fn execute_sql(database_url: &str, statements: &[String]) {
    use sqlx::Connection;
    match backend() {
        Backend::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
            for statement in statements {
                sqlx::query(statement).execute(&mut db).await.unwrap();
            }
        }
        Backend::Postgres => {
            let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
            for statement in statements {
                sqlx::query(statement).execute(&mut db).await.unwrap();
            }
        }
    }
}

/// The revisions of the invalidation events a test database retains, in order.
pub async fn retained_revisions(database_url: &str) -> Vec<i64> {
    use sqlx::Connection;
    let sql = "SELECT revision FROM invalidation_events ORDER BY revision";
    match backend() {
        Backend::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut db).await.unwrap()
        }
        Backend::Postgres => {
            let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut db).await.unwrap()
        }
    }
}

/// A TCP forwarder with a stable address in front of a server that restarts on new ports:
/// what a load balancer is to real clients. Connections are forwarded to the current target;
/// when the server stops, its side closes and so does the client's.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    target: Arc<std::sync::Mutex<std::net::SocketAddr>>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn to(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let target = Arc::new(std::sync::Mutex::new(target));
        let current = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = *current.lock().expect("target");
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { addr, target, task }
    }

    /// Forwards new connections to `target` from now on.
    pub fn retarget(&self, target: std::net::SocketAddr) {
        *self.target.lock().expect("target") = target;
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
