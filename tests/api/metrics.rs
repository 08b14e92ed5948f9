//! The Prometheus endpoint of the real binary: after known traffic, the counts by name and
//! label, read with an exposition-format parser; requests to made-up paths add no series.

use std::collections::HashMap;
use std::io::{Read, Write};

use tonic::Code;
use tonic::transport::Channel;

use token_authority::domain::TokenSecret;
use token_authority::proto::token_service_client::TokenServiceClient;
use token_authority::proto::watch_revocations_response::Message;
use token_authority::proto::{
    CreateTokenRequest, DisableTokenRequest, EnableTokenRequest, RevokeTokenRequest,
    VerifyTokenRequest, WatchRevocationsRequest, WatchRevocationsResponse,
};

use crate::helpers::{serve_with_metrics, terminate};

/// `GET path` over plain HTTP/1.1; returns the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("the metrics port accepts");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The value of the sample of `name` whose labels include every pair of `labels`, summed
/// over the samples that match (0 when none does).
pub(crate) fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.last().map(|b| b.count).unwrap_or_default()
            }
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

/// Scrapes until `ready` holds of a scrape (state gauges are sampled every second, and a
/// server learns of a client's goings a moment late), for five seconds at most; returns the
/// last scrape either way, for the assertions to explain.
async fn scrape_when(
    addr: &str,
    ready: impl Fn(&prometheus_parse::Scrape) -> bool,
) -> prometheus_parse::Scrape {
    let mut scrape = scrape_metrics(addr);
    for _ in 0..50 {
        if ready(&scrape) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        scrape = scrape_metrics(addr);
    }
    scrape
}

pub(crate) fn scrape_metrics(addr: &str) -> prometheus_parse::Scrape {
    let (status, body) = http_get(addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid exposition format")
}

async fn verify(
    client: &mut TokenServiceClient<Channel>,
    credential: Option<&str>,
    token: &str,
) -> Result<tonic::Response<token_authority::proto::VerifyTokenResponse>, tonic::Status> {
    let message = VerifyTokenRequest {
        token: token.to_owned(),
        required_scopes: vec![],
        min_revision: 0,
        client_address: String::new(),
    };
    let request = match credential {
        Some(credential) => authorized(credential, message),
        None => tonic::Request::new(message),
    };
    client.verify_token(request).await
}

/// CreateToken of a token named `name` for `owner_id`, as the holder of `credential`.
fn create_request(
    credential: &str,
    owner_id: &str,
    name: &str,
) -> tonic::Request<CreateTokenRequest> {
    let message = CreateTokenRequest {
        owner_id: owner_id.to_owned(),
        name: name.to_owned(),
        ..Default::default()
    };
    authorized(credential, message)
}

/// `message` as a request presenting `credential`.
fn authorized<T>(credential: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {credential}").parse().expect("metadata"),
    );
    request
}

/// The binary on a fresh database with its metrics endpoint, a client, and the bootstrap
/// owner (whose token has been verified once: that answer came from the cache, warmed by
/// authenticating the very call).
pub(crate) struct Metered {
    /// Keep it bound (`_dir`, not `_`): dropping it deletes the database under the server.
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) database_url: String,
    pub(crate) child: std::process::Child,
    /// The gRPC address.
    pub(crate) addr: String,
    pub(crate) metrics_addr: String,
    pub(crate) channel: Channel,
    pub(crate) client: TokenServiceClient<Channel>,
    pub(crate) owner: String,
    pub(crate) owner_id: String,
}

impl Metered {
    async fn start() -> Metered {
        Self::start_with(&[]).await
    }

