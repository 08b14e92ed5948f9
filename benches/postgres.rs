//! PostgreSQL figures (issue 4), each against the release server binary:
//!
//! 1. Cold VerifyToken (cache miss) latency with `TOKENS` tokens stored (default 1,000,000),
//!    on SQLite and on PostgreSQL: tokens are written straight into the database in bulk,
//!    then `SAMPLES` distinct ones (default 2,000) are verified once each, one at a time.
//! 2. Cross-replica propagation: two replicas on one PostgreSQL database; `ROUNDS` tokens
//!    revoked on A, timed to their arrival at 10 watchers of B.
//! 3. Warm VerifyToken through a replica (h2load, 64 in flight) against the same lookup as a
//!    direct `SELECT … WHERE hash = $1` on the same PostgreSQL (pgbench, 64 clients).
//!
//! Needs Debian's postgresql package (a throwaway cluster is started as in the tests) and,
//! for part 3, h2load (nghttp2-client). Run with `cargo bench --bench postgres`.

use pg_cluster as postgres;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, QueryBuilder};
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use token_authority::domain::{TokenId, TokenSecret};
use token_authority::proto::invalidation_event::Target;
use token_authority::proto::token_service_client::TokenServiceClient;
use token_authority::proto::watch_revocations_response::Message;
use token_authority::proto::{
    CreateTokenRequest, RevokeTokenRequest, VerifyTokenRequest, WatchRevocationsRequest,
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts the server binary on `database_url`; returns it and its address.
fn serve(database_url: &str, token_file: Option<&std::path::Path>) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_token-authority"));
    command.args([
        "serve",
        "--listen-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--log-level",
        "info",
    ]);
    command.args([
        "--database-url",
        database_url,
        "--database-max-connections",
        "16",
    ]);
    if let Some(file) = token_file {
        command.arg("--bootstrap-token-file").arg(file);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("server log").expect("log line");
        if line.contains("token authority listening") {
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log");
            break value["addr"].as_str().expect("addr").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn authorized<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("metadata");
    request.metadata_mut().insert("authorization", value);
    request
}

fn percentiles(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// Defines `$name(url, count, samples)`: writes `count` tokens owned by the operator straight
/// into the database, in bulk, and returns a sample of their secrets.
macro_rules! seeder {
    ($name:ident, $database:ty, $connection:ty) => {
async fn $name(url: &str, count: usize, samples: usize) -> Vec<String> {
    let mut db = <$connection>::connect(url).await.expect("connects");
    let (owner, account): (String, String) =
        sqlx::query_as("SELECT id, account_id FROM principals LIMIT 1").fetch_one(&mut db).await.expect("owner");
    let mut kept = Vec::with_capacity(samples);
    const BATCH: usize = 500;
    let started = Instant::now();
    for batch in 0..count.div_ceil(BATCH) {
        let rows: Vec<(TokenId, TokenSecret)> =
            (0..BATCH.min(count - batch * BATCH)).map(|_| (TokenId::generate(), TokenSecret::generate())).collect();
        for (_, secret) in rows.iter().take(samples.saturating_sub(kept.len()).min(2)) {
            kept.push(secret.expose().to_owned());
        }
        let now = token_authority::domain::now().timestamp_micros();
        let mut tokens = QueryBuilder::<$database>::new(
            "INSERT INTO tokens (id, account_id, owner_id, name, description, scopes, labels, api_version, state, \
             created_at, created_by, updated_at, display_hint, version) ",
        );
        tokens.push_values(&rows, |mut row, (id, secret)| {
            row.push_bind(id.to_string())
                .push_bind(account.clone())
                .push_bind(owner.clone())
                .push_bind("seeded".to_owned())
                .push_bind(String::new())
                .push_bind("[]".to_owned())
                .push_bind("{}".to_owned())
                .push_bind(String::new())
                .push_bind("active".to_owned())
                .push_bind(now)
                .push_bind(owner.clone())
                .push_bind(now)
                .push_bind(secret.display_hint())
                .push_bind(1i64);
        });
        tokens.build().execute(&mut db).await.expect("tokens inserted");
        let mut secrets = QueryBuilder::<$database>::new("INSERT INTO token_secrets (hash, token_id) ");
        secrets.push_values(&rows, |mut row, (id, secret)| {
            row.push_bind(secret.hash().as_bytes().to_vec()).push_bind(id.to_string());
        });
        secrets.build().execute(&mut db).await.expect("secrets inserted");
    }
    eprintln!("  seeded {count} tokens in {:.1} s", started.elapsed().as_secs_f64());
    kept
}
    };
}

seeder!(seed_sqlite, sqlx::Sqlite, sqlx::SqliteConnection);
seeder!(seed_postgres, sqlx::Postgres, sqlx::PgConnection);

/// Verifies each of `secrets` once, one at a time; returns the latencies in milliseconds.
async fn cold_latencies(addr: &str, operator: &str, secrets: &[String]) -> Vec<f64> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut client = TokenServiceClient::new(channel);
    // Warm the caller's own credential first.
    client
        .verify_token(authorized(
            VerifyTokenRequest {
                token: operator.to_owned(),
                required_scopes: vec![],
                min_revision: 0,
                client_address: String::new(),
            },
            operator,
        ))
        .await
        .expect("verify");
    let mut latencies = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let started = Instant::now();
        let answer = client
            .verify_token(authorized(
                VerifyTokenRequest {
                    token: secret.clone(),
                    required_scopes: vec![],
                    min_revision: 0,
                    client_address: String::new(),
                },
                operator,
            ))
            .await
            .expect("verify")
            .into_inner();
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(answer.valid, "a seeded token verifies");
    }
    latencies
}

fn main() {
    let tokens = env_or("TOKENS", 1_000_000);
    let samples = env_or("SAMPLES", 2_000);
    let rounds = env_or("ROUNDS", 50);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");

        // 1. Cold verification with many tokens stored, on both stores.
        println!("cold VerifyToken (cache miss), {tokens} tokens stored, {samples} distinct tokens one at a time:");
        let sqlite_url = format!("sqlite://{}", dir.path().join("cold.db").display());
        let token_file = dir.path().join("sqlite.token");
        let (mut server, addr) = serve(&sqlite_url, Some(&token_file));
        let operator = std::fs::read_to_string(&token_file).expect("token").trim().to_owned();
        let secrets = seed_sqlite(&sqlite_url, tokens, samples).await;
        println!("  SQLite:     {}", percentiles(cold_latencies(&addr, &operator, &secrets).await));
        let _ = server.kill();

        let pg_url = postgres::fresh_database().await;
        let token_file = dir.path().join("pg.token");
        let (a, a_addr) = serve(&pg_url, Some(&token_file));
        let operator = std::fs::read_to_string(&token_file).expect("token").trim().to_owned();
        let secrets = seed_postgres(&pg_url, tokens, samples).await;
        {
            let mut db = sqlx::PgConnection::connect(&pg_url).await.expect("connects");
            sqlx::query("ANALYZE").execute(&mut db).await.expect("analyze");
        }
        println!("  PostgreSQL: {}", percentiles(cold_latencies(&a_addr, &operator, &secrets).await));

        // 2. Cross-replica propagation.
        let (b, b_addr) = serve(&pg_url, None);
        let a_channel = Channel::from_shared(format!("http://{a_addr}")).expect("uri").connect().await.expect("connects");
        let mut on_a = TokenServiceClient::new(a_channel);
        let mut victims = Vec::new();
        for i in 0..rounds {
            let created = on_a
                .create_token(authorized(CreateTokenRequest { name: format!("victim {i}"), ..Default::default() }, &operator))
                .await
                .expect("created")
                .into_inner();
            victims.push(created.token.expect("token").id);
        }
        let mut watchers = Vec::new();
        for _ in 0..10 {
            let channel = Channel::from_shared(format!("http://{b_addr}")).expect("uri").connect().await.expect("connects");
            let mut stream = TokenServiceClient::new(channel)
                .watch_revocations(authorized(WatchRevocationsRequest { after_revision: 0, account_id: String::new(), start_from_now: true }, &operator))
                .await
                .expect("watch")
                .into_inner();
            let _ = stream.message().await.expect("checkpoint");
            watchers.push(tokio::spawn(async move {
                let mut arrivals = Vec::new();
                while arrivals.len() < rounds {
                    if let Some(Message::Batch(batch)) = stream.message().await.expect("stream").expect("open").message {
                        for event in batch.events {
                            if let Some(Target::TokenId(id)) = event.target {
                                arrivals.push((id, Instant::now()));
                            }
                        }
                    }
                }
                arrivals
            }));
        }
        let mut answered = std::collections::HashMap::new();
        for id in &victims {
            on_a.revoke_token(authorized(RevokeTokenRequest { id: id.clone(), ..Default::default() }, &operator))
                .await
                .expect("revoked");
            answered.insert(id.clone(), Instant::now());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut delays = Vec::new();
        for watcher in watchers {
            for (id, at) in watcher.await.expect("watcher") {
                let sent = answered[&id];
                delays.push(if at >= sent {
                    at.duration_since(sent).as_secs_f64() * 1e3
                } else {
                    -(sent.duration_since(at).as_secs_f64() * 1e3)
                });
            }
        }
        println!("cross-replica propagation (revoke on A → event at 10 watchers of B), {rounds} revocations:");
        println!("  from A's RevokeToken response: {}", percentiles(delays));

        // 3. Warm VerifyToken through B vs the same lookup straight from PostgreSQL.
        let secret = &secrets[0];
        let hash = TokenSecret::parse(secret).expect("token").hash();
        let frame = {
            let body = prost::Message::encode_to_vec(&VerifyTokenRequest { token: secret.clone(), required_scopes: vec![], min_revision: 0, client_address: String::new() });
            let mut frame = vec![0u8];
            frame.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
            frame.extend_from_slice(&body);
            frame
        };
        let body_file = dir.path().join("verify.bin");
        std::fs::write(&body_file, frame).expect("body");
        let h2load = Command::new("h2load")
            .args(["-n", "300000", "-c", "4", "-m", "16", "-t", "1"])
            .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
            .arg("-H")
            .arg(format!("authorization: Bearer {operator}"))
            .arg("-d")
            .arg(&body_file)
            .arg(format!("http://{b_addr}/tokenauthority.v1.TokenService/VerifyToken"))
            .output();
        let ours = h2load.ok().and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines().find(|l| l.starts_with("finished in"))?.split(", ").nth(1)?.trim_end_matches(" req/s").parse::<f64>().ok()
        });
        let script = dir.path().join("lookup.sql");
        let hex: String = hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&script, format!("SELECT token_id FROM token_secrets WHERE hash = '\\x{hex}'::bytea;\n")).expect("script");
        let pgbench = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|mut versions| versions.next())
            .and_then(|v| v.ok())
            .map(|v| v.path().join("bin/pgbench"))
            .unwrap_or_else(|| "pgbench".into());
        let output = Command::new(pgbench)
            .args(["-n", "-c", "64", "-j", "2", "-T", "10", "-M", "prepared", "-f"])
            .arg(&script)
            .arg(&pg_url)
            .output()
            .expect("pgbench runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let direct = text
            .lines()
            .find(|l| l.starts_with("tps ="))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse::<f64>().ok());
        println!("warm lookups, 64 in flight:");
        match (ours, direct) {
            (Some(ours), Some(direct)) => println!(
                "  VerifyToken via replica B (h2load): {ours:.0}/s; direct SELECT (pgbench): {direct:.0}/s; ratio {:.1}×",
                ours / direct
            ),
            _ => println!("  h2load: {ours:?}/s, pgbench: {direct:?}/s (is nghttp2-client installed?)\n{text}"),
        }
        for mut child in [a, b] {
            let _ = child.kill();
            let _ = child.wait();
        }
    });
}
