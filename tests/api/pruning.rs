//! Pruning the event log never leaves a gap a resuming watcher could skip: only a
//! contiguous prefix of revisions goes, even when revision order and clock order disagree
//! (events take their time before the writer lock, and replicas' clocks differ), and a
//! watcher whose resume point was pruned gets a reset.

use std::time::Duration;

use token_authority::startup::open_store;

use crate::helpers::{
    TestApp, Watched, execute_sql, read_until, retained_revisions, test_settings,
};

const WAIT: Duration = Duration::from_secs(10);

backend_tests!(pruning_keeps_every_event_after_one_too_new_to_go);

async fn pruning_keeps_every_event_after_one_too_new_to_go() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let token = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["tokens.read"])
        .await;
    let id = token.token.unwrap().id;
    let mut tokens = app.tokens(&tenant.admin_token);
    for _ in 0..3 {
        tokens
            .disable_token(token_authority::proto::DisableTokenRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        tokens
            .enable_token(token_authority::proto::EnableTokenRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let stopped = app.stop().await;
    let revisions = retained_revisions(&stopped.database_url).await;
    assert!(revisions.len() >= 6, "{revisions:?}");
    // Every event is an hour old but one in the middle, whose clock ran late.
    let late = revisions[revisions.len() / 2];
    let now = chrono::Utc::now().timestamp_micros();
    let hour = 3_600_000_000_i64;
    execute_sql(
        &stopped.database_url,
        &[
            format!(
                "UPDATE invalidation_events SET occurred_at = {}",
                now - hour
            ),
            format!("UPDATE invalidation_events SET occurred_at = {now} WHERE revision = {late}"),
        ],
    )
    .await;

    let store = open_store(&test_settings(&stopped.database_url), false)
        .await
        .unwrap();
    let cutoff = chrono::Utc::now() - chrono::Duration::minutes(30);
    store.prune_events(cutoff).await.unwrap();
    let kept = retained_revisions(&stopped.database_url).await;
    let expected: Vec<i64> = revisions.iter().copied().filter(|r| *r >= late).collect();
    assert_eq!(kept, expected, "only the prefix before the late event goes");

    // A replay reads the oldest retained revision with its page.
    let page = store
        .replay_events(u64::try_from(late).unwrap(), 100, None)
        .await
        .unwrap();
    assert_eq!(page.oldest_retained, Some(u64::try_from(late).unwrap()));
    let replayed: Vec<i64> = page
        .events
        .iter()
        .map(|e| i64::try_from(e.revision).unwrap())
        .collect();
    assert_eq!(replayed, expected[1..].to_vec());

    // Through the server: resuming at the oldest retained revision replays what followed
    // (once lost: the events after the late one were pruned); resuming before it resets.
    let app = TestApp::restart(stopped, |_| {}).await;
    let mut stream = app
        .watch(&tenant.admin_token, u64::try_from(late).unwrap(), "")
        .await
        .unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    let got: Vec<i64> = watched
        .events
        .iter()
        .map(|e| i64::try_from(e.revision).unwrap())
        .collect();
    assert_eq!(got, expected[1..].to_vec());
    assert!(watched.resets.is_empty());
    let mut stream = app
        .watch(&tenant.admin_token, u64::try_from(late - 2).unwrap(), "")
        .await
        .unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty() || !w.resets.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert_eq!(watched.resets.len(), 1, "{watched:?}");
    assert!(watched.events.is_empty());
}

backend_tests!(a_revision_this_store_never_handed_out_gets_a_reset);

async fn a_revision_this_store_never_handed_out_gets_a_reset() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let current = app.verify(&tenant.admin_token, &[]).await.revision;
    let mut stream = app
        .watch(&tenant.admin_token, current + 1_000, "")
        .await
        .unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty() || !w.resets.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert_eq!(watched.resets, vec![current], "{watched:?}");
}

backend_tests!(a_replay_of_one_account_reads_only_its_events);

// Issue 20 (suspected, confirmed): a tenant's watcher resuming from an old revision read
// every tenant's events in pages of 1,000 to find its own. The store now reads one
// account's events through an index: here 1,500 other events come first, and one page of
// 100 still reaches the tenant's.
async fn a_replay_of_one_account_reads_only_its_events() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", &[]).await;
    let globex = app.create_tenant("Globex", &[]).await;
    let token = app
        .create_token(&globex.admin_token, &globex.admin_id, &[])
        .await
        .token
        .unwrap()
        .id;
    let stopped = app.stop().await;
    let now = chrono::Utc::now().timestamp_micros();
    let others: Vec<String> = (0..1500)
        .map(|_| {
            format!(
                "INSERT INTO invalidation_events (kind, account_id, token_id, occurred_at) VALUES ('token_updated', '{}', '{token}', {now})",
                globex.account_id
            )
        })
        .collect();
    execute_sql(&stopped.database_url, &others).await;
    execute_sql(
        &stopped.database_url,
        &[format!(
            "INSERT INTO invalidation_events (kind, account_id, occurred_at) VALUES ('api_access_changed', '{}', {now})",
            acme.account_id
        )],
    )
    .await;
    let store = open_store(&test_settings(&stopped.database_url), false)
        .await
        .unwrap();
    let acme_id = token_authority::domain::AccountId::parse(&acme.account_id, "account").unwrap();
    let page = store
        .replay_events(0, 100, Some(std::slice::from_ref(&acme_id)))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1, "{page:?}");
    assert_eq!(page.events[0].invalidation.account_id, acme_id);
    assert!(page.oldest_retained.is_some());
    // Unfiltered (an operator watching every account): every tenant's, in order.
    let all = store.replay_events(0, 100, None).await.unwrap();
    assert_eq!(all.events.len(), 100);
    assert!(all.events.windows(2).all(|w| w[0].revision < w[1].revision));
}
