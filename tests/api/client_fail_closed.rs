//! Issue 21: the client library fails closed in every interleaving. Each test here is a
//! finding of the review of `src/client/`, through the real server (two PostgreSQL replicas
//! where it takes two), and failed on the code before the fix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_layer::Layer;
use tower_service::Service;

use token_authority::client::{
    CachingVerifier, Identity, VerifierConfig, VerifyError, VerifyLayer,
};
use token_authority::proto::{self, VerificationCode};

use crate::helpers::{BACKEND, Backend, Proxy, TestApp};
use crate::helpers::{heard, sample};

const WAIT: Duration = Duration::from_secs(10);

async fn postgres_app() -> TestApp {
    BACKEND.scope(Backend::Postgres, TestApp::spawn()).await
}

/// A replica that hears of no change by itself: no LISTEN, a poll an hour apart. It reads
/// the events table only when asked for a revision it has not applied.
async fn deaf_replica(of: &TestApp) -> TestApp {
    of.replica_with(|settings| {
        settings.event_poll_interval = Duration::from_secs(3600);
        settings.database_listen = false;
    })
    .await
}

fn verifier_at(endpoint: String, credential: &str, staleness: Duration) -> CachingVerifier {
    let mut config = VerifierConfig::new(endpoint, credential);
    config.staleness_bound = staleness;
    config.reconnect_backoff = (Duration::from_millis(50), Duration::from_millis(200));
    CachingVerifier::new(config).expect("a valid configuration")
}

// Finding 1: a cached answer refused because the stream applied a revocation sent the
// verifier to the authority with no minimum revision; a replica that had not applied the
// revocation answered VALID, and the verifier handed it out (the way Envoy or a mesh
// balances calls per request across replicas).
#[tokio::test]
async fn a_lagging_replica_cannot_undo_a_revocation_the_verifier_has_heard() {
    let a = postgres_app().await;
    let b = deaf_replica(&a).await;
    let tenant = a.create_tenant("Acme", &[]).await;
    let created = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    // The stream goes to A (it opens its connection first); the balancer then sends the
    // verifications' connection to B.
    let proxy = Proxy::to(a.addr).await;
    let verifier = verifier_at(proxy.uri(), &tenant.admin_token, Duration::from_secs(30));
    heard(&verifier, 0).await;
    proxy.retarget(b.addr);
    assert!(
        verifier
            .verify(&created.secret, &[])
            .await
            .unwrap()
            .is_valid(),
        "B answers, and caches the token as valid"
    );
    let revoked = a
        .tokens(&tenant.admin_token)
        .revoke_token(proto::RevokeTokenRequest {
            id: created.token.clone().unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    heard(&verifier, revoked.revision).await;
    // B itself still answers from before the revocation ...
    assert!(b.verify(&created.secret, &[]).await.valid);
    // ... but not to the verifier, which asks from the revision it has applied.
    let answer = verifier.verify(&created.secret, &[]).await;
    assert!(
        matches!(&answer, Ok(v) if v.code == VerificationCode::Revoked)
            || matches!(&answer, Err(VerifyError::Unavailable(_))),
        "{answer:?}"
    );
}

// Finding 2: an offered answer for another account's token (which this tenant's stream
// never invalidates) was cached for the whole valid_ttl, and an offered revision was
// trusted as given (u64::MAX made an answer immune to every event).
#[tokio::test]
async fn offered_answers_are_held_to_what_the_stream_can_invalidate() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", &[]).await;
    let globex = app.create_tenant("Globex", &[]).await;
    let theirs = app
        .create_token(&globex.admin_token, &globex.admin_id, &[])
        .await;
    let ours = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let verifier = verifier_at(
        app.channel_uri(),
        &acme.admin_token,
        Duration::from_secs(30),
    );
    heard(&verifier, 0).await;
    let operator_answer = app.verify(&theirs.secret, &[]).await;
    assert!(operator_answer.valid);
    assert!(
        !verifier.offer(&theirs.secret, operator_answer),
        "another account's answer is refused"
    );
    app.revoke(&globex.admin_token, &theirs.token.clone().unwrap().id)
        .await;
    let seen = verifier.verify(&theirs.secret, &[]).await.unwrap();
    assert_ne!(seen.code, VerificationCode::Valid);

    // An answer claiming a far-future revision is taken as of the verifier's own.
    let mut forged = app.verify(&ours.secret, &[]).await;
    assert!(forged.valid);
    forged.revision = u64::MAX;
    assert!(verifier.offer(&ours.secret, forged));
    let revoked = app
        .revoke(&acme.admin_token, &ours.token.clone().unwrap().id)
        .await;
    let _ = revoked;
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = verifier.verify(&ours.secret, &[]).await.unwrap();
        if seen.code == VerificationCode::Revoked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation never reached the offered answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Finding 5: a replica whose event follower is stuck keeps the stream open with no
// checkpoints (its connection still answers pings): the verifier stayed stale for ever.
#[tokio::test]
async fn a_silent_stream_is_given_up_and_opened_elsewhere() {
    let a = postgres_app().await;
    let b = deaf_replica(&a).await;
    let tenant = a.create_tenant("Acme", &[]).await;
    let proxy = Proxy::to(b.addr).await;
    let verifier = verifier_at(proxy.uri(), &tenant.admin_token, Duration::from_secs(2));
    heard(&verifier, 0).await;
    // The balancer sends new connections to A from now on; B goes silent (no event read
    // for over its checkpoint bound).
    proxy.retarget(a.addr);
    let created = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let revoked = a
        .revoke(&tenant.admin_token, &created.token.clone().unwrap().id)
        .await;
    let revision = a.verify(&created.secret, &[]).await.revision;
    assert!(revision > verifier.revision(), "{revoked:?}");
    // Within the staleness bound plus a reconnection, the verifier hears A.
    heard(&verifier, revision).await;
}

// Finding 6: identical concurrent misses each made a remote call.
#[tokio::test]
async fn concurrent_misses_for_one_token_share_one_call() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let verifier = metrics::with_local_recorder(&recorder, || {
        verifier_at(
            app.channel_uri(),
            &tenant.admin_token,
            Duration::from_secs(30),
        )
    });
    heard(&verifier, 0).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let verifier = verifier.clone();
        let secret = created.secret.clone();
        calls.spawn(async move { verifier.verify(&secret, &[]).await });
    }
    for answer in calls.join_all().await {
        assert!(answer.unwrap().is_valid());
    }
    let remote = sample(
        &recorder,
        "token_authority_client_remote_verifications_total",
        Some(("outcome", "answered")),
    );
    assert_eq!(remote, 1.0, "one call for 50 at once");
}

