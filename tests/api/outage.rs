//! A database outage while serving: calls that need the database fail fast with UNAVAILABLE,
//! warm verifications are served from memory for a bounded time, and everything recovers by
//! itself when the database returns, with nothing lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::Code;

use token_authority::proto::{self, VerificationCode};

use crate::helpers::{TestApp, Watched, assert_code, read_until, test_settings};
use pg_cluster::{Cluster, fresh_database_on};

/// A port of its own: this test stops its database, which no other test may share.
const OUTAGE_PORT: u16 = 54331;

#[tokio::test]
async fn a_database_restart_while_serving_loses_nothing() {
    let cluster = Cluster::new(OUTAGE_PORT);
    cluster.start();
    let database_url = fresh_database_on(&cluster.url()).await;
    let mut settings = test_settings(&database_url);
    settings.database_acquire_timeout = Duration::from_millis(500);
    settings.max_event_lag = Duration::from_secs(4);
    settings.event_poll_interval = Duration::from_millis(200);
    let app = TestApp::start(settings, Arc::new(tempfile::tempdir().unwrap())).await;
    // The database is fresh, so this start bootstrapped it.
    assert!(!app.bootstrap_token.is_empty());
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    assert!(app.verify(&created.secret, &[]).await.valid);
    let mut stream = app.watch_from_now(&app.bootstrap_token, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, Duration::from_secs(10), |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");

    // "" is the whole server (what probes ask by default); the services are named.
    let status_of = |app: &TestApp, service: &str| {
        let mut client = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
        let service = service.to_owned();
        async move {
            client
                .check(tonic_health::pb::HealthCheckRequest { service })
                .await
                .unwrap()
                .into_inner()
                .status()
        }
    };
    let health_of = |app: &TestApp| status_of(app, "");
    use tonic_health::pb::health_check_response::ServingStatus;
    assert_eq!(health_of(&app).await, ServingStatus::Serving);

    cluster.stop();

    // Writes fail fast and clearly.
    let started = Instant::now();
    let write = app
        .tokens(&tenant.admin_token)
        .create_token(proto::CreateTokenRequest {
            name: "during the outage".into(),
            ..Default::default()
        })
        .await;
    assert_code(write, Code::Unavailable);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        started.elapsed()
    );
    // The services report NOT_SERVING (their writes fail) ...
    let deadline = Instant::now() + Duration::from_secs(3);
    while status_of(&app, "tokenauthority.v1.TokenService").await != ServingStatus::NotServing {
        assert!(Instant::now() < deadline, "the outage was never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... while the server as a whole keeps serving: warm verifications are still answered
    // from memory ...
    assert_eq!(health_of(&app).await, ServingStatus::Serving);
    assert!(app.verify(&created.secret, &[]).await.valid);
    // A revision this replica has not applied, while the database cannot say whether it
    // was ever committed: UNAVAILABLE after the wait, never an older answer, and the
    // revision the replica holds is not told.
    let applied = app.verify(&created.secret, &[]).await.revision;
    let ahead = app
        .operator_tokens()
        .verify_token(proto::VerifyTokenRequest {
            token: created.secret.clone(),
            min_revision: applied + 1,
            ..Default::default()
        })
        .await;
    let status = assert_code(ahead, Code::Unavailable);
    assert!(
        status.message().contains("has not applied revision"),
        "{status:?}"
    );
    assert!(
        !status.message().contains(&format!(" {applied} ")),
        "{status:?}"
    );
    // ... for a bounded time only (--max-event-lag, 4 s here).
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let stale = app
        .operator_tokens()
        .verify_token(proto::VerifyTokenRequest {
            token: created.secret.clone(),
            required_scopes: vec![],
            min_revision: 0,
            client_address: String::new(),
        })
        .await;
    assert_code(stale, Code::Unavailable);
    // Then load balancers are told (at the next health probe, within a second).
    let deadline = Instant::now() + Duration::from_secs(3);
    while health_of(&app).await != ServingStatus::NotServing {
        assert!(
            Instant::now() < deadline,
            "the server never reported NOT_SERVING"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cluster.start();

    // Recovers by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = app
            .tokens(&tenant.admin_token)
            .create_token(proto::CreateTokenRequest {
                name: "after the outage".into(),
                ..Default::default()
            })
            .await;
        if again.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not recover: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while health_of(&app).await != ServingStatus::Serving {
        assert!(
            Instant::now() < deadline,
            "health never returned to SERVING"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing was lost, and changes flow to the watcher that stayed connected.
    assert!(app.verify(&created.secret, &[]).await.valid);
    app.revoke(&tenant.admin_token, &created.token.clone().unwrap().id)
        .await;
    assert_eq!(
        crate::helpers::code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::Revoked
    );
    read_until(&mut stream, &mut watched, Duration::from_secs(10), |w| {
        !w.events.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert_eq!(watched.types(), vec![proto::InvalidationType::TokenRevoked]);
    let _ = app.stop().await;
}
