//! Propagation benchmark: how fast a revocation reaches every watcher, and what watchers cost
//! the server.
//!
//! Starts the real `token-authority` binary (release build) on a temporary SQLite file, then
//! `CLIENTS` watcher processes (this same executable, re-run in the watcher role), which
//! between them open `WATCHERS` WatchRevocations streams (default 1,000), each on its own
//! HTTP/2 connection as separate backends would. Once every stream follows, it revokes
//! `ROUNDS` tokens (default 50) one at a time, `ROUND_GAP_MS` apart (default 20). Every
//! watcher records when each event arrived (Unix time, shared by the processes of one
//! machine); the figures are measured from the RevokeToken request being sent and from its
//! response (negative: before the response, since the server hands the event to watchers
//! before it answers). It checks that every watcher got every event, and reports the
//! server's resident memory (before the watchers, with them, and its peak) and the CPU time
//! the server and the watcher processes spent during the revocations.
//!
//! Run with `cargo bench --bench propagation`; `WATCHERS=10000 cargo bench --bench
//! propagation` for ten thousand (CLIENTS defaults to one process per 2,500 watchers).
//! `PIN=1` gives the server the first CPU to itself and the watcher processes the others.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use token_authority::proto::invalidation_event::Target;
use token_authority::proto::token_service_client::TokenServiceClient;
use token_authority::proto::watch_revocations_response::Message;
use token_authority::proto::{CreateTokenRequest, RevokeTokenRequest, WatchRevocationsRequest};

/// Set (to the server's address) in the environment of a watcher process.
const WATCHER_ROLE: &str = "PROPAGATION_WATCH_ADDR";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Microseconds since the Unix epoch: a clock every process of the machine shares.
fn now_micros() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
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
            // Every watcher connects from loopback.
            "--max-connections-per-address",
            "0",
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

/// A field of `/proc/<pid>/status`, in KiB (`VmRSS`, `VmHWM`).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used, in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    // utime and stime: fields 14 and 15 of the line.
    stat_ms(&format!("/proc/{pid}/stat"), 14)
}

/// CPU time (user + system, ms) of this process's waited-for children.
fn children_cpu_ms() -> u64 {
    // cutime and cstime: fields 16 and 17 of the line.
    stat_ms("/proc/self/stat", 16)
}

