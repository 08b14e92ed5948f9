//! Several replicas behind one PostgreSQL database behave as one service: a change on one
//! reaches the other's cache and watchers, and revisions seen by a watcher are strictly
//! increasing with none missing, whichever replica wrote them.

use std::time::Duration;

use sqlx::Connection;
use token_authority::proto::{self, VerificationCode};

use crate::helpers::{BACKEND, Backend, TestApp, Watched, read_for, read_until};

const WAIT: Duration = Duration::from_secs(10);

async fn postgres_app() -> TestApp {
    BACKEND.scope(Backend::Postgres, TestApp::spawn()).await
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_refused_by_the_other_at_once() {
    let a = postgres_app().await;
    // B polls the events table only every minute: only LISTEN/NOTIFY can tell it in time.
    let b = a
        .replica_with(|settings| settings.event_poll_interval = Duration::from_secs(60))
        .await;
    let tenant = a.create_tenant("Acme", &[]).await;
    let created = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    // B verifies (and caches) the token, and B's watcher follows.
    assert!(b.verify(&created.secret, &[]).await.valid);
    assert!(b.verify(&created.secret, &[]).await.valid);
    let mut stream = b.watch_from_now(&tenant.admin_token, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");

    a.tokens(&tenant.admin_token)
        .revoke_token(proto::RevokeTokenRequest {
            id: created.token.clone().unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    let revoked = std::time::Instant::now();
    read_until(&mut stream, &mut watched, WAIT, |w| !w.events.is_empty())
        .await
        .expect("the watch stream delivered what the test waits for");
    assert!(
        revoked.elapsed() < Duration::from_secs(2),
        "notified, not polled: {:?}",
        revoked.elapsed()
    );
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
    let mut stream = b.watch_from_now(&a.bootstrap_token, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
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
    .await
    .expect("the watch stream delivered what the test waits for");
    read_for(&mut stream, &mut watched, Duration::from_millis(500)).await;

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

/// One replica process is killed (SIGKILL) while both serve traffic: the other keeps
/// serving, and the restarted one catches up with what happened meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_not_missed_and_catches_up_when_restarted() {
    let database_url = pg_cluster::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("owner.token");
    let token_file = token_file.to_str().unwrap();
    let (mut a, a_addr) =
        crate::helpers::serve(&database_url, &["--bootstrap-token-file", token_file]);
    let (b, b_addr) = crate::helpers::serve(&database_url, &[]);
    let operator = std::fs::read_to_string(token_file)
        .unwrap()
        .trim()
        .to_owned();
    let client = move |addr: &str| {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        token_authority::proto::token_service_client::TokenServiceClient::with_interceptor(
            channel,
            crate::helpers::Credential::Bearer(operator.clone()),
        )
    };
    let verify = {
        let client = client.clone();
        move |addr: String, token: String| {
            let mut tokens = client(&addr);
            async move {
                tokens
                    .verify_token(proto::VerifyTokenRequest {
                        token,
                        required_scopes: vec![],
                        min_revision: 0,
                        client_address: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner())
            }
        }
    };
    let victim = client(&a_addr)
        .create_token(proto::CreateTokenRequest {
            name: "victim".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Where a watcher of A stands before A dies.
    let before_kill = {
        let mut stream = client(&a_addr)
            .watch_revocations(proto::WatchRevocationsRequest {
                start_from_now: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut watched = crate::helpers::Watched::default();
        crate::helpers::read_until(&mut stream, &mut watched, Duration::from_secs(10), |w| {
            !w.checkpoints.is_empty()
        })
        .await
        .expect("the watch stream delivered what the test waits for");
        watched.checkpoints[0]
    };

    // Traffic on both replicas, then A dies mid-stream.
    let traffic = {
        let (a_addr, b_addr, secret) = (a_addr.clone(), b_addr.clone(), victim.secret.clone());
        let verify = verify.clone();
        tokio::spawn(async move {
            let (mut ok_on_b, mut failed_on_b) = (0, 0);
            for _ in 0..200 {
                let _ = verify(a_addr.clone(), secret.clone()).await;
                match verify(b_addr.clone(), secret.clone()).await {
                    Ok(answer) if answer.valid => ok_on_b += 1,
                    _ => failed_on_b += 1,
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (ok_on_b, failed_on_b)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.kill().unwrap();
    a.wait().unwrap();
    let (ok_on_b, failed_on_b) = traffic.await.unwrap();
    assert_eq!(failed_on_b, 0, "B kept serving while A died");
    assert_eq!(ok_on_b, 200);

    // While A is down, the token is revoked through B.
    client(&b_addr)
        .revoke_token(proto::RevokeTokenRequest {
            id: victim.token.clone().unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    // A comes back (a new process on the same database) and knows.
    let (a_again, a_again_addr) = crate::helpers::serve(&database_url, &[]);
    let answer = verify(a_again_addr.clone(), victim.secret.clone())
        .await
        .unwrap();
    assert_eq!(answer.code(), VerificationCode::Revoked);
    // Its watchers miss nothing of what happened while it was down: resuming where A's
    // watcher stood replays the revocation made through B.
    let mut stream = client(&a_again_addr)
        .watch_revocations(proto::WatchRevocationsRequest {
            after_revision: before_kill,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut watched = crate::helpers::Watched::default();
    crate::helpers::read_until(&mut stream, &mut watched, Duration::from_secs(10), |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert!(watched.resets.is_empty(), "{watched:?}");
    let victim_id = victim.token.clone().unwrap().id;
    assert!(
        watched
            .events
            .iter()
            .any(|e| e.r#type() == proto::InvalidationType::TokenRevoked
                && e.target
                    == Some(proto::invalidation_event::Target::TokenId(
                        victim_id.clone()
                    ))),
        "{watched:?}"
    );
    // And a change on the restarted A reaches B.
    let second = client(&a_again_addr)
        .create_token(proto::CreateTokenRequest {
            name: "second".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        verify(b_addr.clone(), second.secret.clone())
            .await
            .unwrap()
            .valid
    );
    client(&a_again_addr)
        .disable_token(proto::DisableTokenRequest {
            id: second.token.clone().unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while verify(b_addr.clone(), second.secret.clone())
        .await
        .unwrap()
        .valid
    {
        assert!(
            std::time::Instant::now() < deadline,
            "B never heard of the change on the restarted A"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    crate::helpers::terminate(a_again);
    crate::helpers::terminate(b);
}
