//! WatchRevocations: every kind of change reaches watchers, resuming loses and repeats
//! nothing (across a server restart too), too-old revisions get a reset, slow watchers are
//! cut off without holding others up, and watchers see only their own account.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tonic::Code;

use token_authority::domain::InvalidationTarget;
use token_authority::proto::invalidation_event::Target;
use token_authority::proto::{self, InvalidationType};
use token_authority::startup::open_store;

use crate::helpers::{
    TestApp, Tokens, Watched, assert_code, mask, read_for, read_until, retained_revisions,
    test_settings,
};

const WAIT: Duration = Duration::from_secs(10);

/// Disables the token on even steps and enables it on odd ones: one event per step.
async fn toggle(tokens: &mut Tokens, id: &str, step: usize) {
    let id = id.to_owned();
    if step.is_multiple_of(2) {
        tokens
            .disable_token(proto::DisableTokenRequest {
                id,
                ..Default::default()
            })
            .await
            .unwrap();
    } else {
        tokens
            .enable_token(proto::EnableTokenRequest {
                id,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// Asserts revisions strictly increase: no duplicate, in order.
fn assert_increasing(events: &[proto::InvalidationEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].revision < pair[1].revision,
            "{} then {}",
            pair[0].revision,
            pair[1].revision
        );
    }
}

backend_tests!(every_kind_of_change_reaches_a_watcher);

async fn every_kind_of_change_reaches_a_watcher() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    // The operator watches the tenant: switching the tenant's API access off ends streams
    // whose credential belongs to it (see `watch_credential.rs`), not this one.
    let mut stream = app
        .watch_from_now(&app.bootstrap_token, &tenant.account_id)
        .await
        .unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    let start = watched.checkpoints[0];

    let mut tokens = app.tokens(&tenant.admin_token);
    let robot = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "robot",
            &["tokens.read"],
        )
        .await;
    let token = app
        .create_token(&tenant.admin_token, &robot.id, &[])
        .await
        .token
        .unwrap();
    let id = token.id.clone();
    let simple = |id: &str| proto::DisableTokenRequest {
        id: id.to_owned(),
        ..Default::default()
    };
    tokens.disable_token(simple(&id)).await.unwrap();
    tokens
        .enable_token(proto::EnableTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .update_token(proto::UpdateTokenRequest {
            token: Some(proto::Token {
                id: id.clone(),
                labels: HashMap::from([("k".into(), "v".into())]),
                ..Default::default()
            }),
            update_mask: mask("labels"),
        })
        .await
        .unwrap();
    tokens
        .reset_token(proto::ResetTokenRequest {
            id: id.clone(),
            grace_period: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut admin = app.admin(&tenant.admin_token);
    admin
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: robot.id.clone(),
                permissions: vec![],
                ..Default::default()
            }),
            update_mask: mask("permissions"),
        })
        .await
        .unwrap();
    tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let doomed = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    tokens
        .delete_token(proto::DeleteTokenRequest {
            id: doomed.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // The grace period of the reset (1 s) ends: announced by the server on its own.
    read_until(&mut stream, &mut watched, WAIT, |w| {
        w.types().contains(&InvalidationType::TokenSecretExpired)
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    app.operator_admin()
        .set_api_access(proto::SetApiAccessRequest {
            account_id: tenant.account_id.clone(),
            enabled: false,
        })
        .await
        .unwrap();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        w.types().contains(&InvalidationType::ApiAccessChanged)
    })
    .await
    .expect("the watch stream delivered what the test waits for");

    use InvalidationType::*;
    // The grace end is announced by the server's own timer, 1 s after the reset: on a slow
    // machine it may come before the revoke, so it is checked apart from the others.
    let (expiries, changes): (Vec<_>, Vec<_>) = watched
        .events
        .iter()
        .partition(|e| e.r#type() == TokenSecretExpired);
    let types: Vec<InvalidationType> = changes.iter().map(|e| e.r#type()).collect();
    assert_eq!(
        types,
        vec![
            TokenDisabled,
            TokenEnabled,
            TokenUpdated,
            TokenReset,
            PrincipalUpdated,
            TokenRevoked,
            TokenDeleted,
            ApiAccessChanged,
        ]
    );
    assert_eq!(expiries.len(), 1);
    assert!(
        expiries[0].revision > changes[3].revision,
        "after the reset"
    );
    assert_eq!(expiries[0].target, Some(Target::TokenId(id.clone())));
    assert_increasing(&watched.events);
    assert!(watched.events[0].revision > start);
    let targets: Vec<Option<Target>> = changes.iter().map(|e| e.target.clone()).collect();
    assert_eq!(targets[0], Some(Target::TokenId(id.clone())));
    assert_eq!(targets[4], Some(Target::PrincipalId(robot.id.clone())));
    assert_eq!(targets[6], Some(Target::TokenId(doomed.id.clone())));
    assert_eq!(targets[7], None, "account-wide");
    assert!(
        watched
            .events
            .iter()
            .all(|e| e.account_id == tenant.account_id && e.occur_time.is_some())
    );
}

backend_tests!(each_ended_grace_period_is_announced_once_by_concurrent_sweepers);

/// Every replica sweeps for ended grace periods; two sweeping the same database at the same
/// time announce each secret exactly once between them (driven through two store handles,
/// with the clock moved past the grace periods).
async fn each_ended_grace_period_is_announced_once_by_concurrent_sweepers() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    const SECRETS: i64 = 20;
    let mut reset = HashSet::new();
    for i in 1..=SECRETS {
        let created = app
            .create_token(&tenant.admin_token, &tenant.admin_id, &[])
            .await;
        let id = created.token.unwrap().id;
        tokens
            .reset_token(proto::ResetTokenRequest {
                id: id.clone(),
                grace_period: Some(prost_types::Duration {
                    seconds: i * 60,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        reset.insert(id);
    }
    let stopped = app.stop().await;
    // On SQLite two stores mean two writer connections to one file, which a server never
    // opens; SQLite's file lock (and busy timeout) serialises them.
    let settings = test_settings(&stopped.database_url);
    let (one, other) = (
        open_store(&settings, false).await.unwrap(),
        open_store(&settings, false).await.unwrap(),
    );
    // Warm connections on both, so that their sweeps really overlap.
    let (a, b) = tokio::join!(one.revision(), other.revision());
    let (_, _) = (a.unwrap(), b.unwrap());
    let (mut announced, mut revisions) = (Vec::new(), HashSet::new());
    // Grace periods end a minute apart: each step's sweeps race for about one secret.
    let start = chrono::Utc::now();
    for minutes in 0..=SECRETS + 1 {
        let at = start + chrono::Duration::minutes(minutes);
        let (a, b) = tokio::join!(
            one.announce_expired_secrets(at),
            other.announce_expired_secrets(at)
        );
        for event in a.unwrap().into_iter().chain(b.unwrap()) {
            assert!(revisions.insert(event.revision), "one revision per event");
            match event.invalidation.target {
                InvalidationTarget::Token(id) => announced.push(id.as_str().to_owned()),
                other => panic!("a grace end names its token, not {other:?}"),
            }
        }
    }
    announced.sort();
    let mut expected: Vec<String> = reset.into_iter().collect();
    expected.sort();
    assert_eq!(announced, expected, "each secret announced exactly once");
}

backend_tests!(idle_watchers_get_checkpoints_with_the_current_revision);

async fn idle_watchers_get_checkpoints_with_the_current_revision() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let revision = app.verify(&tenant.admin_token, &[]).await.revision;
    let mut stream = app.watch_from_now(&tenant.admin_token, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        w.checkpoints.len() >= 3
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert!(watched.checkpoints.len() >= 3);
    assert!(
        watched.checkpoints.iter().all(|c| *c == revision),
        "{:?} vs {revision}",
        watched.checkpoints
    );
    assert!(watched.events.is_empty());
}

backend_tests!(resuming_loses_nothing_and_repeats_nothing_across_a_restart);

async fn resuming_loses_nothing_and_repeats_nothing_across_a_restart() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let token = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    let mut stream = app.watch_from_now(&tenant.admin_token, "").await.unwrap();
    let mut first = Watched::default();
    read_until(&mut stream, &mut first, WAIT, |w| !w.checkpoints.is_empty())
        .await
        .expect("the watch stream delivered what the test waits for");
    let mut tokens = app.tokens(&tenant.admin_token);
    for step in 0..5 {
        toggle(&mut tokens, &token.id, step).await;
    }
    read_until(&mut stream, &mut first, WAIT, |w| w.events.len() >= 5)
        .await
        .expect("the watch stream delivered what the test waits for");
    assert_eq!(first.events.len(), 5);
    drop(stream);

    // Missed while disconnected, then across a restart on the same database.
    for step in 5..9 {
        toggle(&mut tokens, &token.id, step).await;
    }
    let app = TestApp::restart(app.stop().await, |_| {}).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    for step in 9..12 {
        toggle(&mut tokens, &token.id, step).await;
    }
    let mut stream = app
        .watch(&tenant.admin_token, first.last_revision(), "")
        .await
        .unwrap();
    let mut second = Watched::default();
    read_until(&mut stream, &mut second, WAIT, |w| w.events.len() >= 7)
        .await
        .expect("the watch stream delivered what the test waits for");
    // Give a duplicate the chance to show up.
    read_for(&mut stream, &mut second, Duration::from_millis(500)).await;
    assert_eq!(second.events.len(), 7, "exactly the missed events");
    assert!(second.resets.is_empty());
    let all: Vec<proto::InvalidationEvent> =
        first.events.iter().chain(&second.events).cloned().collect();
    assert_increasing(&all);
    for pair in all.windows(2) {
        assert_eq!(
            pair[1].revision,
            pair[0].revision + 1,
            "no gap: every change of this account in between"
        );
    }
}

backend_tests!(a_revision_older_than_the_retained_log_gets_a_reset);

async fn a_revision_older_than_the_retained_log_gets_a_reset() {
    let app =
        TestApp::spawn_with(|settings| settings.event_retention = Duration::from_millis(500)).await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let token = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    let mut tokens = app.tokens(&tenant.admin_token);
    for step in 0..6 {
        toggle(&mut tokens, &token.id, step).await;
    }
    let current = app.verify(&tenant.admin_token, &[]).await.revision;
    // Wait (bounded) for the pruner to drop all but the newest event.
    let deadline = tokio::time::Instant::now() + WAIT;
    while retained_revisions(&app.database_url).await.len() > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pruner never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = app.watch(&tenant.admin_token, 1, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.resets.is_empty() || !w.events.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert_eq!(watched.resets, vec![current]);
    assert!(watched.events.is_empty());
    // After a reset the stream continues live.
    tokens
        .disable_token(proto::DisableTokenRequest {
            id: token.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    read_until(&mut stream, &mut watched, WAIT, |w| !w.events.is_empty())
        .await
        .expect("the watch stream delivered what the test waits for");
    assert_eq!(watched.events.len(), 1);
    assert_eq!(watched.events[0].revision, current + 1);
    // Resuming from a retained revision needs no reset.
    let mut again = app.watch(&tenant.admin_token, current, "").await.unwrap();
    let mut resumed = Watched::default();
    read_until(&mut again, &mut resumed, WAIT, |w| {
        !w.events.is_empty() || !w.resets.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert!(resumed.resets.is_empty());
    assert_eq!(resumed.events.len(), 1);
}

backend_tests!(watchers_see_only_their_own_account);

async fn watchers_see_only_their_own_account() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", &[]).await;
    let globex = app.create_tenant("Globex", &[]).await;
    let acme_token = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await
        .token
        .unwrap();
    let globex_token = app
        .create_token(&globex.admin_token, &globex.admin_id, &[])
        .await
        .token
        .unwrap();

    assert_code(
        app.watch_from_now(&acme.admin_token, &globex.account_id)
            .await,
        Code::NotFound,
    );
    let no_verify = app
        .create_principal(
            &acme.admin_token,
            &acme.account_id,
            "reader",
            &["tokens.read"],
        )
        .await;
    let reader = app
        .create_token(&acme.admin_token, &no_verify.id, &[])
        .await
        .secret;
    assert_code(
        app.watch_from_now(&reader, "").await,
        Code::PermissionDenied,
    );

    let mut ours = app.watch_from_now(&acme.admin_token, "").await.unwrap();
    let mut everything = app.watch_from_now(&app.bootstrap_token, "").await.unwrap();
    let mut only_globex = app
        .watch_from_now(&app.bootstrap_token, &globex.account_id)
        .await
        .unwrap();
    let (mut a, mut all, mut g) = (Watched::default(), Watched::default(), Watched::default());
    for (stream, watched) in [
        (&mut ours, &mut a),
        (&mut everything, &mut all),
        (&mut only_globex, &mut g),
    ] {
        read_until(stream, watched, WAIT, |w| !w.checkpoints.is_empty())
            .await
            .expect("the watch stream delivered what the test waits for");
    }
    app.revoke(&globex.admin_token, &globex_token.id).await;
    app.revoke(&acme.admin_token, &acme_token.id).await;
    read_until(&mut everything, &mut all, WAIT, |w| w.events.len() >= 2)
        .await
        .expect("the watch stream delivered what the test waits for");
    assert_eq!(all.events.len(), 2, "operators watch every account");
    // Each filtered watcher reads until a checkpoint says it has considered both events:
    // whatever it was going to be sent, it has been.
    let newest = all.last_revision();
    for (stream, watched) in [(&mut ours, &mut a), (&mut only_globex, &mut g)] {
        read_until(stream, watched, WAIT, |w| {
            w.checkpoints.last().is_some_and(|c| *c >= newest)
        })
        .await
        .expect("the watch stream delivered what the test waits for");
        assert!(watched.ended.is_none(), "{:?}", watched.ended);
    }
    assert_eq!(a.events.len(), 1);
    assert_eq!(
        a.events[0].target,
        Some(Target::TokenId(acme_token.id.clone()))
    );
    assert_eq!(
        g.events.len(),
        1,
        "the acme event never reached the globex watcher"
    );
    assert_eq!(g.events[0].account_id, globex.account_id);
    // The tenant's checkpoints advance past the other account's event, so a resume never
    // replays what the tenant may not see.
    assert_eq!(a.checkpoints.last().copied(), Some(all.events[1].revision));
}

backend_tests!(a_slow_watcher_is_cut_off_without_holding_up_the_others);

async fn a_slow_watcher_is_cut_off_without_holding_up_the_others() {
    let app = TestApp::spawn_with(|settings| settings.watch_buffer = 4).await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let token = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    // A watcher whose connection accepts hardly any data and that reads nothing for now.
    let slow_channel = tonic::transport::Endpoint::from_shared(app.channel_uri())
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut slow_client =
        token_authority::proto::token_service_client::TokenServiceClient::with_interceptor(
            slow_channel,
            crate::helpers::Credential::Bearer(tenant.admin_token.clone()),
        );
    let mut slow = slow_client
        .watch_revocations(proto::WatchRevocationsRequest {
            after_revision: 0,
            account_id: String::new(),
            start_from_now: true,
        })
        .await
        .unwrap()
        .into_inner();
    let mut fast = app.watch_from_now(&tenant.admin_token, "").await.unwrap();
    let mut fast_seen = Watched::default();
    read_until(&mut fast, &mut fast_seen, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");

    let mut tokens = app.tokens(&tenant.admin_token);
    let changes = 200;
    for step in 0..changes {
        toggle(&mut tokens, &token.id, step).await;
        // The fast watcher keeps up all along.
        read_for(&mut fast, &mut fast_seen, Duration::from_millis(1)).await;
    }
    read_until(&mut fast, &mut fast_seen, WAIT, |w| {
        w.events.len() >= changes
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert_eq!(
        fast_seen.events.len(),
        changes,
        "the fast watcher got everything"
    );
    assert!(fast_seen.ended.is_none());

    // The slow one got a prefix, then was told to resume.
    let mut slow_seen = Watched::default();
    read_for(&mut slow, &mut slow_seen, WAIT).await;
    let status = slow_seen
        .ended
        .clone()
        .expect("the slow stream ended")
        .expect_err("with an error");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(slow_seen.events.len() < changes);
    assert_eq!(
        slow_seen.events[..],
        fast_seen.events[..slow_seen.events.len()],
        "a prefix, in order"
    );
    // Resuming from what it saw delivers exactly the rest.
    let mut resumed = app
        .watch(&tenant.admin_token, slow_seen.last_revision(), "")
        .await
        .unwrap();
    let mut rest = Watched::default();
    let missing = changes - slow_seen.events.len();
    read_until(&mut resumed, &mut rest, WAIT, |w| w.events.len() >= missing)
        .await
        .expect("the watch stream delivered what the test waits for");
    assert_eq!(rest.events[..], fast_seen.events[slow_seen.events.len()..]);
}

backend_tests!(shutdown_ends_watch_streams_with_unavailable);

async fn shutdown_ends_watch_streams_with_unavailable() {
    let app = TestApp::spawn().await;
    let mut stream = app.watch_from_now(&app.bootstrap_token, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(app.stop());
    read_for(&mut stream, &mut watched, WAIT).await;
    let status = watched.ended.expect("ended").expect_err("with a status");
    assert_eq!(status.code(), Code::Unavailable);
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "draining did not wait for the stream"
    );
}

backend_tests!(resuming_from_revision_zero_replays_what_followed);

async fn resuming_from_revision_zero_replays_what_followed() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let token = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["tokens.read"])
        .await;
    // A fresh deployment: creating things writes no event, so the first checkpoint says 0.
    let mut stream = app.watch_from_now(&tenant.admin_token, "").await.unwrap();
    let mut first = Watched::default();
    read_until(&mut stream, &mut first, WAIT, |w| !w.checkpoints.is_empty())
        .await
        .expect("the watch stream delivered what the test waits for");
    assert_eq!(first.last_revision(), 0);
    drop(stream);
    // The first revocation happens while the client is away.
    app.revoke(&tenant.admin_token, &token.token.unwrap().id)
        .await;
    // Resuming with the 0 it was handed must replay it, then say it is caught up.
    let mut resumed = app.watch(&tenant.admin_token, 0, "").await.unwrap();
    let mut seen = Watched::default();
    read_until(&mut resumed, &mut seen, WAIT, |w| {
        !w.events.is_empty() && !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert_eq!(seen.types(), vec![proto::InvalidationType::TokenRevoked]);
    assert!(seen.resets.is_empty());
    assert_eq!(seen.checkpoints.first(), Some(&seen.events[0].revision));
}
