//! Command line and environment configuration of the `token-authority` binary. Every flag
//! has an environment-variable twin, so the server runs the same from a shell, a unit file
//! or a container.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::authority::AuthorityConfig;

/// The gRPC token authority: issues, verifies and revokes API tokens.
#[derive(Debug, Clone, Parser)]
#[command(name = "token-authority", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to a new file, while servers run.
    Backup {
        /// The file to create (it must not exist); it is written with mode 0600.
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
    /// Run the gateway sidecar: forward-auth for nginx, Caddy and Traefik, answered from
    /// a cache the authority keeps fresh (docs/gateways.md). It takes options of its own,
    /// none of the server's: `token-authority edge --help`.
    Edge,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where a listener that can be turned off listens (the metrics endpoint, the console).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionalAddr {
    /// No listener (for metrics: no recording either).
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for OptionalAddr {
    type Err = std::net::AddrParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        value.parse().map(Self::At)
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on for gRPC (HTTP/2; TLS with --tls-cert and --tls-key).
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_LISTEN_ADDR",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen_addr: SocketAddr,

    /// Address of the Prometheus endpoint (plain HTTP, `GET /metrics`), or `off`. Loopback by
    /// default, like the gRPC address: metrics describe the traffic, so exposing them is the
    /// operator's choice (e.g. `0.0.0.0:9464` for a scraper on another host).
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_METRICS_ADDR",
        default_value = "127.0.0.1:9464",
        global = true
    )]
    pub metrics_addr: OptionalAddr,

    /// Address of the admin web console (its page, and gRPC-Web for it), or `off`. Loopback
    /// by default; TLS with --tls-cert and --tls-key, as the gRPC port.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_CONSOLE_ADDR",
        default_value = "127.0.0.1:50080",
        global = true
    )]
    pub console_addr: OptionalAddr,

    /// A host name the console is reached by (repeat, or separate with commas), besides IP
    /// addresses and `localhost`. A request naming another host is refused, so that no other
    /// site's name can be pointed at the console (DNS rebinding).
    #[arg(
        long = "console-host",
        env = "TOKEN_AUTHORITY_CONSOLE_HOSTS",
        value_delimiter = ',',
        global = true
    )]
    pub console_hosts: Vec<String>,

    /// Serve TLS with this certificate chain (PEM); needs --tls-key. Without it the server
    /// speaks plaintext HTTP/2 (for loopback, or behind a TLS-terminating proxy).
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_TLS_CERT",
        requires = "tls_key",
        global = true
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_TLS_KEY",
        requires = "tls_cert",
        global = true
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve Envoy's external authorization API (`envoy.service.auth.v3.Authorization/Check`)
    /// on the gRPC port, deciding by this rules file (docs/gateways.md).
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_GATEWAY_RULES",
        value_name = "FILE",
        global = true
    )]
    pub gateway_rules: Option<PathBuf>,

    /// Database URL: `sqlite://path` (created if missing; the embedded default) or
    /// `postgres://user:password@host/database` (for several replicas).
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_DATABASE_URL",
        default_value = "sqlite://token-authority.db",
        global = true
    )]
    pub database_url: String,

    /// Log format.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_LOG_FORMAT",
        value_enum,
        default_value = "human",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter, in `tracing` EnvFilter syntax (`info`, `token_authority=debug,info`, …).
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_LOG",
        default_value = "info",
        global = true
    )]
    pub log_level: String,

    /// On first start, write the bootstrap token to this file (mode 0600) instead of
    /// printing it.
    #[arg(long, env = "TOKEN_AUTHORITY_BOOTSTRAP_TOKEN_FILE", global = true)]
    pub bootstrap_token_file: Option<PathBuf>,

    /// Largest request message accepted, in bytes; larger ones fail with RESOURCE_EXHAUSTED.
    #[arg(long, env = "TOKEN_AUTHORITY_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024, global = true)]
    pub max_message_bytes: usize,

    /// Longest grace period a reset may give the old secret; a longer one is refused
    /// (INVALID_ARGUMENT), not shortened.
    #[arg(long, env = "TOKEN_AUTHORITY_MAX_GRACE_PERIOD", default_value = "7d", value_parser = humantime::parse_duration, global = true)]
    pub max_grace_period: Duration,

    /// How many verified tokens the in-memory cache holds.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_VERIFY_CACHE_CAPACITY",
        default_value_t = 100_000,
        global = true
    )]
    pub verify_cache_capacity: u64,

    /// How long a cached verification is trusted at most (events invalidate it sooner).
    #[arg(long, env = "TOKEN_AUTHORITY_VERIFY_CACHE_TTL", default_value = "5m", value_parser = humantime::parse_duration, global = true)]
    pub verify_cache_ttl: Duration,

    /// How often last-use times are written to the database.
    #[arg(long, env = "TOKEN_AUTHORITY_LAST_USE_FLUSH_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub last_use_flush_interval: Duration,

    /// How often WatchRevocations sends a checkpoint, so that idle watchers can tell that
    /// they are still up to date.
    #[arg(long, env = "TOKEN_AUTHORITY_WATCH_CHECKPOINT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub watch_checkpoint_interval: Duration,

    /// How many event batches are buffered for watchers; one further behind is cut off and
    /// resumes.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_WATCH_BUFFER",
        default_value_t = 1024,
        global = true
    )]
    pub watch_buffer: usize,

    /// How long invalidation events are kept for watchers to resume from; a watcher asking
    /// for an older revision gets a reset.
    #[arg(long, env = "TOKEN_AUTHORITY_EVENT_RETENTION", default_value = "24h", value_parser = humantime::parse_duration, global = true)]
    pub event_retention: Duration,

    /// How often the events table is polled for changes made by other processes (local
    /// changes are picked up at once).
    #[arg(long, env = "TOKEN_AUTHORITY_EVENT_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration, global = true)]
    pub event_poll_interval: Duration,

    /// How long warm verifications are answered from memory while the events table cannot
    /// be read (database outage); after that they need the database (or fail UNAVAILABLE).
    #[arg(long, env = "TOKEN_AUTHORITY_MAX_EVENT_LAG", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub max_event_lag: Duration,

    /// How long VerifyToken waits for a `min_revision` this replica has not applied yet
    /// before answering UNAVAILABLE.
    #[arg(long, env = "TOKEN_AUTHORITY_MAX_REVISION_WAIT", default_value = "1s", value_parser = humantime::parse_duration, global = true)]
    pub max_revision_wait: Duration,

    /// PostgreSQL: LISTEN for other replicas' changes (off behind a pooler that cannot pass
    /// LISTEN/NOTIFY, such as PgBouncer in transaction mode: replicas then learn of each
    /// other's changes at the next poll, or at once when asked for a `min_revision`).
    #[arg(long, env = "TOKEN_AUTHORITY_DATABASE_LISTEN", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub database_listen: bool,

    /// On SIGINT/SIGTERM, how long in-flight calls may take to finish before the remaining
    /// connections are closed.
    #[arg(long, env = "TOKEN_AUTHORITY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub shutdown_timeout: Duration,

    /// Apply database migrations on start (otherwise run `token-authority migrate` first).
    #[arg(long, env = "TOKEN_AUTHORITY_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub migrate_on_start: bool,

    /// PostgreSQL: the most connections this replica opens.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_DATABASE_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub database_max_connections: u32,

    /// PostgreSQL: how long a call waits for a database connection before failing with
    /// UNAVAILABLE.
    #[arg(long, env = "TOKEN_AUTHORITY_DATABASE_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration, global = true)]
    pub database_acquire_timeout: Duration,

    /// The most connections the gRPC port holds at once; more are closed as they arrive.
    /// 0: three quarters of the process's file limit (`ulimit -n`), at most 50,000.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_MAX_CONNECTIONS",
        default_value_t = 0,
        global = true
    )]
    pub max_connections: usize,

    /// The most connections the gRPC port holds at once from one client address (0: no cap
    /// per address). Behind a proxy that hides client addresses, raise it or use 0.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1024,
        global = true
    )]
    pub max_connections_per_address: usize,

    /// How long a new connection (gRPC or metrics) may take to complete its handshakes and
    /// send its first request before it is closed.
    #[arg(long, env = "TOKEN_AUTHORITY_FIRST_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub first_request_timeout: Duration,

    /// The longest a gRPC connection lives: then the server sends GOAWAY, lets calls in
    /// flight finish (an hour at most; watch streams resume elsewhere without loss), and
    /// the client reconnects. Bounds how long an idle client holds its connection.
    #[arg(long, env = "TOKEN_AUTHORITY_MAX_CONNECTION_AGE", default_value = "30m", value_parser = humantime::parse_duration, global = true)]
    pub max_connection_age: Duration,

    /// Failed authentications that needed a database read, allowed per second from one
    /// client address (an IPv6 client's /64) and with one credential (bursts of five
    /// seconds' worth); past it, RESOURCE_EXHAUSTED for a second before the next such read.
    /// Credentials answered from memory are never limited. 0: no limit.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_AUTH_FAILURES_PER_SECOND",
        default_value_t = 20,
        global = true
    )]
    pub auth_failures_per_second: u32,

    /// How many reads of the database for tokens no cache holds may run at once; a look-up
    /// that waits more than 2 s for its turn fails with RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_MAX_COLD_LOOKUPS",
        default_value_t = 32,
        global = true
    )]
    pub max_cold_lookups: usize,

    /// The most tokens one account holds (revoked ones count until deleted); creating or
    /// duplicating past it fails with RESOURCE_EXHAUSTED. 0: no quota.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_MAX_TOKENS_PER_ACCOUNT",
        default_value_t = 100_000,
        global = true
    )]
    pub max_tokens_per_account: u64,

    /// The most principals one account holds; creating past it fails with
    /// RESOURCE_EXHAUSTED. 0: no quota.
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_MAX_PRINCIPALS_PER_ACCOUNT",
        default_value_t = 10_000,
        global = true
    )]
    pub max_principals_per_account: u64,

    /// SQLite: read connections (writes use one).
    #[arg(
        long,
        env = "TOKEN_AUTHORITY_DATABASE_READ_CONNECTIONS",
        default_value_t = 4,
        global = true
    )]
    pub database_read_connections: u32,

    /// The authority's clock: the wall clock; tests that test deadlines move it forward.
    #[arg(skip)]
    pub clock: crate::domain::Clock,
}

