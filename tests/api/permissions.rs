//! Who may call what: every RPC refuses a caller that lacks its permission, an
//! unauthenticated caller is refused, and nobody can hand out more than they hold.

use tonic::{Code, Status};

use token_authority::domain::TokenSecret;
use token_authority::proto::{self, PrincipalKind};

use crate::helpers::{Credential, TENANT_PERMISSIONS, TestApp, assert_code, mask};

/// Drops a successful answer: only the outcome matters here.
fn ok<T>(result: Result<T, Status>) -> Result<(), Status> {
    result.map(|_| ())
}

/// Calls every RPC that `permission` guards, as `token`, and returns each outcome.
async fn calls_guarded_by(
    app: &TestApp,
    token: &str,
    permission: &str,
    target_token: &str,
    target_principal: &str,
) -> Vec<(&'static str, Result<(), Status>)> {
    let mut tokens = app.tokens(token);
    let mut admin = app.admin(token);
    let id = target_token.to_owned();
    match permission {
        "tokens.create" => vec![(
            "CreateToken",
            ok(tokens
                .create_token(proto::CreateTokenRequest {
                    name: "x".into(),
                    ..Default::default()
                })
                .await),
        )],
        "tokens.read" => vec![
            (
                "GetToken",
                ok(tokens
                    .get_token(proto::GetTokenRequest { id: id.clone() })
                    .await),
            ),
            (
                "ListTokens",
                ok(tokens
                    .list_tokens(proto::ListTokensRequest::default())
                    .await),
            ),
        ],
        "tokens.update" => vec![
            (
                "UpdateToken",
                ok(tokens
                    .update_token(proto::UpdateTokenRequest {
                        token: Some(proto::Token {
                            id: id.clone(),
                            name: "y".into(),
                            ..Default::default()
                        }),
                        update_mask: mask("name"),
                    })
                    .await),
            ),
            (
                "RevokeToken",
                ok(tokens
                    .revoke_token(proto::RevokeTokenRequest {
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await),
            ),
            (
                "DisableToken",
                ok(tokens
                    .disable_token(proto::DisableTokenRequest {
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await),
            ),
            (
                "EnableToken",
                ok(tokens
                    .enable_token(proto::EnableTokenRequest {
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await),
            ),
            (
                "ResetToken",
                ok(tokens
                    .reset_token(proto::ResetTokenRequest {
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await),
            ),
            (
                "DuplicateToken",
                ok(tokens
                    .duplicate_token(proto::DuplicateTokenRequest {
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await),
            ),
        ],
        "tokens.delete" => vec![(
            "DeleteToken",
            ok(tokens
                .delete_token(proto::DeleteTokenRequest {
                    id: id.clone(),
                    ..Default::default()
                })
                .await),
        )],
        "tokens.verify" => vec![(
            "VerifyToken",
            ok(tokens
                .verify_token(proto::VerifyTokenRequest {
                    token: app.bootstrap_token.clone(),
                    required_scopes: vec![],
                    min_revision: 0,
                    client_address: String::new(),
                })
                .await),
        )],
        "principals.manage" => vec![
            (
                "CreatePrincipal",
                ok(admin
                    .create_principal(proto::CreatePrincipalRequest {
                        kind: PrincipalKind::User as i32,
                        display_name: "z".into(),
                        ..Default::default()
                    })
                    .await),
            ),
            (
                "GetPrincipal",
                ok(admin
                    .get_principal(proto::GetPrincipalRequest {
                        id: target_principal.to_owned(),
                    })
                    .await),
            ),
            (
                "ListPrincipals",
                ok(admin
                    .list_principals(proto::ListPrincipalsRequest::default())
                    .await),
            ),
            (
                "UpdatePrincipal",
                ok(admin
                    .update_principal(proto::UpdatePrincipalRequest {
                        principal: Some(proto::Principal {
                            id: target_principal.to_owned(),
                            display_name: "w".into(),
                            ..Default::default()
                        }),
                        update_mask: mask("display_name"),
                    })
                    .await),
            ),
        ],
        "accounts.manage" => vec![
            (
                "CreateAccount",
                ok(admin
                    .create_account(proto::CreateAccountRequest {
                        display_name: "n".into(),
                    })
                    .await),
            ),
            (
                "SetApiAccess",
                ok(admin
                    .set_api_access(proto::SetApiAccessRequest {
                        account_id: String::new(),
                        enabled: true,
                    })
                    .await),
            ),
            (
                "SetTokenPolicy",
                ok(admin
                    .set_token_policy(proto::SetTokenPolicyRequest::default())
                    .await),
            ),
        ],
        "audit.read" => vec![(
            "ListAuditEvents",
            ok(admin
                .list_audit_events(proto::ListAuditEventsRequest::default())
                .await),
        )],
        "permissions.escalate" => vec![(
            "CreatePrincipal with an application permission",
            ok(admin
                .create_principal(proto::CreatePrincipalRequest {
                    kind: PrincipalKind::ServiceAccount as i32,
                    display_name: "z".into(),
                    permissions: vec!["orders.read".into()],
                    ..Default::default()
                })
                .await),
        )],
        "tokens.report_leaked" => vec![(
            "ReportLeakedTokens",
            ok(tokens
                .report_leaked_tokens(proto::ReportLeakedTokensRequest {
                    secrets: vec![target_token.to_owned()],
                    source: "scanner".into(),
                    url: String::new(),
                })
                .await),
        )],
        other => panic!("no calls listed for {other}"),
    }
}

backend_tests!(every_rpc_is_refused_without_its_permission);

async fn every_rpc_is_refused_without_its_permission() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let target = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    for missing in TENANT_PERMISSIONS.iter().chain(&["accounts.manage"]) {
        let granted: Vec<&str> = TENANT_PERMISSIONS
            .iter()
            .copied()
            .filter(|p| p != missing)
            .collect();
        let limited = app
            .create_principal(&tenant.admin_token, &tenant.account_id, "limited", &granted)
            .await;
        let token = app
            .create_token(&tenant.admin_token, &limited.id, &[])
            .await
            .secret;
        let mut outcomes =
            calls_guarded_by(&app, &token, missing, &target.id, &tenant.admin_id).await;
        // Malformed ids too: the permission is checked before any field is parsed (AIP-211),
        // so a caller without it learns nothing about its request.
        outcomes.extend(calls_guarded_by(&app, &token, missing, "not an id", "tka_\u{e9}").await);
        assert!(!outcomes.is_empty());
        for (rpc, outcome) in outcomes {
            let status = outcome.expect_err(&format!("{rpc} without {missing} must be refused"));
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "{rpc} without {missing}: {status:?}"
            );
            assert!(
                status.message().contains(missing),
                "{rpc}: the message names the permission"
            );
        }
    }
    // Nothing was changed by the refused calls.
    assert!(app.verify(&tenant.admin_token, &[]).await.valid);
    let still = app
        .tokens(&tenant.admin_token)
        .get_token(proto::GetTokenRequest {
            id: target.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(still.into_inner().token.unwrap().etag, target.etag);
}

backend_tests!(a_scoped_token_limits_its_caller);

async fn a_scoped_token_limits_its_caller() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let read_only = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["tokens.read"])
        .await
        .secret;
    let mut tokens = app.tokens(&read_only);
    assert!(
        tokens
            .list_tokens(proto::ListTokensRequest::default())
            .await
            .is_ok()
    );
    let status = assert_code(
        tokens
            .create_token(proto::CreateTokenRequest {
                name: "x".into(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("tokens.create"));
}

backend_tests!(callers_without_a_valid_credential_are_unauthenticated);

async fn callers_without_a_valid_credential_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let revoked = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    app.revoke(&tenant.admin_token, &revoked.token.unwrap().id)
        .await;
    let credentials = [
        Credential::None,
        Credential::Bearer("garbage".into()),
        Credential::Bearer(TokenSecret::generate().expose().to_owned()),
        Credential::Bearer(revoked.secret.clone()),
        Credential::RawAuthorization(format!("Basic {}", tenant.admin_token)),
        Credential::RawAuthorization("Bearer".into()),
        Credential::ApiKey("tka_nope".into()),
    ];
    for credential in credentials {
        assert_code(
            app.tokens_with(credential.clone())
                .get_caller(proto::GetCallerRequest::default())
                .await,
            Code::Unauthenticated,
        );
        let status = assert_code(
            app.tokens_with(credential.clone())
                .list_tokens(proto::ListTokensRequest::default())
                .await,
            Code::Unauthenticated,
        );
        assert!(!status.message().is_empty());
        assert_code(
            app.admin_with(credential)
                .get_account(proto::GetAccountRequest::default())
                .await,
            Code::Unauthenticated,
        );
    }
    // The x-api-key header works as well as Bearer.
    let ok = app
        .tokens_with(Credential::ApiKey(tenant.admin_token.clone()))
        .list_tokens(proto::ListTokensRequest::default())
        .await;
    assert!(ok.is_ok());
}

backend_tests!(a_caller_learns_who_it_is_and_what_it_may_do_now);

/// GetCaller needs no permission and tells the caller about itself only: its token's
/// effective permissions, which shrink with its principal's.
async fn a_caller_learns_who_it_is_and_what_it_may_do_now() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &["orders.read"]).await;
    let reader = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "reader",
            &["tokens.read", "orders.read"],
        )
        .await;
    let token = app.create_token(&tenant.admin_token, &reader.id, &[]).await;
    let me = app
        .tokens(&token.secret)
        .get_caller(proto::GetCallerRequest::default())
        .await
        .expect("anyone may ask")
        .into_inner();
    assert_eq!(me.token_id, token.token.expect("token").id);
    assert_eq!(me.account_id, tenant.account_id);
    let principal = me.principal.expect("principal");
    assert_eq!(principal.id, reader.id);
    assert_eq!(principal.display_name, "reader");
    assert_eq!(me.permissions, ["orders.read", "tokens.read"]);
    assert!(!me.operator);
    assert!(me.expire_time.is_none());

    // The principal loses a permission: so does the credential, at once.
    app.admin(&tenant.admin_token)
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: reader.id.clone(),
                permissions: vec!["tokens.read".into()],
                ..Default::default()
            }),
            update_mask: mask("permissions"),
        })
        .await
        .expect("narrowed");
    let me = app
        .tokens(&token.secret)
        .get_caller(proto::GetCallerRequest::default())
        .await
        .expect("asked")
        .into_inner();
    assert_eq!(me.permissions, ["tokens.read"]);

    let operator = app
        .operator_tokens()
        .get_caller(proto::GetCallerRequest::default())
        .await
        .expect("asked")
        .into_inner();
    assert!(operator.operator);
    assert_ne!(operator.account_id, tenant.account_id);
}

backend_tests!(nobody_issues_more_than_they_hold);

async fn nobody_issues_more_than_they_hold() {
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
    // A token creator that itself holds only orders.read.
    let issuer = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "issuer",
            &["tokens.create", "orders.read"],
        )
        .await;
    let issuer_token = app
        .create_token(&tenant.admin_token, &issuer.id, &[])
        .await
        .secret;
    let mut tokens = app.tokens(&issuer_token);
    let create = |scopes: Vec<&str>| proto::CreateTokenRequest {
        owner_id: robot.id.clone(),
        name: "t".into(),
        scopes: scopes.into_iter().map(String::from).collect(),
        ..Default::default()
    };
    assert!(
        tokens
            .create_token(create(vec!["orders.read"]))
            .await
            .is_ok()
    );
    assert_code(
        tokens.create_token(create(vec!["orders.write"])).await,
        Code::PermissionDenied,
    );
    // Unscoped means "everything the owner has", which exceeds the issuer.
    assert_code(
        tokens.create_token(create(vec![])).await,
        Code::PermissionDenied,
    );
    // A scope the owner lacks is refused whoever asks.
    let status = assert_code(
        app.tokens(&tenant.admin_token)
            .create_token(create(vec!["billing.read"]))
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("billing.read"));

    // A principal manager cannot grant system permissions it lacks.
    let manager = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "manager",
            &["principals.manage"],
        )
        .await;
    let manager_token = app
        .create_token(&tenant.admin_token, &manager.id, &[])
        .await
        .secret;
    let grant = app
        .admin(&manager_token)
        .create_principal(proto::CreatePrincipalRequest {
            kind: PrincipalKind::User as i32,
            display_name: "sneaky".into(),
            permissions: vec!["tokens.delete".into()],
            ..Default::default()
        })
        .await;
    assert_code(grant, Code::PermissionDenied);
    let self_grant = app
        .admin(&manager_token)
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: manager.id.clone(),
                permissions: vec!["principals.manage".into(), "audit.read".into()],
                ..Default::default()
            }),
            update_mask: mask("permissions"),
        })
        .await;
    assert_code(self_grant, Code::PermissionDenied);
}