    /// Starts the binary on a fresh SQLite file with `extra` arguments.
    async fn start_with(extra: &[&str]) -> Metered {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("metrics.db").display());
        Self::start_on(dir, database_url, extra).await
    }

    /// Starts the binary on `database_url` with `extra` arguments; `dir` holds its files.
    pub(crate) async fn start_on(
        dir: tempfile::TempDir,
        database_url: String,
        extra: &[&str],
    ) -> Metered {
        let token_file = dir.path().join("owner.token");
        let mut args = vec!["--bootstrap-token-file", token_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (child, addr, metrics_addr) = serve_with_metrics(&database_url, &args);
        let owner = std::fs::read_to_string(&token_file)
            .unwrap()
            .trim()
            .to_owned();
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = TokenServiceClient::new(channel.clone());
        let owner_id = verify(&mut client, Some(&owner), &owner)
            .await
            .unwrap()
            .into_inner()
            .owner
            .expect("an owner")
            .id;
        Metered {
            _dir: dir,
            database_url,
            child,
            addr,
            metrics_addr,
            channel,
            client,
            owner,
            owner_id,
        }
    }
}

// Multi-threaded: the test blocks on the child process (see binary.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_counts_rpcs_and_verifications_by_name_and_label() {
    let Metered {
        child,
        metrics_addr,
        channel,
        mut client,
        owner,
        owner_id,
        _dir,
        ..
    } = Metered::start().await;
    let owner = owner.as_str();
    let create = create_request(owner, &owner_id, "metered");
    // A token nobody has presented yet: its first verification reads the store.
    let secret = client
        .create_token(create)
        .await
        .unwrap()
        .into_inner()
        .secret;
    for _ in 0..3 {
        assert!(
            verify(&mut client, Some(owner), &secret)
                .await
                .unwrap()
                .into_inner()
                .valid
        );
    }
    for _ in 0..2 {
        verify(&mut client, Some(owner), "not a token")
            .await
            .unwrap();
    }
    let unknown_token = TokenSecret::generate();
    verify(&mut client, Some(owner), unknown_token.expose())
        .await
        .unwrap();
    let refused = verify(&mut client, None, &secret).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    // Made-up methods are answered UNIMPLEMENTED and counted under `unknown`.
    for i in 0..3 {
        let path = format!("/attacker.Service{i}/Method{i}");
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<VerifyTokenRequest, VerifyTokenRequest>::default();
        let answer = grpc
            .unary(
                tonic::Request::new(VerifyTokenRequest::default()),
                path.parse().unwrap(),
                codec,
            )
            .await
            .unwrap_err();
        assert_eq!(answer.code(), Code::Unimplemented);
    }

    // A change that writes an invalidation event, so that the revision moves.
    let id = verify(&mut client, Some(owner), &secret)
        .await
        .unwrap()
        .into_inner()
        .token_id;
    let revoke = authorized(
        owner,
        RevokeTokenRequest {
            id,
            ..Default::default()
        },
    );
    client.revoke_token(revoke).await.unwrap();
    let revision = verify(&mut client, Some(owner), owner)
        .await
        .unwrap()
        .into_inner()
        .revision;
    // State gauges are sampled every second: wait for a sample taken after the change.
    let scrape = scrape_when(&metrics_addr, |scrape| {
        value(scrape, "token_authority_revision_applied", &[]) == revision as f64
            && value(scrape, "token_authority_revision_current", &[]) == revision as f64
    })
    .await;
    assert!(revision > 0, "the revocation wrote an event");
    let applied = value(&scrape, "token_authority_revision_applied", &[]);
    assert_eq!(applied, revision as f64, "the revision answers carry");
    let current = value(&scrape, "token_authority_revision_current", &[]);
    assert_eq!(current, revision as f64, "the database's newest revision");
    let lag = value(&scrape, "token_authority_event_lag_seconds", &[]);
    assert!((0.0..5.0).contains(&lag), "lag {lag}");
    let cached = value(&scrape, "token_authority_verification_cache_entries", &[]);
    assert!(cached <= 2.0, "at most the two tokens verified: {cached}");
    let verifications = "token_authority_verifications_total";
    let counts: HashMap<(&str, &str), f64> = [
        ("VALID", "store"),
        ("VALID", "cache"),
        ("MALFORMED", "none"),
        ("NOT_FOUND", "store"),
    ]
    .into_iter()
    .map(|(code, path)| {
        let labels = [("code", code), ("path", path)];
        ((code, path), value(&scrape, verifications, &labels))
    })
    .collect();
    // The owner's own token was warmed by authenticating the first call.
    assert_eq!(counts[&("VALID", "store")], 1.0, "{counts:?}");
    assert_eq!(counts[&("VALID", "cache")], 5.0, "{counts:?}");
    assert_eq!(counts[&("MALFORMED", "none")], 2.0, "{counts:?}");
    // An unknown (well-formed) token costs a database read: that is what `store` shows.
    assert_eq!(counts[&("NOT_FOUND", "store")], 1.0, "{counts:?}");

    let verify_token = [
        ("grpc_service", "tokenauthority.v1.TokenService"),
        ("grpc_method", "VerifyToken"),
        ("grpc_type", "unary"),
    ];
    let with_code = |code| {
        let mut labels = verify_token.to_vec();
        labels.push(("grpc_code", code));
        value(&scrape, "grpc_server_handled_total", &labels)
    };
    assert_eq!(
        value(&scrape, "grpc_server_started_total", &verify_token),
        10.0
    );
    assert_eq!(with_code("OK"), 9.0);
    assert_eq!(with_code("Unauthenticated"), 1.0);
    assert_eq!(
        value(&scrape, "grpc_server_handling_seconds_count", &verify_token),
        10.0
    );
    let unknown = [("grpc_service", "unknown"), ("grpc_code", "Unimplemented")];
    assert_eq!(value(&scrape, "grpc_server_handled_total", &unknown), 3.0);
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| !format!("{:?}", s.labels).contains("attacker")),
        "a client's path never becomes a label"
    );
    let build = [
        ("backend", "sqlite"),
        ("version", env!("CARGO_PKG_VERSION")),
    ];
    assert_eq!(value(&scrape, "token_authority_build_info", &build), 1.0);
    assert!(
        scrape
            .docs
            .contains_key("token_authority_verifications_total")
    );

    let (_, exposition) = http_get(&metrics_addr, "/metrics");
    for secret in [owner, secret.as_str(), unknown_token.expose()] {
        assert!(!exposition.contains(secret), "no token in the metrics");
    }
    let (status, _) = http_get(&metrics_addr, "/other");
    assert!(status.contains(" 404 "), "{status}");
    drop(client);
    drop(channel);
    terminate(child);
}

