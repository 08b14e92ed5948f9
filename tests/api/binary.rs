//! The `token-authority` binary itself: `migrate`, the bootstrap token handed out once (on
//! stdout or in a private file), graceful shutdown on SIGTERM, and nothing secret printed on
//! later starts.

use std::process::Command;
use std::time::Duration;

use tonic::transport::Channel;

use token_authority::proto::VerifyTokenRequest;
use token_authority::proto::token_service_client::TokenServiceClient;

const BINARY: &str = env!("CARGO_BIN_EXE_token-authority");

use crate::helpers::{serve, terminate};

async fn verifies(addr: &str, token: &str) -> bool {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connects");
    let mut request = tonic::Request::new(VerifyTokenRequest {
        token: token.to_owned(),
        required_scopes: vec!["accounts.manage".into()],
        min_revision: 0,
        client_address: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    TokenServiceClient::new(channel)
        .verify_token(request)
        .await
        .expect("VerifyToken answers")
        .into_inner()
        .valid
}

// Multi-threaded: the test blocks on the child process while the client's connection tasks
// must keep running to answer the server's shutdown handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_serve_hands_out_the_bootstrap_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("bin.db").display());

    let migrated = Command::new(BINARY)
        .args(["migrate", "--database-url", &database_url])
        .output()
        .expect("migrate runs");
    assert!(migrated.status.success(), "{migrated:?}");
    assert!(dir.path().join("bin.db").exists());

    // First start: the token goes to a file only its owner can read.
    let token_file = dir.path().join("owner.token");
    let (child, addr) = serve(
        &database_url,
        &["--bootstrap-token-file", token_file.to_str().unwrap()],
    );
    let token = std::fs::read_to_string(&token_file)
        .expect("token file written")
        .trim()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(
        verifies(&addr, &token).await,
        "the bootstrap token is an owner token"
    );
    let stdout = terminate(child);
    assert!(stdout.contains("written to"));
    assert!(
        !stdout.contains(&token),
        "with a file, the token is not printed"
    );

    // Later starts print nothing secret and write no file.
    std::fs::remove_file(&token_file).unwrap();
    let (child, addr) = serve(
        &database_url,
        &["--bootstrap-token-file", token_file.to_str().unwrap()],
    );
    assert!(
        verifies(&addr, &token).await,
        "the token survived the restart"
    );
    let stdout = terminate(child);
    assert!(
        !stdout.contains("tka_"),
        "nothing secret on a later start: {stdout}"
    );
    assert!(!token_file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_file_the_bootstrap_token_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("bin.db").display());
    let (child, addr) = serve(&database_url, &[]);
    // Give the printed lines a moment to be flushed before shutdown.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stdout = terminate(child);
    let token = stdout
        .split_whitespace()
        .find(|word| word.starts_with("tka_"))
        .expect("the token is printed")
        .to_owned();
    // The console's address beside it, where the token signs in (a free port here).
    let console = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Admin console: http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("the console's address is printed: {stdout}"));
    assert!(
        console.starts_with(|c: char| c.is_ascii_digit() && c != '0'),
        "{console}"
    );
    let (child, addr_again) = serve(&database_url, &[]);
    assert!(verifies(&addr_again, &token).await);
    let stdout = terminate(child);
    assert!(!stdout.contains("tka_"));
    let _ = addr;
}

#[test]
fn an_unsupported_database_url_fails_with_a_clear_error() {
    let output = Command::new(BINARY)
        .args([
            "migrate",
            "--database-url",
            "mysql://user:hunter2@localhost/db",
        ])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "no password in errors");
}

// Current-thread on purpose: while the test blocks on the child, its client connection cannot
// answer the server's shutdown handshake, like a hung client.
#[tokio::test]
async fn an_unresponsive_client_cannot_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("bin.db").display());
    let token_file = dir.path().join("owner.token");
    let (child, addr) = serve(
        &database_url,
        &[
            "--shutdown-timeout",
            "1s",
            "--bootstrap-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = TokenServiceClient::new(channel);
    let mut request = tonic::Request::new(VerifyTokenRequest {
        token: token.clone(),
        required_scopes: vec![],
        min_revision: 0,
        client_address: String::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert!(
        client
            .verify_token(request)
            .await
            .unwrap()
            .into_inner()
            .valid
    );
    // The client stays connected and unresponsive; shutdown still completes in time.
    terminate(child);
    drop(client);
}
