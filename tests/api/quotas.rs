//! Per-account quotas (issue 20): an account holds at most so many tokens (revoked ones
//! count until deleted) and principals; past them, creating fails with RESOURCE_EXHAUSTED
//! naming the quota, changes nothing, and other accounts are not affected.

use tonic::Code;

use token_authority::proto::{self, PrincipalKind};

use crate::helpers::{TestApp, assert_code};

backend_tests!(an_account_at_its_quotas_creates_nothing_more);

async fn an_account_at_its_quotas_creates_nothing_more() {
    let app = TestApp::spawn_with(|settings| {
        settings.max_tokens_per_account = 3;
        settings.max_principals_per_account = 2;
    })
    .await;
    // Each tenant starts with its administrator and the administrator's token.
    let acme = app.create_tenant("acme", &[]).await;
    let globex = app.create_tenant("globex", &[]).await;
    let mut tokens = app.tokens(&acme.admin_token);
    let first = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let first_id = first.token.unwrap().id;
    app.create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let create = proto::CreateTokenRequest {
        name: "one too many".into(),
        ..Default::default()
    };
    let status = assert_code(
        tokens.create_token(create.clone()).await,
        Code::ResourceExhausted,
    );
    assert!(status.message().contains("quota of 3 tokens"), "{status:?}");
    assert_code(
        tokens
            .duplicate_token(proto::DuplicateTokenRequest {
                id: first_id.clone(),
                name: String::new(),
            })
            .await,
        Code::ResourceExhausted,
    );
    // Revoked tokens still count; deleted ones do not.
    app.revoke(&acme.admin_token, &first_id).await;
    assert_code(
        tokens.create_token(create.clone()).await,
        Code::ResourceExhausted,
    );
    tokens
        .delete_token(proto::DeleteTokenRequest {
            id: first_id,
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .create_token(create.clone())
        .await
        .expect("room again");
    let listed = tokens
        .list_tokens(proto::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(listed.len(), 3, "nothing past the quota was created");

    // Principals: the administrator and one more.
    app.create_principal(&acme.admin_token, &acme.account_id, "one", &[])
        .await;
    let status = assert_code(
        app.admin(&acme.admin_token)
            .create_principal(proto::CreatePrincipalRequest {
                account_id: acme.account_id.clone(),
                kind: PrincipalKind::ServiceAccount as i32,
                display_name: "two".into(),
                permissions: vec![],
            })
            .await,
        Code::ResourceExhausted,
    );
    assert!(
        status.message().contains("quota of 2 principals"),
        "{status:?}"
    );

    // Another account has its own.
    app.create_token(&globex.admin_token, &globex.admin_id, &[])
        .await;
    app.create_principal(&globex.admin_token, &globex.account_id, "one", &[])
        .await;
}

#[tokio::test]
// Review of issue 20: a refusal remembered the full account again, so creates sent in a
// loop kept it "full" for ever after another replica made room.
async fn room_made_on_another_replica_is_seen_while_creates_keep_coming() {
    let a = crate::helpers::BACKEND
        .scope(crate::helpers::Backend::Postgres, async {
            TestApp::spawn_with(|settings| settings.max_tokens_per_account = 2).await
        })
        .await;
    let b = a
        .replica_with(|settings| settings.max_tokens_per_account = 2)
        .await;
    let acme = a.create_tenant("acme", &[]).await;
    let second = a.create_token(&acme.admin_token, &acme.admin_id, &[]).await;
    let mut tokens = a.tokens(&acme.admin_token);
    let create = proto::CreateTokenRequest {
        name: "one too many".into(),
        ..Default::default()
    };
    assert_code(
        tokens.create_token(create.clone()).await,
        Code::ResourceExhausted,
    );
    b.tokens(&acme.admin_token)
        .delete_token(proto::DeleteTokenRequest {
            id: second.token.unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    // A create every 100 ms: room is seen once the memory of the full account lapses.
    let started = std::time::Instant::now();
    loop {
        match tokens.create_token(create.clone()).await {
            Ok(_) => break,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "still refused after the memory lapsed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