impl Settings {
    /// The per-stream settings of WatchRevocations.
    pub fn watch(&self) -> crate::authority::WatchOptions {
        crate::authority::WatchOptions {
            checkpoint_every: self.watch_checkpoint_interval,
        }
    }

    /// Every setting at its default: the flags' defaults, the one place defaults are
    /// written. Unlike parsing a command line, no `TOKEN_AUTHORITY_*` variable of the
    /// environment is read.
    pub fn defaults() -> Self {
        let command = <Cli as clap::CommandFactory>::command()
            .mut_args(|arg| arg.env(None))
            .mut_subcommands(|subcommand| subcommand.mut_args(|arg| arg.env(None)));
        let matches = command.get_matches_from(["token-authority"]);
        // The defaults parse: `defaults_are_usable` below proves it.
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
            .map(|cli| cli.settings)
            .unwrap_or_else(|error| error.exit())
    }

    /// The defaults with `database_url`; used by tests and benchmarks that start the server
    /// in process, whatever the environment holds.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let mut settings = Self::defaults();
        settings.database_url = database_url.into();
        settings
    }

    /// How the store is opened; `migrate`: bring its schema up to date first.
    pub fn store_options(&self, migrate: bool) -> crate::store::OpenOptions {
        crate::store::OpenOptions {
            migrate,
            sqlite_read_connections: self.database_read_connections,
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_acquire_timeout,
            listen: self.database_listen,
        }
    }

    pub fn authority(&self) -> AuthorityConfig {
        AuthorityConfig {
            clock: self.clock.clone(),
            max_grace_period: self.max_grace_period,
            verification_cache_capacity: self.verify_cache_capacity,
            verification_cache_ttl: self.verify_cache_ttl,
            watch_buffer: self.watch_buffer,
            max_event_lag: self.max_event_lag,
            max_revision_wait: self.max_revision_wait,
            max_cold_lookups: self.max_cold_lookups,
            auth_failures_per_second: self.auth_failures_per_second,
            max_tokens_per_account: self.max_tokens_per_account,
            max_principals_per_account: self.max_principals_per_account,
        }
    }

    /// What the gRPC port lets its clients hold.
    pub fn grpc_connection_limits(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            max_connections: match self.max_connections {
                0 => crate::connections::ConnectionLimits::default_max_connections(),
                cap => cap,
            },
            max_per_address: self.max_connections_per_address,
            first_request_timeout: self.first_request_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_usable() {
        let cli = Cli::parse_from(["token-authority"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.settings.listen_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(
            cli.settings.metrics_addr,
            OptionalAddr::At("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            cli.settings.max_grace_period,
            Duration::from_secs(7 * 86_400)
        );
    }

    #[test]
    fn defaults_ignore_the_environment() {
        // SAFETY: other tests of this binary parse command lines, which read the variable;
        // none asserts the setting, and `7` parses.
        unsafe { std::env::set_var("TOKEN_AUTHORITY_WATCH_BUFFER", "7") };
        let settings = Settings::defaults();
        unsafe { std::env::remove_var("TOKEN_AUTHORITY_WATCH_BUFFER") };
        assert_eq!(settings.watch_buffer, 1024);
    }

    #[test]
    fn flags_parse_after_the_subcommand_too() {
        let cli = Cli::parse_from([
            "token-authority",
            "migrate",
            "--database-url",
            "sqlite://x.db",
        ]);
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.settings.database_url, "sqlite://x.db");
    }
}