// Finding 7: the layer passed the credential on, read only the first authorization value,
// and let it win silently over x-api-key: the service behind could read a token nobody
// verified.
#[tokio::test]
async fn the_layer_refuses_ambiguous_credentials_and_strips_the_verified_one() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let verifier = verifier_at(
        app.channel_uri(),
        &tenant.admin_token,
        Duration::from_secs(30),
    );
    heard(&verifier, 0).await;
    // The service answers with the credential headers it was handed.
    let inner = tower::service_fn(|request: http::Request<tonic::body::Body>| async move {
        assert!(request.extensions().get::<Arc<Identity>>().is_some());
        let mut response = http::Response::new(tonic::body::Body::empty());
        for name in ["authorization", "x-api-key"] {
            if let Some(value) = request.headers().get(name) {
                response.headers_mut().insert(
                    format!("seen-{name}").parse::<http::HeaderName>().unwrap(),
                    value.clone(),
                );
            }
        }
        Ok::<_, std::convert::Infallible>(response)
    });
    let call = |headers: &[(&str, String)]| {
        let mut builder = http::Request::builder().uri("http://backend/orders.v1.Orders/List");
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(tonic::body::Body::empty()).unwrap()
    };
    let code = |response: &http::Response<tonic::body::Body>| {
        tonic::Status::from_header_map(response.headers()).map(|s| s.code())
    };
    let bearer = format!("Bearer {}", created.secret);
    let other = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .secret;

    let mut stripping = VerifyLayer::new(verifier.clone(), &[]).layer(inner);
    let ok = stripping
        .call(call(&[("authorization", bearer.clone())]))
        .await
        .unwrap();
    assert_eq!(code(&ok), None);
    assert!(ok.headers().get("seen-authorization").is_none(), "stripped");
    for ambiguous in [
        vec![
            ("authorization", bearer.clone()),
            ("authorization", format!("Bearer {other}")),
        ],
        vec![
            ("authorization", bearer.clone()),
            ("x-api-key", other.clone()),
        ],
        vec![
            ("x-api-key", created.secret.clone()),
            ("x-api-key", other.clone()),
        ],
    ] {
        let refused = stripping.call(call(&ambiguous)).await.unwrap();
        assert_eq!(
            code(&refused),
            Some(tonic::Code::Unauthenticated),
            "{ambiguous:?}"
        );
    }
    // The same token in both headers is one credential.
    let same = stripping
        .call(call(&[
            ("authorization", bearer.clone()),
            ("x-api-key", created.secret.clone()),
        ]))
        .await
        .unwrap();
    assert_eq!(code(&same), None);

    let mut keeping = VerifyLayer::new(verifier, &[])
        .keep_credential()
        .layer(inner);
    let kept = keeping
        .call(call(&[("authorization", bearer.clone())]))
        .await
        .unwrap();
    assert_eq!(kept.headers()["seen-authorization"], bearer.as_str());

    // The authority refuses ambiguous credentials too.
    let mut request = tonic::Request::new(proto::GetAccountRequest::default());
    request.metadata_mut().append(
        "authorization",
        format!("Bearer {}", tenant.admin_token).parse().unwrap(),
    );
    request
        .metadata_mut()
        .append("x-api-key", other.parse().unwrap());
    let status = token_authority::proto::admin_service_client::AdminServiceClient::connect(
        app.channel_uri(),
    )
    .await
    .unwrap()
    .get_account(request)
    .await
    .expect_err("two credentials");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
}

