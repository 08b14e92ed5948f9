//! No escalation, by any path: regression tests for the attacks that worked once (a narrow
//! token resetting its owner's unscoped token; a principal manager acting on the more
//! powerful), and the one explicit way past the rule, `permissions.escalate`.

use tonic::Code;

use token_authority::proto::{self, PrincipalKind, VerificationCode};

use crate::helpers::{TENANT_PERMISSIONS, TestApp, assert_code, code_of, mask};

fn grace(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

/// The id of the token `token` authenticates with, read back through VerifyToken.
async fn token_id_of(app: &TestApp, token: &str) -> String {
    app.verify(token, &[]).await.token_id
}

backend_tests!(a_narrow_token_cannot_reset_its_owners_unscoped_token);

async fn a_narrow_token_cannot_reset_its_owners_unscoped_token() {
    let app = TestApp::spawn().await;
    // The attack as reproduced with grpcurl: a token of the bootstrap owner scoped to
    // {tokens.read, tokens.update} lists tokens and resets the owner's unscoped one.
    let owner_id = app.bootstrap_owner_id().await;
    let narrow = app
        .create_token(
            &app.bootstrap_token,
            &owner_id,
            &["tokens.read", "tokens.update"],
        )
        .await
        .secret;
    let listed = app
        .tokens(&narrow)
        .list_tokens(proto::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let bootstrap_id = token_id_of(&app, &app.bootstrap_token).await;
    assert!(listed.iter().any(|t| t.id == bootstrap_id));
    let status = assert_code(
        app.tokens(&narrow)
            .reset_token(proto::ResetTokenRequest {
                id: bootstrap_id.clone(),
                grace_period: grace(3600),
                etag: String::new(),
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("accounts.manage"), "{status:?}");
    // Nothing changed: the bootstrap token is as it was, and no account could be created.
    let after = app
        .operator_tokens()
        .get_token(proto::GetTokenRequest { id: bootstrap_id })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(
        after.etag,
        listed.iter().find(|t| t.id == after.id).unwrap().etag
    );
    assert!(app.verify(&app.bootstrap_token, &[]).await.valid);

    // The same inside a tenant.
    let tenant = app.create_tenant("Acme", &[]).await;
    let narrow = app
        .create_token(
            &tenant.admin_token,
            &tenant.admin_id,
            &["tokens.read", "tokens.update"],
        )
        .await;
    let admin_token_id = token_id_of(&app, &tenant.admin_token).await;
    assert_code(
        app.tokens(&narrow.secret)
            .reset_token(proto::ResetTokenRequest {
                id: admin_token_id,
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    // Duplicating it is refused for the same reason.
    assert_code(
        app.tokens(&narrow.secret)
            .duplicate_token(proto::DuplicateTokenRequest {
                id: token_id_of(&app, &tenant.admin_token).await,
                name: String::new(),
            })
            .await,
        Code::PermissionDenied,
    );
    // Resetting a token within the caller's own power still works: its own.
    let own = app
        .tokens(&narrow.secret)
        .reset_token(proto::ResetTokenRequest {
            id: narrow.token.unwrap().id,
            ..Default::default()
        })
        .await
        .expect("a token may reset itself")
        .into_inner();
    let verified = app.verify(&own.secret, &[]).await;
    assert!(verified.valid);
    assert_eq!(
        verified.effective_scopes,
        vec!["tokens.read", "tokens.update"]
    );
}

backend_tests!(a_principal_manager_cannot_act_on_the_more_powerful);

async fn a_principal_manager_cannot_act_on_the_more_powerful() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &["orders.read"]).await;
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
    let deleter = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "deleter",
            &["tokens.delete"],
        )
        .await;
    let mut admin = app.admin(&manager_token);
    let update =
        |id: &str, principal: proto::Principal, path: &str| proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: id.to_owned(),
                ..principal
            }),
            update_mask: mask(path),
        };
    // Disabling the account's administrator (which locked the owner out) is refused.
    let status = assert_code(
        admin
            .update_principal(update(
                &tenant.admin_id,
                proto::Principal {
                    disabled: true,
                    ..Default::default()
                },
                "disabled",
            ))
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("tokens.create"), "{status:?}");
    assert!(app.verify(&tenant.admin_token, &[]).await.valid);
    // So is stripping a permission it does not hold from someone else, or renaming them.
    for (principal, path) in [
        (proto::Principal::default(), "permissions"),
        (
            proto::Principal {
                display_name: "renamed".into(),
                ..Default::default()
            },
            "display_name",
        ),
    ] {
        assert_code(
            admin
                .update_principal(update(&deleter.id, principal, path))
                .await,
            Code::PermissionDenied,
        );
    }
    // And granting itself an application permission.
    let status = assert_code(
        admin
            .update_principal(update(
                &manager.id,
                proto::Principal {
                    permissions: vec!["orders.read".into(), "principals.manage".into()],
                    ..Default::default()
                },
                "permissions",
            ))
            .await,
        Code::PermissionDenied,
    );
    assert!(
        status.message().contains("permissions.escalate"),
        "{status:?}"
    );
    // Principals whose permissions it holds all of remain its to manage.
    let intern = app
        .create_principal(&manager_token, &tenant.account_id, "intern", &[])
        .await;
    for disabled in [true, false] {
        admin
            .update_principal(update(
                &intern.id,
                proto::Principal {
                    disabled,
                    ..Default::default()
                },
                "disabled",
            ))
            .await
            .expect("a principal with less power can be disabled and enabled");
    }
    let fetched = app
        .admin(&tenant.admin_token)
        .get_principal(proto::GetPrincipalRequest {
            id: deleter.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap();
    assert_eq!(fetched.permissions, vec!["tokens.delete"]);
    assert_eq!(fetched.display_name, "deleter");
}

backend_tests!(application_permissions_come_in_by_escalate_and_are_audited);

async fn application_permissions_come_in_by_escalate_and_are_audited() {
    let app = TestApp::spawn().await;
    // A fresh tenant whose administrator holds the tenant permissions (escalate included),
    // but no application permission: the client library's walk-through (docs/client-library.md).
    let tenant = app.create_tenant("Acme", &[]).await;
    let backend = app
        .admin(&tenant.admin_token)
        .create_principal(proto::CreatePrincipalRequest {
            kind: PrincipalKind::ServiceAccount as i32,
            display_name: "orders-client".into(),
            permissions: vec!["orders.read".into()],
            ..Default::default()
        })
        .await
        .expect("escalate brings orders.read into the account")
        .into_inner()
        .principal
        .unwrap();
    let token = app
        .create_token(&tenant.admin_token, &backend.id, &["orders.read"])
        .await;
    let verified = app.verify(&token.secret, &["orders.read"]).await;
    assert_eq!(code_of(&verified), VerificationCode::Valid);
    // Both grants are on record, naming what was escalated.
    let events = app
        .admin(&tenant.admin_token)
        .list_audit_events(proto::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    for (action, target) in [
        ("principal.create", backend.id.clone()),
        ("token.create", token.token.unwrap().id),
    ] {
        let event = events
            .iter()
            .find(|e| e.action == action && e.target_id == target)
            .unwrap_or_else(|| panic!("no {action} event"));
        assert_eq!(
            event
                .details
                .get("escalated_permissions")
                .map(String::as_str),
            Some("orders.read")
        );
    }

    // Without escalate, an administrator holding every other tenant permission cannot.
    let limited = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "limited-admin",
            &["principals.manage", "tokens.create", "tokens.read"],
        )
        .await;
    let limited_token = app
        .create_token(&tenant.admin_token, &limited.id, &[])
        .await
        .secret;
    let status = assert_code(
        app.admin(&limited_token)
            .create_principal(proto::CreatePrincipalRequest {
                kind: PrincipalKind::ServiceAccount as i32,
                display_name: "x".into(),
                permissions: vec!["orders.write".into()],
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(
        status.message().contains("permissions.escalate"),
        "{status:?}"
    );
    assert_code(
        app.tokens(&limited_token)
            .create_token(proto::CreateTokenRequest {
                owner_id: backend.id.clone(),
                name: "x".into(),
                scopes: vec!["orders.read".into()],
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    // Escalate never reaches system permissions.
    let escalator = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "escalator",
            &["principals.manage", "permissions.escalate"],
        )
        .await;
    let escalator_token = app
        .create_token(&tenant.admin_token, &escalator.id, &[])
        .await
        .secret;
    let status = assert_code(
        app.admin(&escalator_token)
            .create_principal(proto::CreatePrincipalRequest {
                kind: PrincipalKind::User as i32,
                display_name: "x".into(),
                permissions: vec!["tokens.delete".into(), "orders.write".into()],
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("tokens.delete"), "{status:?}");
}

backend_tests!(unscoped_tokens_issued_for_others_do_not_grow_with_their_owner);

async fn unscoped_tokens_issued_for_others_do_not_grow_with_their_owner() {
    let app = TestApp::spawn().await;
    let tenant = app
        .create_tenant("Acme", &["orders.read", "orders.write"])
        .await;
    let robot = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "robot",
            &["orders.read"],
        )
        .await;
    let created = app.create_token(&tenant.admin_token, &robot.id, &[]).await;
    assert_eq!(created.token.as_ref().unwrap().scopes, vec!["orders.read"]);
    app.admin(&tenant.admin_token)
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: robot.id.clone(),
                permissions: vec!["orders.read".into(), "orders.write".into()],
                ..Default::default()
            }),
            update_mask: mask("permissions"),
        })
        .await
        .unwrap();
    let verified = app.verify(&created.secret, &["orders.write"]).await;
    assert_eq!(code_of(&verified), VerificationCode::InsufficientScopes);
    // A secret its owner gets through a scoped token is pinned too: the tenant admin's
    // token was issued by the operator, so it is pinned, and so is what it issues. (Once,
    // only the owner's identity was checked, and this secret grew with the owner.)
    let own = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let mut expected: Vec<&str> = TENANT_PERMISSIONS.to_vec();
    expected.extend(["orders.read", "orders.write"]);
    expected.sort_unstable();
    assert_eq!(own.token.unwrap().scopes, expected);
    // Only an owner's unscoped token issues unscoped ones: nobody else knows their secret.
    let owner_id = app.bootstrap_owner_id().await;
    let unscoped = app.create_token(&app.bootstrap_token, &owner_id, &[]).await;
    assert!(unscoped.token.unwrap().scopes.is_empty());
}

backend_tests!(a_reset_secret_carries_only_what_its_owner_holds_now);

async fn a_reset_secret_carries_only_what_its_owner_holds_now() {
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
    let token = app
        .create_token(
            &tenant.admin_token,
            &robot.id,
            &["orders.read", "orders.write"],
        )
        .await;
    let token_id = token.token.unwrap().id;
    let grant = |permissions: &[&str]| proto::UpdatePrincipalRequest {
        principal: Some(proto::Principal {
            id: robot.id.clone(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            ..Default::default()
        }),
        update_mask: mask("permissions"),
    };
    let mut admin = app.admin(&tenant.admin_token);
    admin
        .update_principal(grant(&["orders.read"]))
        .await
        .unwrap();
    let reset = app
        .tokens(&tenant.admin_token)
        .reset_token(proto::ResetTokenRequest {
            id: token_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reset.token.unwrap().scopes, vec!["orders.read"]);
    // The owner regains `orders.write`: the secret the admin now knows does not.
    admin
        .update_principal(grant(&["orders.read", "orders.write"]))
        .await
        .unwrap();
    let verified = app.verify(&reset.secret, &["orders.write"]).await;
    assert_eq!(code_of(&verified), VerificationCode::InsufficientScopes);

    // A disabled owner gets no new secrets, by reset as by create and duplicate.
    admin
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: robot.id.clone(),
                disabled: true,
                ..Default::default()
            }),
            update_mask: mask("disabled"),
        })
        .await
        .unwrap();
    assert_code(
        app.tokens(&tenant.admin_token)
            .reset_token(proto::ResetTokenRequest {
                id: token_id,
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
    );
}

backend_tests!(a_token_manager_cannot_change_a_more_powerful_token);

async fn a_token_manager_cannot_change_a_more_powerful_token() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let helper = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "helper",
            &["tokens.read", "tokens.update", "tokens.delete"],
        )
        .await;
    let helper_token = app
        .create_token(&tenant.admin_token, &helper.id, &[])
        .await
        .secret;
    let admin_token_id = token_id_of(&app, &tenant.admin_token).await;
    let mut tokens = app.tokens(&helper_token);
    let refused = [
        tokens
            .revoke_token(proto::RevokeTokenRequest {
                id: admin_token_id.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        tokens
            .disable_token(proto::DisableTokenRequest {
                id: admin_token_id.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        tokens
            .enable_token(proto::EnableTokenRequest {
                id: admin_token_id.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        tokens
            .update_token(proto::UpdateTokenRequest {
                token: Some(proto::Token {
                    id: admin_token_id.clone(),
                    name: "mine now".into(),
                    ..Default::default()
                }),
                update_mask: mask("name"),
            })
            .await
            .map(drop),
        tokens
            .delete_token(proto::DeleteTokenRequest {
                id: admin_token_id.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
    ];
    for result in refused {
        let status = assert_code(result, Code::PermissionDenied);
        assert!(status.message().contains("principals.manage"), "{status:?}");
    }
    // The administrator was not locked out.
    assert!(app.verify(&tenant.admin_token, &[]).await.valid);
    // Tokens within the helper's power it manages: a narrower one of the admin's.
    let narrow = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["tokens.read"])
        .await;
    tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: narrow.token.unwrap().id,
            ..Default::default()
        })
        .await
        .expect("a token within the caller's power");
}

backend_tests!(times_far_in_the_future_are_refused_not_a_panic);

async fn times_far_in_the_future_are_refused_not_a_panic() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    // Year ~255,000: accepted once, after which DuplicateToken overflowed.
    let far = prost_types::Timestamp {
        seconds: 8_000_000_000_000,
        nanos: 0,
    };
    let century_and_a_day = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 36_501 * 86_400,
        nanos: 0,
    };
    for at in [far, century_and_a_day] {
        let status = assert_code(
            tokens
                .create_token(proto::CreateTokenRequest {
                    name: "far".into(),
                    expiry: Some(proto::create_token_request::Expiry::ExpireTime(at)),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
        );
        assert!(status.message().contains("expire_time"));
        let existing = app
            .create_token(&tenant.admin_token, &tenant.admin_id, &[])
            .await;
        assert_code(
            tokens
                .update_token(proto::UpdateTokenRequest {
                    token: Some(proto::Token {
                        id: existing.token.unwrap().id,
                        expire_time: Some(at),
                        ..Default::default()
                    }),
                    update_mask: mask("expire_time"),
                })
                .await,
            Code::InvalidArgument,
        );
    }
    for seconds in [i64::MAX, 36_501 * 86_400] {
        assert_code(
            tokens
                .create_token(proto::CreateTokenRequest {
                    name: "long".into(),
                    expiry: Some(proto::create_token_request::Expiry::Ttl(
                        prost_types::Duration { seconds, nanos: 0 },
                    )),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
        );
        let existing = app
            .create_token(&tenant.admin_token, &tenant.admin_id, &[])
            .await;
        assert_code(
            tokens
                .reset_token(proto::ResetTokenRequest {
                    id: existing.token.unwrap().id,
                    grace_period: grace(seconds),
                    etag: String::new(),
                })
                .await,
            Code::InvalidArgument,
        );
    }
    // A token at the 100-year limit duplicates fine.
    let longest = tokens
        .create_token(proto::CreateTokenRequest {
            name: "century".into(),
            expiry: Some(proto::create_token_request::Expiry::Ttl(
                prost_types::Duration {
                    seconds: 36_500 * 86_400,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    tokens
        .duplicate_token(proto::DuplicateTokenRequest {
            id: longest.token.unwrap().id,
            name: String::new(),
        })
        .await
        .expect("a duplicate of the longest-lived token");
}

backend_tests!(switching_api_access_off_takes_an_operator_with_power_over_the_account);

async fn switching_api_access_off_takes_an_operator_with_power_over_the_account() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let operator_account = app.verify(&app.bootstrap_token, &[]).await.account_id;
    // A tenant principal given accounts.manage cannot switch its own account off: nobody in
    // it could switch it back on.
    let manager = app
        .create_principal(
            &app.bootstrap_token,
            &tenant.account_id,
            "manager",
            &["accounts.manage"],
        )
        .await;
    let manager_token = app
        .create_token(&app.bootstrap_token, &manager.id, &[])
        .await
        .secret;
    assert_code(
        app.admin(&manager_token)
            .set_api_access(proto::SetApiAccessRequest {
                account_id: String::new(),
                enabled: false,
            })
            .await,
        Code::PermissionDenied,
    );
    // An operator holding only accounts.manage cannot lock out a tenant whose principals
    // hold more than it does.
    let switcher = app
        .create_principal(
            &app.bootstrap_token,
            &operator_account,
            "switcher",
            &["accounts.manage"],
        )
        .await;
    let switcher_token = app
        .create_token(&app.bootstrap_token, &switcher.id, &[])
        .await
        .secret;
    let status = assert_code(
        app.admin(&switcher_token)
            .set_api_access(proto::SetApiAccessRequest {
                account_id: tenant.account_id.clone(),
                enabled: false,
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("principals.manage"), "{status:?}");
    assert!(
        app.verify(&tenant.admin_token, &[]).await.valid,
        "nothing was revoked"
    );
    // The bootstrap owner can.
    app.operator_admin()
        .set_api_access(proto::SetApiAccessRequest {
            account_id: tenant.account_id.clone(),
            enabled: false,
        })
        .await
        .expect("the owner holds power over every principal");
    assert!(!app.verify(&tenant.admin_token, &[]).await.valid);
}