// Multi-threaded: the test blocks on the child process (see binary.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_abandoned_at_its_deadline_is_counted_as_canceled() {
    use sqlx::Connection;
    let Metered {
        child,
        metrics_addr,
        channel,
        mut client,
        owner,
        owner_id,
        database_url,
        _dir,
        ..
    } = Metered::start().await;

    // Another process holds SQLite's write lock: the server's write waits (busy timeout)
    // until the call's deadline passes and tonic abandons it.
    let mut blocker = sqlx::SqliteConnection::connect(&database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let mut create = create_request(&owner, &owner_id, "too slow");
    create.set_timeout(std::time::Duration::from_millis(300));
    let answer = client.create_token(create).await.unwrap_err();
    assert_eq!(answer.code(), Code::Cancelled, "{answer:?}");
    // A call that waits it out fails once SQLite's busy timeout passes: a database error.
    let create = create_request(&owner, &owner_id, "patient");
    let answer = client.create_token(create).await.unwrap_err();
    assert_eq!(answer.code(), Code::Unavailable, "{answer:?}");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();

    let create_token = [
        ("grpc_service", "tokenauthority.v1.TokenService"),
        ("grpc_method", "CreateToken"),
    ];
    let mut canceled = create_token.to_vec();
    canceled.push(("grpc_code", "Canceled"));
    // The client may give up first (its own deadline): the server then learns of it from
    // the stream's reset, a moment later.
    let scrape = scrape_when(&metrics_addr, |scrape| {
        value(scrape, "grpc_server_handled_total", &canceled) > 0.0
    })
    .await;
    assert_eq!(
        value(&scrape, "grpc_server_started_total", &create_token),
        2.0
    );
    assert_eq!(value(&scrape, "grpc_server_handled_total", &canceled), 1.0);
    assert_eq!(
        value(&scrape, "grpc_server_handling_seconds_count", &create_token),
        2.0
    );
    let errors = "token_authority_database_errors_total";
    // At least the patient call's; a last-use write may have met the lock too.
    assert!(value(&scrape, errors, &[("kind", "unavailable")]) >= 1.0);
    assert_eq!(value(&scrape, errors, &[("kind", "query")]), 0.0);
    assert_eq!(value(&scrape, errors, &[("kind", "pool_timeout")]), 0.0);
    drop(client);
    drop(channel);
    terminate(child);
}

