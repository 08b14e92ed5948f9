//! Propagation benchmark: how fast a revocation reaches 1,000 watchers, and what they cost
//! the server.
//!
//! Starts the real `token-authority` binary (release build) on a temporary SQLite file,
//! connects `WATCHERS` WatchRevocations streams (default 1,000), each on its own HTTP/2
//! connection as separate backends would, then revokes `ROUNDS` tokens (default 50) one at a
//! time. For every watcher and revocation it records when the event arrived, relative to
//! the RevokeToken response (negative: before the response, since the server hands the
//! event to watchers before it answers) and to the request being sent. It also reads the
//! server's resident memory before and after the watchers connect.
//!
//! Run with `cargo bench --bench propagation`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use token_authority::proto::invalidation_event::Target;
use token_authority::proto::token_service_client::TokenServiceClient;
use token_authority::proto::watch_revocations_response::Message;
use token_authority::proto::{CreateTokenRequest, RevokeTokenRequest, WatchRevocationsRequest};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts the server binary; returns it, its address and the bootstrap token.
fn start_server(dir: &std::path::Path) -> (Child, String, String) {
    let token_file = dir.join("owner.token");
    let mut child = Command::new(env!("CARGO_BIN_EXE_token-authority"))
        .args([
            "serve",
            "--listen-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("propagation.db").display()))
        .arg("--bootstrap-token-file")
        .arg(&token_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("server log").expect("log line");
        if line.contains("token authority listening") {
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log");
            break value["addr"].as_str().expect("addr").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let token = std::fs::read_to_string(token_file)
        .expect("token file")
        .trim()
        .to_owned();
    (child, addr, token)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn authorized<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("metadata");
    request.metadata_mut().insert("authorization", value);
    request
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let watchers = env_or("WATCHERS", 1000);
    let rounds = env_or("ROUNDS", 50);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, operator) = start_server(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let uri = format!("http://{addr}");
        let admin_channel = Channel::from_shared(uri.clone()).expect("uri").connect().await.expect("connects");
        let mut tokens = TokenServiceClient::new(admin_channel);
        let mut ids = Vec::new();
        for i in 0..rounds {
            let created = tokens
                .create_token(authorized(CreateTokenRequest { name: format!("victim {i}"), ..Default::default() }, &operator))
                .await
                .expect("token created")
                .into_inner();
            ids.push(created.token.expect("token").id);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = rss_kib(server.id());

        // Every watcher on its own connection; each reports when it is following.
        let ready = Arc::new(Barrier::new(watchers + 1));
        let mut tasks = Vec::new();
        for _ in 0..watchers {
            let ready = ready.clone();
            // Connected one after the other: a thousand simultaneous connects can overflow
            // the listen backlog, which says nothing about propagation.
            let channel = Endpoint::from_shared(uri.clone()).expect("uri").connect().await.expect("watcher connects");
            let operator = operator.clone();
            let expected = rounds;
            tasks.push(tokio::spawn(async move {
                let mut client = TokenServiceClient::new(channel);
                let mut stream = client
                    .watch_revocations(authorized(WatchRevocationsRequest { after_revision: 0, account_id: String::new(), start_from_now: true }, &operator))
                    .await
                    .expect("watch")
                    .into_inner();
                let mut arrivals = Vec::with_capacity(expected);
                let mut following = false;
                while arrivals.len() < expected {
                    let message = stream.message().await.expect("stream").expect("open stream").message;
                    let at = Instant::now();
                    match message {
                        Some(Message::Checkpoint(_)) if !following => {
                            following = true;
                            ready.wait().await;
                        }
                        Some(Message::Batch(batch)) => {
                            for event in batch.events {
                                if let Some(Target::TokenId(id)) = event.target {
                                    arrivals.push((id, at));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                arrivals
            }));
        }
        ready.wait().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after = rss_kib(server.id());

        let mut sent_at = std::collections::HashMap::new();
        for id in &ids {
            let sent = Instant::now();
            tokens
                .revoke_token(authorized(RevokeTokenRequest { id: id.clone(), ..Default::default() }, &operator))
                .await
                .expect("revoked");
            sent_at.insert(id.clone(), (sent, Instant::now()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut from_response = Vec::new();
        let mut from_request = Vec::new();
        for task in tasks {
            for (id, at) in task.await.expect("watcher") {
                if let Some((sent, answered)) = sent_at.get(&id) {
                    let ms = |a: Instant, b: Instant| {
                        if a >= b { a.duration_since(b).as_secs_f64() * 1e3 } else { -(b.duration_since(a).as_secs_f64() * 1e3) }
                    };
                    from_response.push(ms(at, *answered));
                    from_request.push(ms(at, *sent));
                }
            }
        }
        from_response.sort_by(f64::total_cmp);
        from_request.sort_by(f64::total_cmp);
        println!("{watchers} watchers (one connection each), {rounds} revocations, {} deliveries", from_response.len());
        for (name, values) in [("from the RevokeToken response", &from_response), ("from the RevokeToken request", &from_request)] {
            println!(
                "  event arrival {name}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                percentile(values, 0.5),
                percentile(values, 0.99),
                percentile(values, 1.0)
            );
        }
        println!(
            "  server RSS: {:.1} MiB before the watchers, {:.1} MiB with them ({:.1} KiB per watcher)",
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
            (rss_after.saturating_sub(rss_before)) as f64 / watchers as f64
        );
    });
    let _ = server.kill();
    let _ = server.wait();
}