/// The sum of fields `field` and `field + 1` (1-based) of a `/proc/…/stat` line, clock ticks
/// of 100 Hz on Linux, in milliseconds.
fn stat_ms(path: &str, field: usize) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (field 2, in parentheses, may hold spaces) start at 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i.saturating_sub(3))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(field) + ticks(field + 1)) * 10
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
    if let Ok(addr) = std::env::var(WATCHER_ROLE) {
        watch(&addr);
        return;
    }
    let watchers = env_or("WATCHERS", 1000);
    let clients = env_or("CLIENTS", watchers.div_ceil(2500)).clamp(1, watchers.max(1));
    let rounds = env_or("ROUNDS", 50);
    let gap = Duration::from_millis(env_or("ROUND_GAP_MS", 20) as u64);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, operator) = start_server(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let uri = format!("http://{addr}");
    let (mut tokens, ids) = runtime.block_on(async {
        let channel = Channel::from_shared(uri.clone())
            .expect("uri")
            .connect()
            .await
            .expect("connects");
        let mut tokens = TokenServiceClient::new(channel);
        let mut ids = Vec::new();
        for i in 0..rounds {
            let request = CreateTokenRequest {
                name: format!("victim {i}"),
                ..Default::default()
            };
            let created = tokens
                .create_token(authorized(request, &operator))
                .await
                .expect("token created")
                .into_inner();
            ids.push(created.token.expect("token").id);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        (tokens, ids)
    });
    let rss_before = memory_kib(server.id(), "VmRSS");

    // The watcher processes; each says `ready` once all its streams follow.
    let mut children = Vec::new();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    for i in 0..clients {
        let share = watchers / clients + usize::from(i < watchers % clients);
        let mut child = Command::new(std::env::current_exe().expect("this executable"))
            .env(WATCHER_ROLE, &addr)
            .env("PROPAGATION_TOKEN", &operator)
            .env("PROPAGATION_STREAMS", share.to_string())
            .env("PROPAGATION_EVENTS", rounds.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("a watcher process starts");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let lines_tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        children.push(child);
    }
    drop(lines_tx);
    // PIN=1: the server on the first CPU, the watcher processes on the others, so that the
    // figures show what the server does with a core of its own.
    if std::env::var("PIN").is_ok_and(|v| v == "1") {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pin = |pid: u32, list: &str| {
            let status = Command::new("taskset")
                .args(["--all-tasks", "--cpu-list", "--pid", list, &pid.to_string()])
                .stdout(Stdio::null())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "taskset pins {pid} to {list}"
            );
        };
        pin(server.id(), "0");
        let others = if cpus > 1 {
            format!("1-{}", cpus - 1)
        } else {
            "0".to_owned()
        };
        for child in &children {
            pin(child.id(), &others);
        }
    }
    let mut arrivals: Vec<(String, i64)> = Vec::with_capacity(watchers * rounds);
    let mut problems = Vec::new();
    let mut ready = 0;
    let mut handle = |line: String, ready: &mut usize| {
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("ready") => *ready += 1,
            Some("arrival") => {
                if let (Some(id), Some(at)) =
                    (parts.next(), parts.next().and_then(|v| v.parse().ok()))
                {
                    arrivals.push((id.to_owned(), at));
                }
            }
            Some(_) => problems.push(line),
            None => {}
        }
    };
    while ready < clients {
        let line = lines_rx
            .recv()
            .expect("every watcher process reports ready");
        handle(line, &mut ready);
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_with = memory_kib(server.id(), "VmRSS");

    let cpu = |pids: &[u32]| pids.iter().map(|pid| cpu_ms(*pid)).sum::<u64>();
    let child_pids: Vec<u32> = children.iter().map(Child::id).collect();
    let (server_cpu, clients_cpu) = (cpu_ms(server.id()), cpu(&child_pids));
    let mut sent_at = std::collections::HashMap::new();
    runtime.block_on(async {
        for id in &ids {
            let sent = now_micros();
            let request = RevokeTokenRequest {
                id: id.clone(),
                ..Default::default()
            };
            tokens
                .revoke_token(authorized(request, &operator))
                .await
                .expect("revoked");
            sent_at.insert(id.clone(), (sent, now_micros()));
            tokio::time::sleep(gap).await;
        }
    });
    for line in lines_rx {
        handle(line, &mut ready);
    }
    for child in &mut children {
        let _ = child.wait();
    }
    // The watcher processes' CPU time, now final: once waited for, it is added to this
    // process's children's total.
    let server_cpu = cpu_ms(server.id()).saturating_sub(server_cpu);
    let clients_cpu = children_cpu_ms().saturating_sub(clients_cpu);
    let rss_peak = memory_kib(server.id(), "VmHWM");

    let mut from_response = Vec::new();
    let mut from_request = Vec::new();
    for (id, at) in &arrivals {
        if let Some((sent, answered)) = sent_at.get(id) {
            from_response.push((at - answered) as f64 / 1e3);
            from_request.push((at - sent) as f64 / 1e3);
        }
    }
    from_response.sort_by(f64::total_cmp);
    from_request.sort_by(f64::total_cmp);
    let expected = watchers * rounds;
    println!(
        "{watchers} watchers (one connection each, {clients} client processes), {rounds} revocations {} ms apart: {} of {expected} deliveries{}",
        gap.as_millis(),
        from_response.len(),
        if from_response.len() == expected {
            ""
        } else {
            " (MISSING SOME)"
        }
    );
    for problem in &problems {
        println!("  watcher problem: {problem}");
    }
    for (name, values) in [
        ("from the RevokeToken response", &from_response),
        ("from the RevokeToken request", &from_request),
    ] {
        if values.is_empty() {
            continue;
        }
        println!(
            "  event arrival {name}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            percentile(values, 0.5),
            percentile(values, 0.99),
            percentile(values, 1.0)
        );
    }
    println!(
        "  server RSS: {:.1} MiB before the watchers, {:.1} MiB with them ({:.1} KiB per watcher), peak {:.1} MiB",
        rss_before as f64 / 1024.0,
        rss_with as f64 / 1024.0,
        rss_with.saturating_sub(rss_before) as f64 / watchers.max(1) as f64,
        rss_peak as f64 / 1024.0,
    );
    println!(
        "  CPU during the revocations: server {server_cpu} ms, watcher processes {clients_cpu} ms"
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// The watcher role: `PROPAGATION_STREAMS` streams, one connection each; prints `ready` once
/// all follow, then `arrival <token id> <unix µs>` for every event each stream receives,
/// until each has `PROPAGATION_EVENTS` (or 60 s pass).
fn watch(addr: &str) {
    let token = std::env::var("PROPAGATION_TOKEN").expect("PROPAGATION_TOKEN");
    let streams = env_or("PROPAGATION_STREAMS", 0);
    let events = env_or("PROPAGATION_EVENTS", 0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let uri = format!("http://{addr}");
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(streams.max(1));
        let mut tasks = Vec::new();
        for _ in 0..streams {
            // Connected one after the other: thousands of simultaneous connects overflow the
            // listen backlog, which says nothing about propagation.
            let channel = Endpoint::from_shared(uri.clone())
                .expect("uri")
                .connect()
                .await
                .expect("watcher connects");
            let token = token.clone();
            let ready_tx = ready_tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = TokenServiceClient::new(channel);
                let request = WatchRevocationsRequest {
                    after_revision: 0,
                    account_id: String::new(),
                    start_from_now: true,
                };
                let mut stream = client
                    .watch_revocations(authorized(request, &token))
                    .await
                    .expect("watch")
                    .into_inner();
                let mut arrivals = Vec::with_capacity(events);
                let mut following = false;
                while arrivals.len() < events {
                    let message = match stream.message().await {
                        Ok(Some(response)) => response.message,
                        Ok(None) => return (arrivals, Some("the stream ended".to_owned())),
                        Err(status) => {
                            return (
                                arrivals,
                                Some(format!("{:?}: {}", status.code(), status.message())),
                            );
                        }
                    };
                    let at = now_micros();
                    match message {
                        Some(Message::Checkpoint(_)) if !following => {
                            following = true;
                            let _ = ready_tx.send(()).await;
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
                (arrivals, None)
            }));
        }
        drop(ready_tx);
        for _ in 0..streams {
            ready_rx.recv().await.expect("every stream follows");
        }
        println!("ready");
        let mut out = String::new();
        for task in tasks {
            match tokio::time::timeout(Duration::from_secs(60), task).await {
                Ok(Ok((arrivals, problem))) => {
                    for (id, at) in arrivals {
                        out.push_str(&format!("arrival {id} {at}\n"));
                    }
                    if let Some(problem) = problem {
                        out.push_str(&format!("problem {problem}\n"));
                    }
                }
                Ok(Err(error)) => {
                    out.push_str(&format!("problem the watcher task failed: {error}\n"))
                }
                Err(_) => out.push_str("problem a watcher did not get every event within 60 s\n"),
            }
        }
        print!("{out}");
    });
}
