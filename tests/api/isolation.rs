//! Tenant isolation: a caller of one account never sees or touches another account's
//! tokens, principals, audit events or account; such ids look exactly like unknown ones.

use prost_types::FieldMask;
use tonic::Code;

use token_authority::proto::{self, PrincipalKind, VerificationCode};

use crate::helpers::{TestApp, assert_code, code_of};

backend_tests!(another_accounts_objects_are_not_found);

async fn another_accounts_objects_are_not_found() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", &[]).await;
    let globex = app.create_tenant("Globex", &[]).await;
    let theirs = app
        .create_token(&globex.admin_token, &globex.admin_id, &[])
        .await;
    let their_id = theirs.token.clone().unwrap().id;
    let mut tokens = app.tokens(&acme.admin_token);
    let mut admin = app.admin(&acme.admin_token);

    assert_code(
        tokens
            .get_token(proto::GetTokenRequest {
                id: their_id.clone(),
            })
            .await,
        Code::NotFound,
    );
    let update = proto::UpdateTokenRequest {
        token: Some(proto::Token {
            id: their_id.clone(),
            name: "pwned".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["name".into()],
        }),
    };
    assert_code(tokens.update_token(update).await, Code::NotFound);
    assert_code(
        tokens
            .revoke_token(proto::RevokeTokenRequest {
                id: their_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        tokens
            .disable_token(proto::DisableTokenRequest {
                id: their_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        tokens
            .enable_token(proto::EnableTokenRequest {
                id: their_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        tokens
            .reset_token(proto::ResetTokenRequest {
                id: their_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        tokens
            .duplicate_token(proto::DuplicateTokenRequest {
                id: their_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        tokens
            .delete_token(proto::DeleteTokenRequest {
                id: their_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    // Creating a token for their principal.
    let create = proto::CreateTokenRequest {
        owner_id: globex.admin_id.clone(),
        name: "x".into(),
        ..Default::default()
    };
    assert_code(tokens.create_token(create).await, Code::NotFound);
    // Listing their tokens or audit log, reading their account or principals.
    assert_code(
        tokens
            .list_tokens(proto::ListTokensRequest {
                account_id: globex.account_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        admin
            .list_audit_events(proto::ListAuditEventsRequest {
                account_id: globex.account_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        admin
            .get_account(proto::GetAccountRequest {
                id: globex.account_id.clone(),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        admin
            .get_principal(proto::GetPrincipalRequest {
                id: globex.admin_id.clone(),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        admin
            .list_principals(proto::ListPrincipalsRequest {
                account_id: globex.account_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    let update = proto::UpdatePrincipalRequest {
        principal: Some(proto::Principal {
            id: globex.admin_id.clone(),
            disabled: true,
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["disabled".into()],
        }),
    };
    assert_code(admin.update_principal(update).await, Code::NotFound);
    let create = proto::CreatePrincipalRequest {
        account_id: globex.account_id.clone(),
        kind: PrincipalKind::User as i32,
        display_name: "mole".into(),
        permissions: vec![],
    };
    assert_code(admin.create_principal(create).await, Code::NotFound);

    // Their token does not exist for our verifier.
    let verdict = tokens
        .verify_token(proto::VerifyTokenRequest {
            token: theirs.secret.clone(),
            required_scopes: vec![],
            min_revision: 0,
            client_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_of(&verdict), VerificationCode::NotFound);
    assert!(
        verdict.token_id.is_empty() && verdict.account_id.is_empty() && verdict.owner.is_none()
    );

    // Our own listings hold nothing of theirs.
    let ours = tokens
        .list_tokens(proto::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert!(!ours.is_empty(), "the listing has something to check");
    assert!(ours.iter().all(|t| t.account_id == acme.account_id));
    let audit = admin
        .list_audit_events(proto::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(!audit.is_empty());
    assert!(audit.iter().all(|e| e.account_id == acme.account_id));
    let principals = admin
        .list_principals(proto::ListPrincipalsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .principals;
    assert!(!principals.is_empty(), "the listing has something to check");
    assert!(principals.iter().all(|p| p.account_id == acme.account_id));

    // And nothing of theirs changed.
    let verdict = app.verify(&theirs.secret, &[]).await;
    assert!(verdict.valid);
    assert!(app.verify(&globex.admin_token, &[]).await.valid);
}

backend_tests!(operators_reach_every_account);

async fn operators_reach_every_account() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", &[]).await;
    let token = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let mut tokens = app.operator_tokens();
    let listed = tokens
        .list_tokens(proto::ListTokensRequest {
            account_id: acme.account_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(listed.len(), 2);
    let verdict = app.verify(&token.secret, &[]).await;
    assert_eq!(verdict.account_id, acme.account_id);
    let account = app
        .operator_admin()
        .get_account(proto::GetAccountRequest {
            id: acme.account_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(account.display_name, "Acme");
    assert!(!account.operator);
}

backend_tests!(a_cross_account_verification_is_not_a_use);

async fn a_cross_account_verification_is_not_a_use() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", &[]).await;
    let globex = app.create_tenant("Globex", &[]).await;
    // A Globex token nobody has used yet.
    let unused = app
        .create_token(&app.bootstrap_token, &globex.admin_id, &["tokens.read"])
        .await;
    let id = unused.token.unwrap().id;
    let answer = app
        .tokens(&acme.admin_token)
        .verify_token(proto::VerifyTokenRequest {
            token: unused.secret.clone(),
            required_scopes: vec![],
            min_revision: 0,
            client_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_of(&answer), proto::VerificationCode::NotFound);
    app.flush_last_use().await;
    assert_eq!(
        app.get_token(&app.bootstrap_token, &id).await.last_use_time,
        None,
        "Acme's probe is no use of Globex's token"
    );
    // The check can see a use: the operator's verification is one.
    assert!(app.verify(&unused.secret, &[]).await.valid);
    app.flush_last_use().await;
    assert!(
        app.get_token(&app.bootstrap_token, &id)
            .await
            .last_use_time
            .is_some(),
        "the operator's use was written"
    );
}

backend_tests!(an_operator_acts_in_every_account_but_only_within_its_own_permissions);

async fn an_operator_acts_in_every_account_but_only_within_its_own_permissions() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", &[]).await;
    let theirs = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let operator_account = app.verify(&app.bootstrap_token, &[]).await.account_id;
    // A platform verifier: an operator-account principal holding only tokens.verify.
    let platform = app
        .create_principal(
            &app.bootstrap_token,
            &operator_account,
            "platform",
            &["tokens.verify"],
        )
        .await;
    let verifier = app
        .create_token(&app.bootstrap_token, &platform.id, &[])
        .await
        .secret;
    let mut tokens = app.tokens(&verifier);

    // It verifies every tenant's tokens and watches every account ...
    let verdict = tokens
        .verify_token(proto::VerifyTokenRequest {
            token: theirs.secret.clone(),
            required_scopes: vec![],
            min_revision: 0,
            client_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_of(&verdict), VerificationCode::Valid);
    assert_eq!(verdict.account_id, acme.account_id);
    assert!(
        app.watch_from_now(&verifier, &acme.account_id)
            .await
            .is_ok()
    );
    // ... and nothing else, in any account.
    let theirs_id = theirs.token.unwrap().id;
    assert_code(
        tokens
            .list_tokens(proto::ListTokensRequest {
                account_id: acme.account_id.clone(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        tokens
            .revoke_token(proto::RevokeTokenRequest {
                id: theirs_id.clone(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        app.admin(&verifier)
            .create_account(proto::CreateAccountRequest {
                display_name: "nope".into(),
            })
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        app.admin(&verifier)
            .set_api_access(proto::SetApiAccessRequest {
                account_id: acme.account_id.clone(),
                enabled: false,
            })
            .await,
        Code::PermissionDenied,
    );
    // An operator with tokens.update but without the tenant's power cannot revoke its
    // administrator's token either (no escalation across accounts).
    let helper = app
        .create_principal(
            &app.bootstrap_token,
            &operator_account,
            "helper",
            &["tokens.read", "tokens.update"],
        )
        .await;
    let helper_token = app
        .create_token(&app.bootstrap_token, &helper.id, &[])
        .await
        .secret;
    let admin_token_id = app.verify(&acme.admin_token, &[]).await.token_id;
    assert_code(
        app.tokens(&helper_token)
            .revoke_token(proto::RevokeTokenRequest {
                id: admin_token_id,
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    // It can act on a tenant token within its power.
    let narrow = app
        .create_token(&acme.admin_token, &acme.admin_id, &["tokens.read"])
        .await;
    app.tokens(&helper_token)
        .revoke_token(proto::RevokeTokenRequest {
            id: narrow.token.unwrap().id,
            ..Default::default()
        })
        .await
        .expect("within its power, in another account");
    assert!(app.verify(&theirs.secret, &[]).await.valid);
}
