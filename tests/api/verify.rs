//! VerifyToken: every verification code, through the real server.

use std::time::Duration;

use prost_types::FieldMask;

use token_authority::domain::TokenSecret;
use token_authority::proto::{self, PrincipalKind, VerificationCode};

use crate::helpers::{TestApp, code_of};

async fn set_principal(app: &TestApp, caller: &str, principal: proto::Principal, paths: &[&str]) {
    app.admin(caller)
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(principal),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
        })
        .await
        .expect("principal updated");
}

backend_tests!(a_valid_token_answers_with_its_identity_and_effective_scopes);

async fn a_valid_token_answers_with_its_identity_and_effective_scopes() {
    let app = TestApp::spawn().await;
    let tenant = app
        .create_tenant("Acme", &["orders.read", "orders.write"])
        .await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    let verdict = app.verify(&created.secret, &["orders.read"]).await;
    assert!(verdict.valid);
    assert_eq!(code_of(&verdict), VerificationCode::Valid);
    assert_eq!(verdict.token_id, created.token.unwrap().id);
    assert_eq!(verdict.account_id, tenant.account_id);
    let owner = verdict.owner.unwrap();
    assert_eq!(owner.id, tenant.admin_id);
    assert_eq!(owner.kind(), PrincipalKind::ServiceAccount);
    assert_eq!(owner.display_name, "admin");
    assert_eq!(verdict.effective_scopes, vec!["orders.read"]);
    assert!(verdict.revision > 0, "the tenant setup changed a principal");

    // Bare, as a Bearer value, and with whitespace.
    for presented in [
        format!("Bearer {}", created.secret),
        format!("  {}\n", created.secret),
    ] {
        assert!(app.verify(&presented, &[]).await.valid);
    }
}

backend_tests!(malformed_and_unknown_tokens);

async fn malformed_and_unknown_tokens() {
    let app = TestApp::spawn().await;
    for garbage in [
        "",
        "hello",
        "tka_",
        "Bearer",
        "tka_0000000000000000000000000000000000000000",
    ] {
        let verdict = app.verify(garbage, &[]).await;
        assert_eq!(
            code_of(&verdict),
            VerificationCode::Malformed,
            "{garbage:?}"
        );
        assert!(!verdict.valid);
        assert!(verdict.token_id.is_empty());
    }
    // A real token with one character changed fails its checksum.
    let mut typo = app.bootstrap_token.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    assert_eq!(
        code_of(&app.verify(&typo, &[]).await),
        VerificationCode::Malformed
    );

    let unknown = TokenSecret::generate();
    let verdict = app.verify(unknown.expose(), &[]).await;
    assert_eq!(code_of(&verdict), VerificationCode::NotFound);
    assert!(verdict.owner.is_none());
}

backend_tests!(expired_tokens_fail);

