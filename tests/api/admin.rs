//! AdminService: accounts, principals and the audit log.

use prost_types::FieldMask;
use tonic::Code;

use token_authority::proto::{self, PrincipalKind};

use crate::helpers::{TestApp, assert_code};

backend_tests!(accounts_are_created_read_and_switched);

async fn accounts_are_created_read_and_switched() {
    let app = TestApp::spawn().await;
    let mut admin = app.operator_admin();
    let own = admin
        .get_account(proto::GetAccountRequest::default())
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert!(own.operator);
    assert!(own.api_access_enabled);
    let created = admin
        .create_account(proto::CreateAccountRequest {
            display_name: "  Initech  ".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(created.display_name, "Initech");
    assert!(created.id.starts_with("acc_"));
    assert!(created.api_access_enabled && !created.operator);
    let fetched = admin
        .get_account(proto::GetAccountRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(fetched, created);
    let switched = admin
        .set_api_access(proto::SetApiAccessRequest {
            account_id: created.id.clone(),
            enabled: false,
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert!(!switched.api_access_enabled);
    assert_ne!(switched.etag, created.etag);
}

backend_tests!(principals_are_created_listed_in_pages_and_updated);

async fn principals_are_created_listed_in_pages_and_updated() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut admin = app.admin(&tenant.admin_token);
    let mut ids = vec![tenant.admin_id.clone()];
    for i in 0..4 {
        let principal = admin
            .create_principal(proto::CreatePrincipalRequest {
                kind: PrincipalKind::User as i32,
                display_name: format!("user {i}"),
                permissions: vec!["orders.read".into(), "tokens.read".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .principal
            .unwrap();
        assert_eq!(principal.account_id, tenant.account_id);
        assert_eq!(principal.kind(), PrincipalKind::User);
        ids.push(principal.id);
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_principals(proto::ListPrincipalsRequest {
                page_size: 2,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.principals.into_iter().map(|p| p.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ids);

    let target = admin
        .get_principal(proto::GetPrincipalRequest { id: ids[1].clone() })
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap();
    let updated = admin
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: target.id.clone(),
                display_name: "renamed".into(),
                permissions: vec!["orders.write".into()],
                disabled: true,
                etag: target.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["display_name".into(), "permissions".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap();
    assert_eq!(updated.display_name, "renamed");
    assert_eq!(updated.permissions, vec!["orders.write"]);
    assert!(!updated.disabled, "not in the mask");
    // A stale etag is refused.
    let stale = admin
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: target.id.clone(),
                disabled: true,
                etag: target.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["disabled".into()],
            }),
        })
        .await;
    assert_code(stale, Code::Aborted);
    // Nobody disables themselves (and locks themselves out).
    let own = admin
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: tenant.admin_id.clone(),
                disabled: true,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["disabled".into()],
            }),
        })
        .await;
    assert_code(own, Code::FailedPrecondition);
}

backend_tests!(the_audit_log_records_who_did_what_and_filters_and_pages);

async fn the_audit_log_records_who_did_what_and_filters_and_pages() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    tokens
        .disable_token(proto::DisableTokenRequest {
            id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .enable_token(proto::EnableTokenRequest {
            id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: created.id.clone(),
            reason: "rotation".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut admin = app.admin(&tenant.admin_token);
    let events = admin
        .list_audit_events(proto::ListAuditEventsRequest {
            target_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "token.revoke",
            "token.enable",
            "token.disable",
            "token.create"
        ]
    );
    assert_eq!(events[0].details["reason"], "rotation");
    assert!(events.iter().all(|e| e.actor_id == tenant.admin_id
        && e.target_type == "token"
        && e.occur_time.is_some()));

    let revokes = admin
        .list_audit_events(proto::ListAuditEventsRequest {
            action: "token.revoke".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(revokes.len(), 1);
    let by_actor = admin
        .list_audit_events(proto::ListAuditEventsRequest {
            actor_id: tenant.admin_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(by_actor.len(), 4, "the tenant admin's own four actions");

    // Pages of one, newest first, without gaps or repeats.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_audit_events(proto::ListAuditEventsRequest {
                page_size: 1,
                page_token: page_token.clone(),
                target_id: created.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.events.into_iter().map(|e| e.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        seen,
        events.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
}