/// Reads `stream` until it has delivered `events` invalidation events, or ends; returns how
/// many it delivered and how it ended (None: still open).
async fn read_events(
    stream: &mut tonic::Streaming<WatchRevocationsResponse>,
    events: usize,
) -> (usize, Option<tonic::Status>) {
    let mut seen = 0;
    while seen < events {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message());
        match next.await.expect("the stream answers within 10 s") {
            Ok(Some(response)) => {
                if let Some(Message::Batch(batch)) = response.message {
                    seen += batch.events.len();
                }
            }
            Ok(None) => return (seen, None),
            Err(status) => return (seen, Some(status)),
        }
    }
    (seen, None)
}

// Multi-threaded: the test blocks on the child process (see binary.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_events_last_use_and_the_database_are_counted() {
    let Metered {
        child,
        metrics_addr,
        channel,
        mut client,
        owner,
        owner_id,
        addr,
        _dir,
        ..
    } = Metered::start_with(&["--watch-buffer", "2", "--last-use-flush-interval", "100ms"]).await;
    let owner = owner.as_str();
    let watch = || {
        authorized(
            owner,
            WatchRevocationsRequest {
                start_from_now: true,
                ..Default::default()
            },
        )
    };
    let mut fast = client
        .watch_revocations(watch())
        .await
        .unwrap()
        .into_inner();
    // A watcher whose connection accepts hardly any data, and that reads nothing for now.
    let slow_channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut slow_client = TokenServiceClient::new(slow_channel);
    let mut slow = slow_client
        .watch_revocations(watch())
        .await
        .unwrap()
        .into_inner();
    let scrape = scrape_when(&metrics_addr, |scrape| {
        value(scrape, "token_authority_watchers", &[]) == 2.0
    })
    .await;
    assert_eq!(value(&scrape, "token_authority_watchers", &[]), 2.0);

    let create = create_request(owner, &owner_id, "toggled");
    let id = client
        .create_token(create)
        .await
        .unwrap()
        .into_inner()
        .token
        .expect("a token")
        .id;
    // Each change writes one event; the fast watcher keeps up, the slow one falls behind.
    let changes = 100;
    let mut fast_seen = 0;
    for step in 0..changes {
        let id = id.clone();
        if step % 2 == 0 {
            let request = DisableTokenRequest {
                id,
                ..Default::default()
            };
            client
                .disable_token(authorized(owner, request))
                .await
                .unwrap();
        } else {
            let request = EnableTokenRequest {
                id,
                ..Default::default()
            };
            client
                .enable_token(authorized(owner, request))
                .await
                .unwrap();
        }
        fast_seen += read_events(&mut fast, 1).await.0;
    }
    assert_eq!(fast_seen, changes, "the fast watcher got every event");
    let (slow_seen, ended) = read_events(&mut slow, changes).await;
    let ended = ended.expect("the slow watcher was cut off");
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    assert!(slow_seen < changes);

    let sent = (fast_seen + slow_seen) as f64;
    let scrape = scrape_when(&metrics_addr, |scrape| {
        value(scrape, "token_authority_watchers", &[]) == 1.0
            && value(scrape, "token_authority_watch_events_sent_total", &[]) == sent
            && value(
                scrape,
                "token_authority_last_use_batches_total",
                &[("result", "written")],
            ) >= 1.0
    })
    .await;
    assert_eq!(value(&scrape, "token_authority_watchers", &[]), 1.0);
    assert_eq!(
        value(&scrape, "token_authority_watchers_cut_off_total", &[]),
        1.0
    );
    // Every event delivered to a client, and nothing more, was counted as sent.
    assert_eq!(
        value(&scrape, "token_authority_watch_events_sent_total", &[]),
        sent
    );
    // The owner's token was used: its last use was written in a batch.
    assert!(
        value(
            &scrape,
            "token_authority_last_use_batches_total",
            &[("result", "written")]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &scrape,
            "token_authority_last_use_batches_total",
            &[("result", "failed")]
        ),
        0.0
    );
    // SQLite's single writer connection, and at least one reader, are open.
    let connections = "token_authority_database_connections";
    assert_eq!(value(&scrape, connections, &[("pool", "writer")]), 1.0);
    assert!(value(&scrape, connections, &[("pool", "reader")]) >= 1.0);
    assert_eq!(value(&scrape, "token_authority_database_up", &[]), 1.0);
    for service in ["", "tokenauthority.v1.TokenService"] {
        let serving = value(
            &scrape,
            "token_authority_health_serving",
            &[("service", service)],
        );
        assert_eq!(serving, 1.0, "{service:?}");
    }
    drop((fast, slow, slow_client, client, channel));
    terminate(child);
}

