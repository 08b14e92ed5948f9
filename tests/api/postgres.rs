//! A throwaway PostgreSQL cluster for the tests, started by the tests themselves.
//!
//! Set `TOKEN_AUTHORITY_TEST_POSTGRES_URL` to use a server of your own. Otherwise the first
//! test that needs PostgreSQL starts a cluster with Debian's binaries (the `postgresql`
//! package keeps `initdb` and `pg_ctl` in `/usr/lib/postgresql/<version>/bin`), as the
//! `postgres` user when run as root, in a directory under the system's temp dir, listening
//! on 127.0.0.1 only, with fsync off (test data need not survive a crash). The cluster is
//! reused by later runs; every test gets a database of its own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use sqlx::Connection;

const DEFAULT_PORT: u16 = 54329;

/// The URL of a new, empty database.
pub async fn fresh_database() -> String {
    let server = server_url();
    let name = format!(
        "tka_test_{}",
        token_authority::domain::TokenId::generate().as_str()[4..].to_lowercase()
    );
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("connects to the test PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("a test database is created");
    let _ = admin.close().await;
    format!("{server}/{name}")
}

/// The server's base URL (without a database), starting the cluster once per process.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TOKEN_AUTHORITY_TEST_POSTGRES_URL") {
            return url.trim_end_matches('/').to_owned();
        }
        let port = std::env::var("TOKEN_AUTHORITY_TEST_POSTGRES_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(DEFAULT_PORT);
        start_cluster(port);
        format!("postgres://postgres@127.0.0.1:{port}")
    })
}

fn start_cluster(port: u16) {
    let bin = binaries();
    let dir = std::env::temp_dir().join(format!("token-authority-test-postgres-{port}"));
    let as_root = is_root();
    let run = |program: &str, args: &[&str]| {
        let path = bin.join(program);
        let mut command = if as_root {
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
    };
    let data = dir.to_str().expect("UTF-8 temp dir");
    if run("pg_ctl", &["status", "-D", data]).status.success() {
        return;
    }
    if !dir.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&dir).expect("cluster directory");
        if as_root {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres", data])
                .status();
            assert!(
                chown.is_ok_and(|s| s.success()),
                "cannot give {data} to the postgres user"
            );
        }
        let init = run(
            "initdb",
            &["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        assert!(
            init.status.success() || dir.join("PG_VERSION").exists(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=400"
    );
    let log = format!("{data}/server.log");
    let started = run(
        "pg_ctl",
        &["start", "-w", "-D", data, "-l", &log, "-o", &options],
    );
    // Another test process may have started it meanwhile.
    assert!(
        started.status.success() || run("pg_ctl", &["status", "-D", data]).status.success(),
        "PostgreSQL did not start: {}{}",
        String::from_utf8_lossy(&started.stdout),
        String::from_utf8_lossy(&started.stderr)
    );
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
        panic!("PostgreSQL is not installed: `apt-get install postgresql`, or set TOKEN_AUTHORITY_TEST_POSTGRES_URL")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}
