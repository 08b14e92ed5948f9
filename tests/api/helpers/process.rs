//! The `token-authority` binary as its own process, for tests of what only a process shows:
//! its command line, logs, signals and exit status, or an environment (libfaketime) that an
//! in-process server cannot have.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_token-authority");

/// Starts `token-authority serve` on a free port; returns the child and its address.
pub fn serve(database_url: &str, extra: &[&str]) -> (Child, String) {
    let (child, addr, _) = serve_with_metrics(database_url, extra);
    (child, addr)
}

/// Like [`serve`], and also returns the address of its metrics endpoint (on a free port).
pub fn serve_with_metrics(database_url: &str, extra: &[&str]) -> (Child, String, String) {
    serve_with_env(database_url, extra, &[])
}

/// Like [`serve_with_metrics`], with `env` added to the server's environment.
pub fn serve_with_env(
    database_url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, String) {
    let mut child = Command::new(BINARY)
        .envs(env.iter().copied())
        .args([
            "serve",
            "--listen-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--console-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(["--database-url", database_url])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut metrics_addr = None;
    let addr = loop {
        let line = lines
            .next()
            .expect("the server logs until it listens")
            .expect("log line");
        let logged_addr = || {
            let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
            value["addr"].as_str().expect("addr field").to_owned()
        };
        if line.contains("metrics listening") {
            metrics_addr = Some(logged_addr());
        }
        if line.contains("token authority listening") {
            break logged_addr();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let metrics_addr = metrics_addr.expect("the metrics endpoint listens before the server");
    (child, addr, metrics_addr)
}

/// Sends SIGTERM and waits: a graceful shutdown exits 0, well within the shutdown timeout.
pub fn terminate(mut child: Child) -> String {
    let started = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout).expect("stdout");
    }
    let exit = child.wait().expect("the server exits");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    stdout
}
