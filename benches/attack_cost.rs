//! Load tool: what a stranger can make the database do. The server binary runs on a fresh
//! PostgreSQL database (the suite's throwaway cluster, or `TOKEN_AUTHORITY_TEST_POSTGRES_URL`)
//! and is attacked, from one address, with:
//!
//! - the same forged (well-formed, unknown) token as the credential of every call;
//! - a new forged token as the credential of every call;
//! - a new forged token in every VerifyToken, sent with a valid `tokens.verify` credential
//!   (what a gateway forwards from its own attackers);
//! - a valid token with a far-future `min_revision`.
//!
//! For each it prints the calls answered per second by gRPC code and the database
//! transactions per second they caused (PostgreSQL's own count, `pg_stat_database`, less the
//! server's idle background work measured first): a count that works on any version of the
//! server, so that the same tool measures before and after a change.
//!
//! Run with `cargo bench --bench attack_cost`. Tunables: `ATTACK_SECONDS` (per scenario,
//! default 5), `ATTACK_IN_FLIGHT` (default 32), `ATTACK_SERVER_ARGS` (extra server flags,
//! space separated).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

use token_authority::domain::TokenSecret;
use token_authority::proto::admin_service_client::AdminServiceClient;
use token_authority::proto::token_service_client::TokenServiceClient;
use token_authority::proto::{GetAccountRequest, VerifyTokenRequest};

/// How long the statistics of PostgreSQL's backends take to be flushed (at most every
/// second while busy, 10 s when idle).
const STATS_FLUSH: Duration = Duration::from_secs(11);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Starts the server binary on `database_url`; returns it, its address and the owner token.
fn start_server(dir: &std::path::Path, database_url: &str) -> (Child, String, String) {
    let token_file = dir.join("owner.token");
    let extra = std::env::var("ATTACK_SERVER_ARGS").unwrap_or_default();
    let mut child = Command::new(env!("CARGO_BIN_EXE_token-authority"))
        .args([
            "serve",
            "--listen-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "off",
            "--log-format",
            "json",
            "--log-level",
            "warn,token_authority=info",
        ])
        .args(["--database-url", database_url])
        .arg("--bootstrap-token-file")
        .arg(&token_file)
        .args(extra.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("the server logs").expect("a line");
        if line.contains("token authority listening") {
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            break value["fields"]["addr"]
                .as_str()
                .or_else(|| value["addr"].as_str())
                .expect("addr")
                .to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let owner = std::fs::read_to_string(token_file)
        .expect("owner token")
        .trim()
        .to_owned();
    (child, addr, owner)
}

/// The database's committed and rolled-back transactions so far.
async fn transactions(database_url: &str) -> i64 {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(database_url)
        .await
        .expect("statistics connection");
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut db)
    .await
    .expect("statistics")
}

/// What one scenario does per call.
#[derive(Clone, Copy)]
enum Attack {
    RepeatedCredential,
    DistinctCredentials,
    DistinctVerified,
    FarFutureRevision,
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::RepeatedCredential => "same forged credential",
            Attack::DistinctCredentials => "new forged credential each call",
            Attack::DistinctVerified => "new forged token in VerifyToken",
            Attack::FarFutureRevision => "far-future min_revision",
        }
    }
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("metadata");
    request.metadata_mut().insert("authorization", value);
    request
}

/// One call of `attack`; returns its gRPC code.
async fn call(attack: Attack, channel: Channel, owner: &str, forged: &str) -> Code {
    let result = match attack {
        Attack::RepeatedCredential => AdminServiceClient::new(channel)
            .get_account(bearer(GetAccountRequest::default(), forged))
            .await
            .map(|_| ()),
        Attack::DistinctCredentials => AdminServiceClient::new(channel)
            .get_account(bearer(
                GetAccountRequest::default(),
                TokenSecret::generate().expose(),
            ))
            .await
            .map(|_| ()),
        Attack::DistinctVerified => TokenServiceClient::new(channel)
            .verify_token(bearer(
                VerifyTokenRequest {
                    token: TokenSecret::generate().expose().to_owned(),
                    ..Default::default()
                },
                owner,
            ))
            .await
            .map(|_| ()),
        Attack::FarFutureRevision => TokenServiceClient::new(channel)
            .verify_token(bearer(
                VerifyTokenRequest {
                    token: owner.to_owned(),
                    min_revision: u64::MAX / 2,
                    ..Default::default()
                },
                owner,
            ))
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn main() {
    let seconds = env_or("ATTACK_SECONDS", 5);
    let in_flight = env_or("ATTACK_IN_FLIGHT", 32) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let database_url = match std::env::var("TOKEN_AUTHORITY_TEST_POSTGRES_URL") {
            Ok(url) => url,
            Err(_) => pg_cluster::fresh_database().await,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut child, addr, owner) = start_server(dir.path(), &database_url);
        let mut channels = Vec::new();
        for _ in 0..4 {
            channels.push(
                Channel::from_shared(format!("http://{addr}"))
                    .expect("uri")
                    .connect()
                    .await
                    .expect("connects"),
            );
        }
        // The owner's credential is cached from here on.
        call(Attack::FarFutureRevision, channels[0].clone(), &owner, "").await;

        // The server's own background work (health probe, event follower, last use).
        let before = transactions(&database_url).await;
        tokio::time::sleep(Duration::from_secs(seconds) + STATS_FLUSH).await;
        let idle_per_second = (transactions(&database_url).await - before) as f64
            / (Duration::from_secs(seconds) + STATS_FLUSH).as_secs_f64();
        println!(
            "attack cost, {in_flight} calls in flight from one address, {seconds} s each; idle server: {idle_per_second:.1} database transactions/s"
        );
        println!(
            "{:<34} {:>10} {:>12}  answers",
            "attack", "calls/s", "db xacts/s"
        );
        for attack in [
            Attack::RepeatedCredential,
            Attack::DistinctCredentials,
            Attack::DistinctVerified,
            Attack::FarFutureRevision,
        ] {
            let forged = TokenSecret::generate().expose().to_owned();
            let codes = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
            let before = transactions(&database_url).await;
            let started = Instant::now();
            let deadline = started + Duration::from_secs(seconds);
            let mut workers = Vec::new();
            for i in 0..in_flight {
                let channel = channels[i % channels.len()].clone();
                let (owner, forged, codes) = (owner.clone(), forged.clone(), codes.clone());
                workers.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let code = call(attack, channel.clone(), &owner, &forged).await;
                        *codes
                            .lock()
                            .unwrap()
                            .entry(format!("{code:?}"))
                            .or_default() += 1;
                    }
                }));
            }
            for worker in workers {
                worker.await.expect("worker");
            }
            let elapsed = started.elapsed();
            tokio::time::sleep(STATS_FLUSH).await;
            let caused = (transactions(&database_url).await - before) as f64
                - idle_per_second * (elapsed + STATS_FLUSH).as_secs_f64();
            let codes = codes.lock().unwrap().clone();
            let calls: u64 = codes.values().sum();
            let answers: Vec<String> = codes
                .iter()
                .map(|(code, count)| format!("{code} {:.0}/s", *count as f64 / elapsed.as_secs_f64()))
                .collect();
            println!(
                "{:<34} {:>10.0} {:>12.1}  {}",
                attack.name(),
                calls as f64 / elapsed.as_secs_f64(),
                caused.max(0.0) / elapsed.as_secs_f64(),
                answers.join(", ")
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    });
}
