//! Several replicas behind one PostgreSQL database behave as one service: a change on one
//! reaches the other's cache and watchers, and revisions seen by a watcher are strictly
//! increasing with none missing, whichever replica wrote them.

use std::time::Duration;

use sqlx::Connection;
use token_authority::proto::{self, VerificationCode};

use crate::helpers::{BACKEND, Backend, TestApp, Watched, read_until};

const WAIT: Duration = Duration::from_secs(10);

async fn postgres_app() -> TestApp {
    BACKEND.scope(Backend::Postgres, TestApp::spawn()).await
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_refused_by_the_other_at_once() {
    let a = postgres_app().await;
    let b = a.replica().await;
    let tenant = a.create_tenant("Acme", &[]).await;
    let created = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    // B verifies (and caches) the token, and B's watcher follows.
    assert!(b.verify(&created.secret, &[]).await.valid);
    assert!(b.verify(&created.secret, &[]).await.valid);
    let mut stream = b.watch(&tenant.admin_token, 0, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await;

    a.tokens(&tenant.admin_token)
        .revoke_token(proto::RevokeTokenRequest {
            id: created.token.clone().unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    read_until(&mut stream, &mut watched, WAIT, |w| !w.events.is_empty()).await;
    assert_eq!(
        watched.types(),
        vec![proto::InvalidationType::TokenRevoked],
        "B's watcher got A's event"
    );
    let verdict = b.verify(&created.secret, &[]).await;
    assert_eq!(
        crate::helpers::code_of(&verdict),
        VerificationCode::Revoked,
        "B's cache dropped the token"
    );
    assert!(verdict.revision >= watched.events[0].revision);
}

#[tokio::test]
async fn concurrent_writers_on_both_replicas_never_leave_a_watcher_a_gap() {
    let a = postgres_app().await;
    let b = a.replica().await;
    let tenant = a.create_tenant("Acme", &[]).await;
    let on_a = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    let on_b = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    let also_on_b = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    let mut stream = b.watch(&a.bootstrap_token, 0, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await;
    let start = watched.checkpoints[0];

    let writes = 40;
    let writer = |app: &TestApp, id: String| {
        let mut tokens = app.tokens(&tenant.admin_token);
        async move {
            for step in 0..writes {
                if step % 2 == 0 {
                    tokens
                        .disable_token(proto::DisableTokenRequest {
                            id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                } else {
                    tokens
                        .enable_token(proto::EnableTokenRequest {
                            id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                }
            }
        }
    };
    tokio::join!(
        writer(&a, on_a.id.clone()),
        writer(&b, on_b.id.clone()),
        writer(&b, also_on_b.id.clone())
    );
    read_until(&mut stream, &mut watched, WAIT, |w| {
        w.events.len() >= 3 * writes
    })
    .await;
    read_until(
        &mut stream,
        &mut watched,
        Duration::from_millis(500),
        |_| false,
    )
    .await;

    // Against the events table itself: every revision after the start, in order, once.
    let mut db = sqlx::PgConnection::connect(&a.database_url).await.unwrap();
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT revision FROM invalidation_events WHERE revision > $1 ORDER BY revision",
    )
    .bind(i64::try_from(start).unwrap())
    .fetch_all(&mut db)
    .await
    .unwrap();
    let seen: Vec<i64> = watched
        .events
        .iter()
        .map(|e| i64::try_from(e.revision).unwrap())
        .collect();
    assert_eq!(
        seen, stored,
        "the watcher saw exactly the stored revisions, in order"
    );
    assert_eq!(seen.len(), 3 * writes, "one event per write");
}