async fn expired_tokens_fail() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .tokens(&tenant.admin_token)
        .create_token(proto::CreateTokenRequest {
            name: "short".into(),
            expiry: Some(proto::create_token_request::Expiry::Ttl(
                prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let verdict = app.verify(&created.secret, &[]).await;
    assert!(verdict.valid);
    assert!(verdict.expire_time.is_some());
    app.advance_clock(Duration::from_secs(2));
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::Expired
    );
    let listed = app
        .get_token(&tenant.admin_token, &created.token.unwrap().id)
        .await;
    assert_eq!(listed.state(), proto::TokenState::Expired);
}

backend_tests!(revoked_and_disabled_tokens_fail_with_their_codes);

async fn revoked_and_disabled_tokens_fail_with_their_codes() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let revoked = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let disabled = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    assert!(app.verify(&revoked.secret, &[]).await.valid);
    assert!(app.verify(&disabled.secret, &[]).await.valid);
    tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: revoked.token.unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .disable_token(proto::DisableTokenRequest {
            id: disabled.token.unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        code_of(&app.verify(&revoked.secret, &[]).await),
        VerificationCode::Revoked
    );
    assert_eq!(
        code_of(&app.verify(&disabled.secret, &[]).await),
        VerificationCode::Disabled
    );
}

backend_tests!(a_token_never_has_more_than_its_owner_has_now);

async fn a_token_never_has_more_than_its_owner_has_now() {
    let app = TestApp::spawn().await;
    let tenant = app
        .create_tenant("Acme", &["orders.read", "orders.write"])
        .await;
    let robot = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "robot",
            &["orders.read", "orders.write"],
        )
        .await;
    let unscoped = app.create_token(&tenant.admin_token, &robot.id, &[]).await;
    let verdict = app.verify(&unscoped.secret, &["orders.write"]).await;
    assert!(verdict.valid);
    assert_eq!(
        verdict.effective_scopes,
        vec!["orders.read", "orders.write"]
    );

    // The owner loses orders.write: the (cached) token loses it at once.
    let revision_before = verdict.revision;
    set_principal(
        &app,
        &tenant.admin_token,
        proto::Principal {
            id: robot.id.clone(),
            permissions: vec!["orders.read".into()],
            ..Default::default()
        },
        &["permissions"],
    )
    .await;
    let verdict = app.verify(&unscoped.secret, &["orders.write"]).await;
    assert_eq!(code_of(&verdict), VerificationCode::InsufficientScopes);
    assert_eq!(verdict.missing_scopes, vec!["orders.write"]);
    assert!(verdict.effective_scopes.is_empty());
    assert!(
        verdict.revision > revision_before,
        "the change moved the revision"
    );
    assert!(app.verify(&unscoped.secret, &["orders.read"]).await.valid);

    // The owner is disabled: every token of theirs fails; enabled again: they work.
    let disable = |disabled| proto::Principal {
        id: robot.id.clone(),
        disabled,
        ..Default::default()
    };
    set_principal(&app, &tenant.admin_token, disable(true), &["disabled"]).await;
    assert_eq!(
        code_of(&app.verify(&unscoped.secret, &[]).await),
        VerificationCode::OwnerDisabled
    );
    set_principal(&app, &tenant.admin_token, disable(false), &["disabled"]).await;
    assert!(app.verify(&unscoped.secret, &[]).await.valid);
}

backend_tests!(disabling_api_access_fails_every_token_and_enabling_does_not_revive_them);

async fn disabling_api_access_fails_every_token_and_enabling_does_not_revive_them() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let other = app.create_tenant("Other", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    assert!(app.verify(&created.secret, &[]).await.valid);
    let mut admin = app.operator_admin();
    let set = |enabled| proto::SetApiAccessRequest {
        account_id: tenant.account_id.clone(),
        enabled,
    };
    let account = admin
        .set_api_access(set(false))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert!(!account.api_access_enabled);
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::ApiAccessDisabled
    );
    assert_eq!(
        code_of(&app.verify(&tenant.admin_token, &[]).await),
        VerificationCode::ApiAccessDisabled
    );
    assert!(
        app.verify(&other.admin_token, &[]).await.valid,
        "other accounts are untouched"
    );

    admin.set_api_access(set(true)).await.unwrap();
    assert_eq!(
        code_of(&app.verify(&created.secret, &[]).await),
        VerificationCode::Revoked
    );
    assert_eq!(
        code_of(&app.verify(&tenant.admin_token, &[]).await),
        VerificationCode::Revoked
    );

    // New tokens work again.
    let fresh = app
        .create_token(&app.bootstrap_token, &tenant.admin_id, &[])
        .await;
    assert!(app.verify(&fresh.secret, &[]).await.valid);
}

backend_tests!(the_operator_accounts_api_access_cannot_be_switched_off);

async fn the_operator_accounts_api_access_cannot_be_switched_off() {
    let app = TestApp::spawn().await;
    let result = app
        .operator_admin()
        .set_api_access(proto::SetApiAccessRequest {
            account_id: String::new(),
            enabled: false,
        })
        .await;
    crate::helpers::assert_code(result, tonic::Code::FailedPrecondition);
    assert!(app.verify(&app.bootstrap_token, &[]).await.valid);
}