/// The metric names `text` mentions: words starting with `grpc_server_` or
/// `token_authority_`, with a histogram's `_bucket`/`_count`/`_sum` suffix taken off.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for prefix in ["grpc_server_", "token_authority_"] {
        for (start, _) in text.match_indices(prefix) {
            let preceded_by_word = text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if preceded_by_word {
                continue;
            }
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(without_histogram_suffix(&name).to_owned());
        }
    }
    names
}

fn without_histogram_suffix(name: &str) -> &str {
    ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

// The alert rules and the dashboard are written against metric names: a renamed or
// forgotten metric would leave an alert that never fires, so every name they use must be
// one the server exports (or the client library's, whose export the client tests check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_and_the_dashboard_use_only_exported_metrics() {
    let Metered {
        child,
        metrics_addr,
        channel,
        mut client,
        owner,
        _dir,
        ..
    } = Metered::start().await;
    verify(&mut client, Some(&owner), &owner).await.unwrap();
    // The health probe's gauges come last: they are set once a second.
    let scrape = scrape_when(&metrics_addr, |scrape| {
        value(scrape, "token_authority_health_serving", &[("service", "")]) == 1.0
    })
    .await;
    let mut exported: std::collections::BTreeSet<String> = scrape
        .samples
        .iter()
        .map(|s| without_histogram_suffix(&s.metric).to_owned())
        .collect();
    use token_authority::client::metrics as client_metrics;
    for name in [
        client_metrics::CACHE_LOOKUPS,
        client_metrics::MALFORMED,
        client_metrics::REMOTE_VERIFICATIONS,
        client_metrics::RECONNECTS,
        client_metrics::STALENESS_SECONDS,
        client_metrics::REVISION,
    ] {
        exported.insert(name.to_owned());
    }
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/token-authority.json",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 10, "{file} names metrics: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses {unknown:?}; exported: {exported:?}"
        );
    }
    drop(client);
    drop(channel);
    terminate(child);
}

/// Every `expr` string anywhere in `value` (a Grafana dashboard's panel queries).
fn queries(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field) {
                    ("expr", serde_json::Value::String(query)) => found.push(query.clone()),
                    _ => queries(field, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| queries(item, found)),
        _ => {}
    }
}

// A query with a syntax error shows an empty panel, which looks like "nothing happening":
// every one must parse. promtool parses PromQL in recording rules, so each query becomes
// one, with Grafana's variables substituted as Grafana would. `scripts/test` provides
// promtool (PROMTOOL); run through it.
#[test]
fn every_dashboard_query_is_valid_promql() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/deploy/grafana/token-authority.json"))
        .expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut found = Vec::new();
    queries(&dashboard, &mut found);
    assert!(found.len() >= 20, "the dashboard's panels query: {found:?}");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in found.iter().enumerate() {
        let query = query
            .replace("$__rate_interval", "1m")
            .replace("$client_job", ".*")
            .replace("$instance", ".*")
            .replace("$job", ".*");
        // A JSON string is a valid YAML double-quoted string.
        let quoted = serde_json::to_string(&query).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let checked = std::process::Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{promtool} runs (run the suite with scripts/test): {e}"));
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
