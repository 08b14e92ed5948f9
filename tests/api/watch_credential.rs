//! A watch stream lives no longer than its credential: each way a credential can stop
//! working, or lose `tokens.verify`, ends the stream at once with a defined code, whether
//! the watcher follows its own account or (as an operator) another one. Changes that leave
//! the credential working do not end it.

use std::time::Duration;

use tonic::Code;

use token_authority::proto;

use crate::helpers::{Tenant, TestApp, Watched, mask, read_for, read_until};

const WAIT: Duration = Duration::from_secs(10);

/// A way the credential of a watcher stops working, or stops carrying `tokens.verify`.
#[derive(Debug, Clone, Copy)]
enum Loss {
    Revoked,
    Disabled,
    Deleted,
    ResetWithoutGrace,
    ScopeNarrowed,
    OwnerLostPermission,
    OwnerDisabled,
    ApiAccessOff,
}

/// A watcher principal of the tenant with `tokens.verify` and `tokens.read`, and a token for
/// it scoped to both; returns (principal id, token id, secret).
async fn watcher(app: &TestApp, tenant: &Tenant) -> (String, String, String) {
    let principal = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "watcher",
            &["tokens.read", "tokens.verify"],
        )
        .await;
    let created = app
        .create_token(
            &tenant.admin_token,
            &principal.id,
            &["tokens.read", "tokens.verify"],
        )
        .await;
    (principal.id, created.token.unwrap().id, created.secret)
}

async fn inflict(app: &TestApp, tenant: &Tenant, loss: Loss, principal: &str, token: &str) {
    let mut tokens = app.tokens(&tenant.admin_token);
    let mut admin = app.admin(&tenant.admin_token);
    let id = token.to_owned();
    let principal_update =
        |principal: proto::Principal, path: &str| proto::UpdatePrincipalRequest {
            principal: Some(principal),
            update_mask: mask(path),
        };
    match loss {
        Loss::Revoked => drop(
            tokens
                .revoke_token(proto::RevokeTokenRequest {
                    id,
                    ..Default::default()
                })
                .await
                .unwrap(),
        ),
        Loss::Disabled => drop(
            tokens
                .disable_token(proto::DisableTokenRequest {
                    id,
                    ..Default::default()
                })
                .await
                .unwrap(),
        ),
        Loss::Deleted => drop(
            app.tokens(&tenant.admin_token)
                .delete_token(proto::DeleteTokenRequest {
                    id,
                    ..Default::default()
                })
                .await
                .unwrap(),
        ),
        Loss::ResetWithoutGrace => drop(
            tokens
                .reset_token(proto::ResetTokenRequest {
                    id,
                    ..Default::default()
                })
                .await
                .unwrap(),
        ),
        Loss::ScopeNarrowed => drop(
            tokens
                .update_token(proto::UpdateTokenRequest {
                    token: Some(proto::Token {
                        id,
                        scopes: vec!["tokens.read".into()],
                        ..Default::default()
                    }),
                    update_mask: mask("scopes"),
                })
                .await
                .unwrap(),
        ),
        Loss::OwnerLostPermission => drop(
            admin
                .update_principal(principal_update(
                    proto::Principal {
                        id: principal.to_owned(),
                        permissions: vec!["tokens.read".into()],
                        ..Default::default()
                    },
                    "permissions",
                ))
                .await
                .unwrap(),
        ),
        Loss::OwnerDisabled => drop(
            admin
                .update_principal(principal_update(
                    proto::Principal {
                        id: principal.to_owned(),
                        disabled: true,
                        ..Default::default()
                    },
                    "disabled",
                ))
                .await
                .unwrap(),
        ),
        Loss::ApiAccessOff => drop(
            app.operator_admin()
                .set_api_access(proto::SetApiAccessRequest {
                    account_id: tenant.account_id.clone(),
                    enabled: false,
                })
                .await
                .unwrap(),
        ),
    }
}

backend_tests!(a_watch_ends_when_its_credential_stops_working);

