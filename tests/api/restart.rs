//! Restarting the server on the same database keeps every token and its state; only the
//! first start prints a bootstrap token.

use std::time::Duration;

use token_authority::proto::{self, TokenState, VerificationCode};

use crate::helpers::{TestApp, code_of};

backend_tests!(every_token_and_state_survives_a_restart);

async fn every_token_and_state_survives_a_restart() {
    // Last uses are written only at shutdown here, so that the test can tell it happened.
    let app = TestApp::spawn_with(|s| s.last_use_flush_interval = Duration::from_secs(3600)).await;
    let tenant = app.create_tenant("Acme", &["orders.read"]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let active = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    let disabled = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let revoked = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let reset = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    tokens
        .disable_token(proto::DisableTokenRequest {
            id: disabled.token.clone().unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: revoked.token.clone().unwrap().id,
            reason: "gone".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let new_secret = tokens
        .reset_token(proto::ResetTokenRequest {
            id: reset.token.clone().unwrap().id,
            grace_period: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    assert!(app.verify(&active.secret, &[]).await.valid);
    let before = tokens
        .list_tokens(proto::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let bootstrap = app.bootstrap_token.clone();
    let revision = app.verify(&active.secret, &[]).await.revision;
    let active_id = active.token.clone().unwrap().id;
    assert!(
        before
            .iter()
            .any(|t| t.id == active_id && t.last_use_time.is_none()),
        "no last use is written before shutdown"
    );
    let first_page = tokens
        .list_tokens(proto::ListTokensRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first_page.tokens.len(), 2);
    assert!(!first_page.next_page_token.is_empty());

    // Restarting asserts that the second start prints nothing secret.
    let app = TestApp::restart(app.stop().await, |_| {}).await;

    let mut tokens = app.tokens(&tenant.admin_token);
    let after = tokens
        .list_tokens(proto::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let strip = |tokens: &[proto::Token]| -> Vec<proto::Token> {
        tokens
            .iter()
            .cloned()
            .map(|t| proto::Token {
                last_use_time: None,
                ..t
            })
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));
    let states: Vec<TokenState> = after.iter().map(|t| t.state()).collect();
    assert!(states.contains(&TokenState::Disabled) && states.contains(&TokenState::Revoked));

    let verify = |token: String| {
        let mut client = app.tokens(&bootstrap);
        async move {
            client
                .verify_token(proto::VerifyTokenRequest {
                    token,
                    required_scopes: vec![],
                    min_revision: 0,
                    client_address: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let verdict = verify(active.secret.clone()).await;
    assert!(verdict.valid);
    assert_eq!(verdict.revision, revision, "the revision is kept too");
    assert_eq!(
        code_of(&verify(disabled.secret.clone()).await),
        VerificationCode::Disabled
    );
    assert_eq!(
        code_of(&verify(revoked.secret.clone()).await),
        VerificationCode::Revoked
    );
    assert!(
        verify(reset.secret.clone()).await.valid,
        "still in its grace period"
    );
    assert!(verify(new_secret).await.valid);
    // The last use written at shutdown came back.
    assert!(
        after
            .iter()
            .any(|t| t.id == active_id && t.last_use_time.is_some()),
        "the shutdown wrote the last use"
    );

    // Page tokens issued before the restart still work after it: the signing key is kept.
    let rest = tokens
        .list_tokens(proto::ListTokensRequest {
            page_size: 100,
            page_token: first_page.next_page_token,
            ..Default::default()
        })
        .await
        .expect("a page token from before the restart")
        .into_inner();
    let ids = |tokens: &[proto::Token]| tokens.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&rest.tokens), ids(&before[2..]));
    let _ = app.stop().await;
}
