//! Throwaway PostgreSQL clusters for the tests and benchmarks, started by them themselves.
//!
//! Set `TOKEN_AUTHORITY_TEST_POSTGRES_URL` to use a server of your own. Otherwise the first
//! test that needs PostgreSQL starts the shared cluster with Debian's binaries (the
//! `postgresql` package keeps `initdb` and `pg_ctl` in `/usr/lib/postgresql/<version>/bin`),
//! as the `postgres` user when run as root, in a directory under the system's temp dir,
//! listening on 127.0.0.1 only, with fsync off (test data need not survive a crash). Clusters
//! are reused by later runs; every test gets a database of its own, and each run drops the
//! databases earlier runs left behind. Tests that stop the database use a dedicated cluster
//! of their own.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use sqlx::Connection;

const SHARED_PORT: u16 = 54329;

/// One PostgreSQL cluster on 127.0.0.1.
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
}

impl Cluster {
    /// A cluster on `port`, in its own directory; call [`Cluster::start`].
    pub fn new(port: u16) -> Self {
        Self {
            port,
            dir: std::env::temp_dir().join(format!("token-authority-test-postgres-{port}")),
            bin: binaries(),
            as_root: is_root(),
        }
    }

    /// The server's base URL (no database).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut command = if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
    }

    fn data(&self) -> &str {
        self.dir.to_str().expect("UTF-8 temp dir")
    }

    pub fn is_running(&self) -> bool {
        self.run("pg_ctl", &["status", "-D", self.data()])
            .status
            .success()
    }

    /// Creates the cluster if needed and starts it unless it runs.
    pub fn start(&self) {
        if self.is_running() {
            return;
        }
        let data = self.data();
        if !self.dir.join("PG_VERSION").exists() {
            std::fs::create_dir_all(&self.dir).expect("cluster directory");
            if self.as_root {
                let chown = Command::new("chown")
                    .args(["-R", "postgres:postgres", data])
                    .status();
                assert!(
                    chown.is_ok_and(|s| s.success()),
                    "cannot give {data} to the postgres user"
                );
            }
            let init = self.run(
                "initdb",
                &["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            );
            assert!(
                init.status.success() || self.dir.join("PG_VERSION").exists(),
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {data} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400",
            self.port
        );
        let log = format!("{data}/server.log");
        let started = self.run(
            "pg_ctl",
            &["start", "-w", "-D", data, "-l", &log, "-o", &options],
        );
        // Another test process may have started it meanwhile.
        assert!(
            started.status.success() || self.is_running(),
            "PostgreSQL did not start: {}{}",
            String::from_utf8_lossy(&started.stdout),
            String::from_utf8_lossy(&started.stderr)
        );
    }

    /// Stops the server at once (connections are cut), as an outage would.
    pub fn stop(&self) {
        let stopped = self.run("pg_ctl", &["stop", "-w", "-m", "fast", "-D", self.data()]);
        assert!(
            stopped.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&stopped.stderr)
        );
    }
}

/// The URL of a new, empty database on the shared test server.
pub async fn fresh_database() -> String {
    fresh_database_on(shared_url()).await
}

/// Test databases older than this are dropped by the next run (no test lasts this long).
const STALE_AFTER_SECONDS: u64 = 3600;

/// The URL of a new, empty database on the server at `server`. Its name carries its creation
/// time, so that a later run can drop it: the first database a process creates on a server
/// drops the test databases of earlier runs (a reused cluster otherwise grows without end;
/// one had reached 40 GB).
pub async fn fresh_database_on(server: &str) -> String {
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).expect("the operating system's random number generator");
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("tka_test_{}_{suffix}", unix_seconds());
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("connects to the test PostgreSQL server");
    static CLEANED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !CLEANED.swap(true, std::sync::atomic::Ordering::AcqRel) {
        drop_stale_databases(&mut admin).await;
    }
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("a test database is created");
    let _ = admin.close().await;
    format!("{server}/{name}")
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Drops the test databases created more than [`STALE_AFTER_SECONDS`] ago, and those named
/// before names carried a time; one still in use (another run's) is left alone.
async fn drop_stale_databases(admin: &mut sqlx::PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'tka\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    let now = unix_seconds();
    for name in names {
        let created = name
            .strip_prefix("tka_test_")
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(seconds, _)| seconds.parse::<u64>().ok());
        let stale = created.is_none_or(|at| now.saturating_sub(at) > STALE_AFTER_SECONDS);
        if stale {
            // Fails while another run uses it: then it is not stale after all.
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// The shared server's base URL, starting its cluster once per process.
fn shared_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TOKEN_AUTHORITY_TEST_POSTGRES_URL") {
            return url.trim_end_matches('/').to_owned();
        }
        let port = std::env::var("TOKEN_AUTHORITY_TEST_POSTGRES_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(SHARED_PORT);
        let cluster = Cluster::new(port);
        cluster.start();
        cluster.url()
    })
}

/// Where Debian (or `PG_BIN`) keeps `initdb` and `pg_ctl`.
fn binaries() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|bin| bin.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run the tests with `scripts/test` (it installs Debian's postgresql), or set TOKEN_AUTHORITY_TEST_POSTGRES_URL")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}
