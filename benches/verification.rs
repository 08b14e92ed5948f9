//! Criterion benchmarks of the verification path, from the cheapest step to the whole warm
//! in-process verification:
//!
//! - `token/parse`: shape and CRC32 checksum of a presented token (what rejects garbage
//!   without storage);
//! - `token/hash`: SHA-256 of the token (how it is looked up);
//! - `authority/verify_warm`: `Authority::verify_token` for a token already in the cache,
//!   caller check included, no network and no database;
//! - `store/verification_snapshot`: the read a cold verification makes (the token, its
//!   owner and account by the secret's hash, and the revision), on SQLite: the store's
//!   shared SQL on its most frequent path;
//! - `client/verify_hit`: the client library's `CachingVerifier::verify` answering from its
//!   cache (a real server runs in process to fill it and feed its watch stream);
//! - `client/verify_locally_hit`: the same hit through `verify_locally`, as the gateway edge
//!   asks first (no async call around it).
//!
//! Run with `cargo bench --bench verification`; with `BENCH_METRICS=1` the Prometheus
//! recorder is installed first, as in the server binary, to measure what recording costs.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use token_authority::authority::{Authority, bootstrap};
use token_authority::configuration::Settings;
use token_authority::domain::{PermissionSet, TokenSecret};
use token_authority::store::Store;
use token_authority::store::sqlite::SqliteStore;

fn token_format(c: &mut Criterion) {
    let token = TokenSecret::generate();
    let raw = format!("Bearer {}", token.expose());
    c.bench_function("token/parse", |b| {
        b.iter(|| TokenSecret::parse(black_box(&raw)))
    });
    c.bench_function("token/hash", |b| b.iter(|| black_box(&token).hash()));
    c.bench_function("token/generate", |b| b.iter(TokenSecret::generate));
}

/// A migrated SQLite store at `url` after a first start, and the owner token it printed.
async fn bootstrapped_store(url: &str) -> (Arc<dyn Store>, TokenSecret) {
    let store = SqliteStore::connect(url, 2).await.expect("store");
    store.migrate().await.expect("migrations");
    let store: Arc<dyn Store> = Arc::new(store);
    let secret = bootstrap(store.as_ref())
        .await
        .expect("bootstrap")
        .expect("new database");
    (store, secret)
}

fn store_read(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (store, secret) = runtime.block_on(bootstrapped_store(&url));
    let hash = secret.hash();
    c.bench_function("store/verification_snapshot", |b| {
        b.to_async(&runtime).iter(|| async {
            let (snapshot, revision) = store
                .verification_snapshot(black_box(&hash))
                .await
                .expect("reads")
                .expect("the token exists");
            black_box((snapshot, revision))
        })
    });
}

fn warm_verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (authority, caller, secret) = runtime.block_on(async {
        // BENCH_METRICS=1: record metrics as the server binary does, to measure their cost.
        if std::env::var("BENCH_METRICS").is_ok_and(|v| v == "1") {
            let addr = "127.0.0.1:0".parse().expect("address");
            let endpoint = token_authority::startup::metrics_endpoint::install(addr)
                .await
                .expect("metrics");
            tokio::spawn(endpoint.serve(std::time::Duration::from_secs(10)));
        }
        let (store, secret) = bootstrapped_store(&url).await;
        let authority = Arc::new(
            Authority::new(store, Settings::defaults().authority())
                .await
                .expect("authority"),
        );
        // As in the server: the cache is trusted while the event follower keeps up.
        tokio::spawn(
            authority
                .clone()
                .follow_events(std::time::Duration::from_secs(1)),
        );
        let caller = authority
            .authenticate(Some(secret.expose()), None)
            .await
            .expect("caller");
        (authority, caller, secret)
    });
    let required = PermissionSet::parse(&["tokens.read"], "required").expect("scopes");
    let presented = secret.expose().to_owned();
    c.bench_function("authority/verify_warm", |b| {
        b.to_async(&runtime).iter(|| async {
            let outcome = authority
                .verify_token(&caller, black_box(&presented), &required, None, 0)
                .await
                .expect("verifies");
            black_box(outcome.verdict.code)
        })
    });
}

fn client_cache_hit(c: &mut Criterion) {
    use token_authority::client::{CachingVerifier, Requirements, VerifierConfig};
    use token_authority::startup::Application;

    // The server on its own runtime, so that the measured thread only runs the client.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_database(format!(
        "sqlite://{}",
        dir.path().join("client.db").display()
    ));
    settings.listen_addr = "127.0.0.1:0".parse().expect("address");
    settings.console_addr = token_authority::configuration::OptionalAddr::Off;
    let (addr, token) = server_runtime.block_on(async {
        let mut app = Application::build(settings).await.expect("server starts");
        let token = app
            .take_bootstrap_token()
            .expect("new database")
            .expose()
            .to_owned();
        let addr = app.local_addr();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        (addr, token)
    });

    // The verifier's watch task runs on the server's runtime too, so that it stays live
    // while the synchronous benchmark below holds the measured thread.
    let verifier = server_runtime.block_on(async {
        let verifier =
            CachingVerifier::new(VerifierConfig::new(format!("http://{addr}"), token.clone()))
                .expect("verifier");
        while !verifier.is_fresh() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(
            verifier
                .verify(&token, &[])
                .await
                .expect("answer")
                .is_valid()
        );
        verifier
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    c.bench_function("client/verify_hit", |b| {
        b.to_async(&runtime).iter(|| async {
            let answer = verifier
                .verify(black_box(&token), &["tokens.read"])
                .await
                .expect("answer");
            black_box(answer.code)
        })
    });
    // What the gateway edge asks first: the same hit without the async call around it.
    let requirements = Requirements::scopes(&["tokens.read"]);
    c.bench_function("client/verify_locally_hit", |b| {
        b.iter(|| {
            let answer = verifier
                .verify_locally(black_box(&token), &requirements)
                .expect("a hit");
            black_box(answer.code)
        })
    });
    drop(server_runtime);
}

criterion_group!(
    benches,
    token_format,
    store_read,
    warm_verification,
    client_cache_hit
);
criterion_main!(benches);
