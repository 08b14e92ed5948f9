//! The token lifecycle through TokenService: create, get, list, update, revoke, disable,
//! enable, delete, reset and duplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use token_authority::domain::TokenId;
use token_authority::proto::{self, TokenState, VerificationCode};
use token_authority::startup::open_store;
use token_authority::store::Store;

use crate::helpers::{TestApp, assert_code, code_of, masks as mask, test_settings};

backend_tests!(create_returns_the_secret_once_and_get_never_does);

async fn create_returns_the_secret_once_and_get_never_does() {
    let app = TestApp::spawn().await;
    let tenant = app
        .create_tenant("Acme", &["orders.read", "orders.write"])
        .await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let created = tokens
        .create_token(proto::CreateTokenRequest {
            name: "deploy bot".into(),
            description: "CI deployments".into(),
            scopes: vec!["orders.read".into()],
            labels: HashMap::from([("team".into(), "payments".into())]),
            api_version: "2024-06".into(),
            expiry: Some(proto::create_token_request::Expiry::Ttl(
                prost_types::Duration {
                    seconds: 30 * 86_400,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let token = created.token.unwrap();
    assert!(created.secret.starts_with("tka_"));
    assert_eq!(token.name, "deploy bot");
    assert_eq!(
        token.owner_id, tenant.admin_id,
        "owner defaults to the caller"
    );
    assert_eq!(token.creator_id, tenant.admin_id);
    assert_eq!(token.account_id, tenant.account_id);
    assert_eq!(token.scopes, vec!["orders.read"]);
    assert_eq!(token.state(), TokenState::Active);
    assert_eq!(token.api_version, "2024-06");
    assert_eq!(token.labels["team"], "payments");
    assert!(
        token
            .display_hint
            .ends_with(&created.secret[created.secret.len() - 4..])
    );
    let expire = token.expire_time.unwrap().seconds - token.create_time.unwrap().seconds;
    assert_eq!(expire, 30 * 86_400);

    let fetched = tokens
        .get_token(proto::GetTokenRequest {
            id: token.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(fetched, token);
    let verdict = app.verify(&created.secret, &["orders.read"]).await;
    assert!(verdict.valid);
}

backend_tests!(list_filters_and_pages_in_a_stable_order);

async fn list_filters_and_pages_in_a_stable_order() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let other = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "robot",
            &["tokens.read"],
        )
        .await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let mut created = Vec::new();
    for i in 0..7 {
        let owner_id = if i % 2 == 0 {
            other.id.clone()
        } else {
            String::new()
        };
        let response = tokens
            .create_token(proto::CreateTokenRequest {
                owner_id,
                name: format!("Build Runner {i}"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        created.push(response.token.unwrap());
    }
    tokens
        .disable_token(proto::DisableTokenRequest {
            id: created[1].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Pages of 3, oldest first; the tenant admin's own token is the first of all.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = tokens
            .list_tokens(proto::ListTokensRequest {
                page_size: 3,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.tokens.len() <= 3);
        seen.extend(page.tokens.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 8);
    let expected: Vec<String> = created.iter().map(|t| t.id.clone()).collect();
    assert_eq!(&seen[1..], expected.as_slice());

    let list = |request: proto::ListTokensRequest| {
        let mut tokens = tokens.clone();
        async move {
            tokens
                .list_tokens(request)
                .await
                .unwrap()
                .into_inner()
                .tokens
        }
    };
    let by_owner = list(proto::ListTokensRequest {
        owner_id: other.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_owner.len(), 4);
    assert!(by_owner.iter().all(|t| t.owner_id == other.id));

    let by_name = list(proto::ListTokensRequest {
        name_contains: "runner 3".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_name.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["Build Runner 3"]
    );

    let disabled = list(proto::ListTokensRequest {
        state: TokenState::Disabled as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(
        disabled.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![created[1].id.clone()]
    );

    let cutoff = created[3].create_time;
    let before = list(proto::ListTokensRequest {
        create_time_before: cutoff,
        ..Default::default()
    })
    .await;
    assert_eq!(before.len(), 4, "the admin's own token and the first three");
    let after = list(proto::ListTokensRequest {
        create_time_after: cutoff,
        ..Default::default()
    })
    .await;
    assert_eq!(after.len(), 4, "the fourth and later");
}

backend_tests!(stale_tokens_are_found_by_last_use);

async fn stale_tokens_are_found_by_last_use() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let used = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let unused = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let used_id = used.token.unwrap().id;
    assert!(app.verify(&used.secret, &[]).await.valid);

    // Last use is recorded in memory and written in batches: flush them now.
    app.flush_last_use().await;
    let last_use = app
        .get_token(&tenant.admin_token, &used_id)
        .await
        .last_use_time
        .expect("last use time is recorded");
    let mut tokens = app.tokens(&tenant.admin_token);

    let stale = tokens
        .list_tokens(proto::ListTokensRequest {
            last_use_time_before: Some(last_use),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let stale_ids: Vec<String> = stale.iter().map(|t| t.id.clone()).collect();
    assert!(
        stale_ids.contains(&unused.token.unwrap().id),
        "never used counts as stale"
    );
    assert!(!stale_ids.contains(&used_id));
}

backend_tests!(a_last_use_time_never_moves_backwards);

/// Replicas flush their batches of uses independently, so an older use can arrive after a
/// newer one: the store keeps the newest (driven through the store, as no RPC picks times).
async fn a_last_use_time_never_moves_backwards() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let id = TokenId::from_trusted(created.token.unwrap().id);
    let stopped = app.stop().await;
    let store = open_store(&test_settings(&stopped.database_url), false)
        .await
        .unwrap();
    let last_use = |store: Arc<dyn Store>, id: TokenId| async move {
        store.token(&id).await.unwrap().unwrap().last_used_at
    };
    let newer = chrono::Utc::now();
    let older = newer - chrono::Duration::minutes(5);
    let newest = newer + chrono::Duration::minutes(5);
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();

    store.record_last_use(&[(id.clone(), newer)]).await.unwrap();
    store.record_last_use(&[(id.clone(), older)]).await.unwrap();
    let kept = last_use(store.clone(), id.clone()).await.map(micros);
    assert_eq!(kept, Some(micros(newer)), "an older use does not overwrite");

    store
        .record_last_use(&[(id.clone(), newest)])
        .await
        .unwrap();
    let kept = last_use(store.clone(), id.clone()).await.map(micros);
    assert_eq!(kept, Some(micros(newest)), "a newer use does");
}

backend_tests!(update_changes_only_the_masked_fields_and_scopes_only_narrow);

async fn update_changes_only_the_masked_fields_and_scopes_only_narrow() {
    let app = TestApp::spawn().await;
    let tenant = app
        .create_tenant("Acme", &["orders.read", "orders.write"])
        .await;
    let created = app
        .create_token(
            &tenant.admin_token,
            &tenant.admin_id,
            &["orders.read", "orders.write"],
        )
        .await;
    let original = created.token.unwrap();
    let mut tokens = app.tokens(&tenant.admin_token);
    let expire = prost_types::Timestamp {
        seconds: original.create_time.unwrap().seconds + 3600,
        nanos: 0,
    };
    let updated = tokens
        .update_token(proto::UpdateTokenRequest {
            token: Some(proto::Token {
                id: original.id.clone(),
                name: "renamed".into(),
                description: "ignored: not in the mask".into(),
                scopes: vec!["orders.read".into()],
                labels: HashMap::from([("env".into(), "prod".into())]),
                api_version: "v2".into(),
                expire_time: Some(expire),
                etag: original.etag.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["name", "scopes", "labels", "api_version", "expire_time"]),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.description, "");
    assert_eq!(updated.scopes, vec!["orders.read"]);
    assert_eq!(updated.labels["env"], "prod");
    assert_eq!(updated.api_version, "v2");
    assert_eq!(updated.expire_time, Some(expire));
    assert_ne!(updated.etag, original.etag);

    let verdict = app.verify(&created.secret, &["orders.write"]).await;
    assert_eq!(code_of(&verdict), VerificationCode::InsufficientScopes);
    let verdict = app.verify(&created.secret, &["orders.read"]).await;
    assert!(verdict.valid);
    assert_eq!(verdict.labels["env"], "prod");
    assert_eq!(verdict.api_version, "v2");

    // Widening again is refused, and so is an empty list (which means "everything").
    for scopes in [
        vec!["orders.read".to_owned(), "orders.write".to_owned()],
        vec![],
    ] {
        let result = tokens
            .update_token(proto::UpdateTokenRequest {
                token: Some(proto::Token {
                    id: original.id.clone(),
                    scopes,
                    ..Default::default()
                }),
                update_mask: mask(&["scopes"]),
            })
            .await;
        assert_code(result, Code::InvalidArgument);
    }

    // Clearing the expire time makes the token never expire.
    let cleared = tokens
        .update_token(proto::UpdateTokenRequest {
            token: Some(proto::Token {
                id: original.id.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["expire_time"]),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(cleared.expire_time, None);
}

backend_tests!(revoke_is_permanent_and_keeps_the_record);

async fn revoke_is_permanent_and_keeps_the_record() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let id = created.token.unwrap().id;
    let mut tokens = app.tokens(&tenant.admin_token);
    assert!(app.verify(&created.secret, &[]).await.valid);
    let revoked = tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: id.clone(),
            reason: "leaked in a log".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(revoked.state(), TokenState::Revoked);
    assert_eq!(revoked.revoke_reason, "leaked in a log");
    assert_eq!(revoked.revoker_id, tenant.admin_id);
    assert!(revoked.revoke_time.is_some());
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::Revoked
    );

    // The record is kept, and nothing brings the token back.
    let fetched = tokens
        .get_token(proto::GetTokenRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(fetched.state(), TokenState::Revoked);
    let again = tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(again, Code::FailedPrecondition);
    let enable = tokens
        .enable_token(proto::EnableTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(enable, Code::FailedPrecondition);
    let reset = tokens
        .reset_token(proto::ResetTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(reset, Code::FailedPrecondition);
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::Revoked
    );
}

backend_tests!(disable_and_enable_are_reversible);

async fn disable_and_enable_are_reversible() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let id = created.token.unwrap().id;
    let mut tokens = app.tokens(&tenant.admin_token);
    assert!(
        app.verify(&created.secret, &[]).await.valid,
        "warm the cache first"
    );
    let disabled = tokens
        .disable_token(proto::DisableTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(disabled.state(), TokenState::Disabled);
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::Disabled
    );
    // Disabling twice changes nothing.
    let twice = tokens
        .disable_token(proto::DisableTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(twice.etag, disabled.etag);
    // ... and writes no event: the revision stays where the first disable left it.
    let after_first = app.verify(&created.secret, &[]).await.revision;
    let _ = tokens
        .disable_token(proto::DisableTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(app.verify(&created.secret, &[]).await.revision, after_first);
    let enabled = tokens
        .enable_token(proto::EnableTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(enabled.state(), TokenState::Active);
    assert!(app.verify(&created.secret, &[]).await.valid);
    // Enabling twice changes nothing and writes no event either.
    let after_enable = app.verify(&created.secret, &[]).await.revision;
    let again = tokens
        .enable_token(proto::EnableTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(again.etag, enabled.etag);
    assert_eq!(
        app.verify(&created.secret, &[]).await.revision,
        after_enable
    );
}

backend_tests!(delete_removes_the_record_but_the_audit_log_keeps_the_fact);

async fn delete_removes_the_record_but_the_audit_log_keeps_the_fact() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let id = created.token.unwrap().id;
    let mut tokens = app.tokens(&tenant.admin_token);
    assert!(app.verify(&created.secret, &[]).await.valid);
    tokens
        .delete_token(proto::DeleteTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_code(
        tokens
            .get_token(proto::GetTokenRequest { id: id.clone() })
            .await,
        Code::NotFound,
    );
    assert_code(
        tokens
            .delete_token(proto::DeleteTokenRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::NotFound
    );

    let events = app
        .admin(&tenant.admin_token)
        .list_audit_events(proto::ListAuditEventsRequest {
            target_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["token.delete", "token.create"],
        "newest first"
    );
    assert_eq!(events[0].actor_id, tenant.admin_id);
    assert_eq!(events[0].details["name"], "test token");
    assert!(!events[0].peer_address.is_empty());
}

backend_tests!(reset_keeps_the_id_and_the_old_secret_stops_at_once);

async fn reset_keeps_the_id_and_the_old_secret_stops_at_once() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let original = created.token.unwrap();
    assert!(app.verify(&created.secret, &[]).await.valid);
    let reset = app
        .tokens(&tenant.admin_token)
        .reset_token(proto::ResetTokenRequest {
            id: original.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let token = reset.token.unwrap();
    assert_eq!(token.id, original.id);
    assert_ne!(reset.secret, created.secret);
    assert_ne!(token.display_hint, original.display_hint);
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::NotFound
    );
    let verdict = app.verify(&reset.secret, &[]).await;
    assert!(verdict.valid);
    assert_eq!(verdict.token_id, original.id);
}

backend_tests!(reset_with_a_grace_period_keeps_the_old_secret_until_it_ends);

async fn reset_with_a_grace_period_keeps_the_old_secret_until_it_ends() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let id = created.token.unwrap().id;
    let mut tokens = app.tokens(&tenant.admin_token);
    let reset = tokens
        .reset_token(proto::ResetTokenRequest {
            id: id.clone(),
            grace_period: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reset.token.unwrap().previous_secret_expire_time.is_some());
    let old = app.verify(&created.secret, &[]).await;
    assert!(old.valid, "the old secret works during the grace period");
    assert!(old.expire_time.is_some(), "and says when it stops");
    assert!(app.verify(&reset.secret, &[]).await.valid);
    app.advance_clock(Duration::from_secs(2));
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::Expired
    );
    assert!(app.verify(&reset.secret, &[]).await.valid);

    // A second reset stops every older secret at once.
    let second = tokens
        .reset_token(proto::ResetTokenRequest {
            id: id.clone(),
            grace_period: Some(prost_types::Duration {
                seconds: 600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        app.verify(&reset.secret, &[]).await.valid,
        "the previous secret is in its grace period"
    );
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::NotFound
    );
    assert!(app.verify(&second.secret, &[]).await.valid);
}

backend_tests!(duplicate_copies_owner_scopes_labels_version_and_expiry_policy);

async fn duplicate_copies_owner_scopes_labels_version_and_expiry_policy() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &["orders.read"]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let original = tokens
        .create_token(proto::CreateTokenRequest {
            name: "nightly export".into(),
            scopes: vec!["orders.read".into()],
            labels: HashMap::from([("team".into(), "data".into())]),
            api_version: "v3".into(),
            expiry: Some(proto::create_token_request::Expiry::Ttl(
                prost_types::Duration {
                    seconds: 7 * 86_400,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let source = original.token.unwrap();
    let copy = tokens
        .duplicate_token(proto::DuplicateTokenRequest {
            id: source.id.clone(),
            name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let token = copy.token.unwrap();
    assert_ne!(token.id, source.id);
    assert_ne!(copy.secret, original.secret);
    assert_eq!(token.name, "nightly export (copy)");
    assert_eq!(token.owner_id, source.owner_id);
    assert_eq!(token.scopes, source.scopes);
    assert_eq!(token.labels, source.labels);
    assert_eq!(token.api_version, source.api_version);
    let lifetime = token.expire_time.unwrap().seconds - token.create_time.unwrap().seconds;
    assert_eq!(lifetime, 7 * 86_400);
    assert!(app.verify(&copy.secret, &["orders.read"]).await.valid);
    assert!(app.verify(&original.secret, &["orders.read"]).await.valid);
}

backend_tests!(concurrent_conflicting_updates_lose_nothing);

async fn concurrent_conflicting_updates_lose_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let token = created.token.unwrap();
    let tokens = app.tokens(&tenant.admin_token);
    // Ten writers race with the same etag: exactly one wins, the others are told to retry.
    let attempts = (0..10).map(|i| {
        let mut tokens = tokens.clone();
        let token = token.clone();
        tokio::spawn(async move {
            tokens
                .update_token(proto::UpdateTokenRequest {
                    token: Some(proto::Token {
                        id: token.id.clone(),
                        name: format!("writer {i}"),
                        etag: token.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["name"]),
                })
                .await
        })
    });
    let mut winners = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Ok(response) => winners.push(response.into_inner().token.unwrap().name),
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = tokens
        .clone()
        .get_token(proto::GetTokenRequest {
            id: token.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(
        stored.name, winners[0],
        "the winner's write is the one stored"
    );

    // A stale etag is refused on every kind of change.
    let stale = token.etag.clone();
    let mut t = tokens.clone();
    assert_code(
        t.revoke_token(proto::RevokeTokenRequest {
            id: token.id.clone(),
            reason: String::new(),
            etag: stale.clone(),
        })
        .await,
        Code::Aborted,
    );
    assert_code(
        t.delete_token(proto::DeleteTokenRequest {
            id: token.id.clone(),
            etag: stale.clone(),
        })
        .await,
        Code::Aborted,
    );
    assert_code(
        t.disable_token(proto::DisableTokenRequest {
            id: token.id.clone(),
            etag: stale.clone(),
        })
        .await,
        Code::Aborted,
    );
    assert_code(
        t.enable_token(proto::EnableTokenRequest {
            id: token.id.clone(),
            etag: stale.clone(),
        })
        .await,
        Code::Aborted,
    );
    assert_code(
        t.reset_token(proto::ResetTokenRequest {
            id: token.id.clone(),
            grace_period: None,
            etag: stale.clone(),
        })
        .await,
        Code::Aborted,
    );
    assert_code(
        t.update_token(proto::UpdateTokenRequest {
            token: Some(proto::Token {
                id: token.id.clone(),
                name: "late".into(),
                etag: stale,
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await,
        Code::Aborted,
    );
    let unchanged = t
        .get_token(proto::GetTokenRequest {
            id: token.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(unchanged.etag, stored.etag, "no refused change was written");
    assert!(
        app.verify(&created.secret, &[]).await.valid,
        "nothing was lost or changed"
    );
}