backend_tests!(only_operators_create_accounts);

async fn only_operators_create_accounts() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    // Even holding accounts.manage inside a tenant does not make one an operator.
    let manager = app
        .create_principal(
            &app.bootstrap_token,
            &tenant.account_id,
            "mgr",
            &["accounts.manage"],
        )
        .await;
    let token = app
        .create_token(&app.bootstrap_token, &manager.id, &[])
        .await
        .secret;
    let status = assert_code(
        app.admin(&token)
            .create_account(proto::CreateAccountRequest {
                display_name: "Evil".into(),
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("operator"));
    // Nor switch API access, of its own account (nobody there could switch it back on) or
    // of another.
    let status = assert_code(
        app.admin(&token)
            .set_api_access(proto::SetApiAccessRequest {
                account_id: String::new(),
                enabled: true,
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("operator"));
    let other = app.create_tenant("Globex", &[]).await;
    assert_code(
        app.admin(&token)
            .set_api_access(proto::SetApiAccessRequest {
                account_id: other.account_id.clone(),
                enabled: false,
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(app.verify(&other.admin_token, &[]).await.valid);
}

backend_tests!(refusals_name_only_the_permissions_the_caller_may_read);

// Regression (issue 20): a caller with only `tokens.update` and `tokens.create` learnt an
// admin token's permissions from a DisableToken refusal, and CreateToken refusals said
// which permissions another principal lacks.
async fn refusals_name_only_the_permissions_the_caller_may_read() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &["orders.read"]).await;
    let clerk = app
        .create_principal(
            &acme.admin_token,
            &acme.account_id,
            "clerk",
            &["tokens.update", "tokens.create"],
        )
        .await;
    let clerk_token = app
        .create_token(&acme.admin_token, &clerk.id, &[])
        .await
        .secret;
    let admins = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let admins_id = admins.token.as_ref().unwrap().id.clone();
    let status = assert_code(
        app.tokens(&clerk_token)
            .disable_token(proto::DisableTokenRequest {
                id: admins_id.clone(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    let hidden = [
        "audit.read",
        "tokens.delete",
        "tokens.verify",
        "orders.read",
    ];
    for permission in hidden {
        assert!(!status.message().contains(permission), "{status:?}");
    }
    assert!(status.message().contains("principals.manage"), "{status:?}");
    // CreateToken for the admin, with a scope the admin lacks and one it holds.
    let for_admin = |scopes: &[&str]| proto::CreateTokenRequest {
        name: "for the admin".into(),
        owner_id: acme.admin_id.clone(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    let status = assert_code(
        app.tokens(&clerk_token)
            .create_token(for_admin(&["billing.read"]))
            .await,
        Code::InvalidArgument,
    );
    assert!(!status.message().contains("billing.read"), "{status:?}");
    let status = assert_code(
        app.tokens(&clerk_token)
            .create_token(for_admin(&["audit.read"]))
            .await,
        Code::PermissionDenied,
    );
    assert!(!status.message().contains("audit.read"), "{status:?}");
    // A caller that may read principals' permissions is told which ones.
    let manager = app
        .create_principal(
            &acme.admin_token,
            &acme.account_id,
            "manager",
            &["tokens.update", "tokens.create", "principals.manage"],
        )
        .await;
    let manager_token = app
        .create_token(&acme.admin_token, &manager.id, &[])
        .await
        .secret;
    let status = assert_code(
        app.tokens(&manager_token)
            .disable_token(proto::DisableTokenRequest {
                id: admins_id,
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("audit.read"), "{status:?}");
    let status = assert_code(
        app.tokens(&manager_token)
            .create_token(for_admin(&["billing.read"]))
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("billing.read"), "{status:?}");
}