// Finding 7: an http:// endpoint off loopback sent every user's token in clear.
#[tokio::test]
async fn a_plaintext_endpoint_off_loopback_is_refused_unless_allowed() {
    let refused = CachingVerifier::new(VerifierConfig::new(
        "http://authority.internal:50051",
        "tka_x",
    ));
    assert!(
        matches!(refused, Err(VerifyError::Config(_))),
        "{:?}",
        refused.err()
    );
    let mut config = VerifierConfig::new("http://authority.internal:50051", "tka_x");
    config.allow_plaintext = true;
    assert!(CachingVerifier::new(config).is_ok());
    for loopback in [
        "http://127.0.0.1:50051",
        "http://[::1]:50051",
        "http://localhost:50051",
    ] {
        assert!(
            CachingVerifier::new(VerifierConfig::new(loopback, "tka_x")).is_ok(),
            "{loopback}"
        );
    }
}

/// libfaketime, from Debian's `faketime` package (scripts/test installs it).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

// Finding 3: a token's expiry became a local deadline by the host's own wall clock, so a
// host whose clock is behind the authority's served an expired token for up to the
// difference (capped by valid_ttl). The authority runs here with its clock an hour ahead
// (libfaketime; its monotonic clock left alone), as if the verifier's host were an hour
// behind.
#[tokio::test(flavor = "multi_thread")]
async fn an_expiry_is_judged_by_the_authoritys_clock_not_the_hosts() {
    assert!(
        std::path::Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: run the suite with scripts/test, which installs Debian's faketime"
    );
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("skewed.db").display());
    let token_file = dir.path().join("owner.token");
    let (child, addr, _) = crate::helpers::serve_with_env(
        &database_url,
        &["--bootstrap-token-file", token_file.to_str().unwrap()],
        &[
            ("LD_PRELOAD", FAKETIME),
            ("FAKETIME", "+1h"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("FAKETIME_DONT_RESET", "1"),
        ],
    );
    let owner = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let endpoint = format!("http://{addr}");
    let mut tokens = proto::token_service_client::TokenServiceClient::with_interceptor(
        tonic::transport::Channel::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
        crate::helpers::Credential::Bearer(owner.clone()),
    );
    let created = tokens
        .create_token(proto::CreateTokenRequest {
            name: "short-lived".into(),
            expiry: Some(proto::create_token_request::Expiry::Ttl(
                prost_types::Duration {
                    seconds: 3,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut config = VerifierConfig::new(endpoint, &owner);
    config.valid_ttl = Duration::from_secs(120);
    config.staleness_bound = Duration::from_secs(30);
    let verifier = CachingVerifier::new(config).unwrap();
    heard(&verifier, 0).await;
    let valid = verifier.verify(&created.secret, &[]).await.unwrap();
    assert!(valid.is_valid());
    let expires = valid.identity.unwrap().expire_time.unwrap();
    let ahead = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        ahead > Duration::from_secs(3000),
        "the authority's clock is ahead: {ahead:?}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expired = verifier.verify(&created.secret, &[]).await.unwrap();
    assert_eq!(expired.code, VerificationCode::Expired);
    tokio::task::spawn_blocking(move || crate::helpers::terminate(child))
        .await
        .unwrap();
}

/// Two changes of token `id`, two revisions further.
async fn disable_and_enable(app: &TestApp, caller_token: &str, id: &str) {
    app.disable(caller_token, id).await;
    app.tokens(caller_token)
        .enable_token(proto::EnableTokenRequest {
            id: id.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
}

// Suspected in issue 21, confirmed: a restored database hands out revision numbers again. A
// verifier that resumed after a revision the restored database had passed meanwhile skipped
// the events reusing those numbers (a revocation among them) and kept serving the revoked
// token from its cache. Now the backup's copy starts a history of its own, which checkpoints
// name, and a verifier that sees the history change drops everything.
#[tokio::test]
async fn a_restored_database_cannot_hide_a_revocation_from_a_resuming_verifier() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let victim = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let other = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let other_id = other.token.clone().unwrap().id;
    let backup = app.dir.path().join("backup.db");
    token_authority::store::sqlite::backup::copy(&app.database_url, backup.to_str().unwrap())
        .await
        .unwrap();
    // After the copy, the original moves on by a few revisions ...
    for _ in 0..3 {
        disable_and_enable(&app, &tenant.admin_token, &other_id).await;
    }
    // ... which the verifier follows, caching the victim as valid.
    let proxy = Proxy::to(app.addr).await;
    let mut config = VerifierConfig::new(proxy.uri(), &tenant.admin_token);
    config.staleness_bound = Duration::from_secs(30);
    config.reconnect_backoff = (Duration::from_millis(50), Duration::from_millis(100));
    let verifier = CachingVerifier::new(config).unwrap();
    let seen_before = app.verify(&tenant.admin_token, &[]).await.revision;
    heard(&verifier, seen_before).await;
    assert!(
        verifier
            .verify(&victim.secret, &[])
            .await
            .unwrap()
            .is_valid()
    );

    // The database is restored from the copy; the verifier cannot reach the authority yet.
    let stopped = app.stop().await;
    let database = stopped
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{database}{suffix}"));
    }
    std::fs::copy(&backup, &database).unwrap();
    let app = TestApp::restart(stopped, |_| {}).await;
    // The restored database revokes the victim, and moves past what the verifier has seen,
    // reusing its revision numbers.
    app.revoke(&tenant.admin_token, &victim.token.clone().unwrap().id)
        .await;
    while app.verify(&tenant.admin_token, &[]).await.revision <= seen_before {
        disable_and_enable(&app, &tenant.admin_token, &other_id).await;
    }
    proxy.retarget(app.addr);
    let now = app.verify(&tenant.admin_token, &[]).await.revision;
    heard(&verifier, now).await;
    assert_eq!(
        verifier.verify(&victim.secret, &[]).await.unwrap().code,
        VerificationCode::Revoked
    );
}

// Review of issue 21: a refusal the verifier got from the authority was not remembered as
// news about its token, so an older valid answer (offered, or from a replica lagging
// behind the one that refused) replaced it in the cache.
#[tokio::test]
async fn an_older_valid_answer_cannot_replace_a_newer_refusal() {
    let a = postgres_app().await;
    let b = deaf_replica(&a).await;
    let tenant = a.create_tenant("Acme", &[]).await;
    let created = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    // The stream follows B, which hears of nothing; the verifications go to A.
    let proxy = Proxy::to(b.addr).await;
    let verifier = verifier_at(proxy.uri(), &tenant.admin_token, Duration::from_secs(30));
    heard(&verifier, 0).await;
    proxy.retarget(a.addr);
    let before = a.verify(&created.secret, &[]).await;
    assert!(before.valid);
    a.revoke(&tenant.admin_token, &created.token.clone().unwrap().id)
        .await;
    assert_eq!(
        verifier.verify(&created.secret, &[]).await.unwrap().code,
        VerificationCode::Revoked
    );
    assert!(
        !verifier.offer(&created.secret, before),
        "an answer from before the refusal is refused"
    );
    assert_eq!(
        verifier.verify(&created.secret, &[]).await.unwrap().code,
        VerificationCode::Revoked
    );
}

// Review of issue 21: NOT_FOUND names no token (a deleted token, or a secret replaced
// without grace), so it raised no watermark; once its cached refusal expired, an older valid
// answer was taken again.
#[tokio::test]
async fn an_older_valid_answer_cannot_outlive_a_deletion_the_verifier_was_told_of() {
    let a = postgres_app().await;
    let b = deaf_replica(&a).await;
    let tenant = a.create_tenant("Acme", &[]).await;
    let created = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let proxy = Proxy::to(b.addr).await;
    let mut config = VerifierConfig::new(proxy.uri(), &tenant.admin_token);
    config.staleness_bound = Duration::from_secs(30);
    config.invalid_ttl = Duration::from_millis(200);
    let verifier = CachingVerifier::new(config).unwrap();
    heard(&verifier, 0).await;
    proxy.retarget(a.addr);
    let before = a.verify(&created.secret, &[]).await;
    assert!(before.valid);
    a.tokens(&tenant.admin_token)
        .delete_token(proto::DeleteTokenRequest {
            id: created.token.clone().unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        verifier.verify(&created.secret, &[]).await.unwrap().code,
        VerificationCode::NotFound
    );
    // The cached refusal expires; the refusal itself is remembered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !verifier.offer(&created.secret, before),
        "an answer from before the deletion is refused"
    );
    assert_eq!(
        verifier.verify(&created.secret, &[]).await.unwrap().code,
        VerificationCode::NotFound
    );
}