async fn a_watch_ends_when_its_credential_stops_working() {
    let app = TestApp::spawn().await;
    for loss in [
        Loss::Revoked,
        Loss::Disabled,
        Loss::Deleted,
        Loss::ResetWithoutGrace,
        Loss::ScopeNarrowed,
        Loss::OwnerLostPermission,
        Loss::OwnerDisabled,
        Loss::ApiAccessOff,
    ] {
        let tenant = app.create_tenant(&format!("{loss:?}"), &[]).await;
        let (principal, token, secret) = watcher(&app, &tenant).await;
        let mut stream = app.watch_from_now(&secret, "").await.unwrap();
        let mut watched = Watched::default();
        read_until(&mut stream, &mut watched, WAIT, |w| {
            !w.checkpoints.is_empty()
        })
        .await
        .expect("the watch stream delivered what the test waits for");
        inflict(&app, &tenant, loss, &principal, &token).await;
        read_for(&mut stream, &mut watched, WAIT).await;
        let expected = match loss {
            Loss::ScopeNarrowed | Loss::OwnerLostPermission => Code::PermissionDenied,
            _ => Code::Unauthenticated,
        };
        match &watched.ended {
            Some(Err(status)) => assert_eq!(status.code(), expected, "{loss:?}: {status:?}"),
            other => panic!("{loss:?}: the stream went on: {other:?}"),
        }
        // Nothing was sent after the change: not even the event that ended it.
        assert!(watched.events.is_empty(), "{loss:?}: {:?}", watched.events);
    }
}

backend_tests!(an_operator_watching_another_account_is_stopped_by_its_own_revocation);

async fn an_operator_watching_another_account_is_stopped_by_its_own_revocation() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let operator_account = app.verify(&app.bootstrap_token, &[]).await.account_id;
    let verifier = app
        .create_principal(
            &app.bootstrap_token,
            &operator_account,
            "platform",
            &["tokens.verify"],
        )
        .await;
    let credential = app
        .create_token(&app.bootstrap_token, &verifier.id, &[])
        .await;
    let mut stream = app
        .watch_from_now(&credential.secret, &tenant.account_id)
        .await
        .unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    // Its own token lives in the operator account, whose events this stream filters out.
    app.operator_tokens()
        .revoke_token(proto::RevokeTokenRequest {
            id: credential.token.unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    read_for(&mut stream, &mut watched, WAIT).await;
    match &watched.ended {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unauthenticated, "{status:?}"),
        other => panic!("the stream went on: {other:?}"),
    }
}

backend_tests!(a_watch_ends_when_its_credential_expires_and_not_before);

async fn a_watch_ends_when_its_credential_expires_and_not_before() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let (principal, _, _) = watcher(&app, &tenant).await;
    let short = app
        .tokens(&tenant.admin_token)
        .create_token(proto::CreateTokenRequest {
            owner_id: principal.clone(),
            name: "short".into(),
            scopes: vec!["tokens.verify".into()],
            expiry: Some(proto::create_token_request::Expiry::Ttl(
                prost_types::Duration {
                    seconds: 2,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let expires = short.token.as_ref().unwrap().expire_time.unwrap();
    let mut stream = app.watch_from_now(&short.secret, "").await.unwrap();
    let mut watched = Watched::default();
    read_for(&mut stream, &mut watched, WAIT).await;
    let ended_at = chrono::Utc::now().timestamp_micros();
    match &watched.ended {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unauthenticated, "{status:?}"),
        other => panic!("the stream outlived its credential: {other:?}"),
    }
    let expires_at = expires.seconds * 1_000_000 + i64::from(expires.nanos / 1000);
    assert!(
        ended_at >= expires_at,
        "ended before the credential expired"
    );
}

backend_tests!(changes_that_leave_the_credential_working_do_not_end_the_watch);

async fn changes_that_leave_the_credential_working_do_not_end_the_watch() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let (principal, token, secret) = watcher(&app, &tenant).await;
    let mut stream = app.watch_from_now(&secret, "").await.unwrap();
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, WAIT, |w| {
        !w.checkpoints.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    // A reset with a grace period: the presented secret keeps working until it ends.
    app.tokens(&tenant.admin_token)
        .reset_token(proto::ResetTokenRequest {
            id: token.clone(),
            grace_period: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            etag: String::new(),
        })
        .await
        .unwrap();
    // The owner gains a permission; another token of the owner is revoked.
    app.admin(&tenant.admin_token)
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: principal.clone(),
                permissions: vec![
                    "audit.read".into(),
                    "tokens.read".into(),
                    "tokens.verify".into(),
                ],
                ..Default::default()
            }),
            update_mask: mask("permissions"),
        })
        .await
        .unwrap();
    let other = app
        .create_token(&tenant.admin_token, &principal, &["tokens.read"])
        .await;
    app.revoke(&tenant.admin_token, &other.token.unwrap().id)
        .await;
    read_until(&mut stream, &mut watched, WAIT, |w| w.events.len() >= 3)
        .await
        .expect("the watch stream delivered what the test waits for");
    assert!(watched.ended.is_none(), "{:?}", watched.ended);
    assert_eq!(
        watched.types(),
        vec![
            proto::InvalidationType::TokenReset,
            proto::InvalidationType::PrincipalUpdated,
            proto::InvalidationType::TokenRevoked,
        ]
    );
}
