//! Upgrades: data written under an older schema means the same after the migrations. The
//! test rewinds a database to before `permissions.escalate` and `tokens.report_leaked`
//! became system permissions, writes what an old server accepted (the names as application
//! permissions), and restarts.

use token_authority::proto::{self, VerificationCode};

use token_authority::startup::Application;

use crate::helpers::{Backend, TestApp, backend, code_of, execute_sql, test_settings};

backend_tests!(names_granted_as_application_permissions_are_not_the_system_ones);

async fn names_granted_as_application_permissions_are_not_the_system_ones() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", &[]).await;
    let legacy = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "legacy",
            &["tokens.read"],
        )
        .await;
    let token = app.create_token(&tenant.admin_token, &legacy.id, &[]).await;
    let owner_id = app.bootstrap_owner_id().await;
    let stopped = app.stop().await;

    // What an old server stored: `permissions.escalate` granted as an application
    // permission, and a token scoped to nothing else. Then the migrations since run again.
    // The permission migrations, and only those (later schema changes stay applied).
    let (first_escalate_migration, report_leaked_migration) = match backend() {
        Backend::Sqlite => (3, 5),
        Backend::Postgres => (2, 4),
    };
    execute_sql(&stopped.database_url, &[
        format!(
            "UPDATE principals SET permissions = '[\"permissions.escalate\",\"tokens.read\",\"tokens.report_leaked\"]' WHERE id = '{}'",
            legacy.id
        ),
        format!(
            "UPDATE tokens SET scopes = '[\"permissions.escalate\",\"tokens.report_leaked\"]' WHERE id = '{}'",
            token.token.as_ref().unwrap().id
        ),
        // A bootstrap owner from before `tokens.report_leaked`.
        format!(
            "UPDATE principals SET permissions = '[\"accounts.manage\",\"audit.read\",\"permissions.escalate\",\"principals.manage\",\"tokens.create\",\"tokens.delete\",\"tokens.read\",\"tokens.update\",\"tokens.verify\"]' WHERE id = '{owner_id}'"
        ),
        format!(
            "DELETE FROM _sqlx_migrations WHERE version BETWEEN {first_escalate_migration} AND {report_leaked_migration}"
        ),
    ])
    .await;
    let app = TestApp::restart(stopped, |_| {}).await;

    let principal = app
        .operator_admin()
        .get_principal(proto::GetPrincipalRequest {
            id: legacy.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap();
    assert_eq!(principal.permissions, vec!["tokens.read"]);
    let token_id = token.token.as_ref().unwrap().id.clone();
    let stored = app
        .operator_tokens()
        .get_token(proto::GetTokenRequest {
            id: token_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(
        stored.scopes,
        vec!["legacy.permissions.escalate", "legacy.tokens.report_leaked"],
        "not emptied: an empty list would mean every permission of the owner"
    );
    // The token still authenticates and can do nothing.
    let answer = app.verify(&token.secret, &[]).await;
    assert_eq!(code_of(&answer), VerificationCode::Valid);
    assert!(answer.effective_scopes.is_empty(), "{answer:?}");
    // The bootstrap owner keeps `permissions.escalate` and gains `tokens.report_leaked`.
    let owner = app
        .operator_admin()
        .get_principal(proto::GetPrincipalRequest { id: owner_id })
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap();
    for system in ["permissions.escalate", "tokens.report_leaked"] {
        assert!(owner.permissions.iter().any(|p| p == system), "{system}");
    }

    // Both changes are on record in the tenant's audit log, with the reason.
    let events = app
        .admin(&tenant.admin_token)
        .list_audit_events(proto::ListAuditEventsRequest {
            action: "principal.update".into(),
            target_id: legacy.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let mut removed: Vec<&str> = events
        .iter()
        .map(|e| e.details["removed_permissions"].as_str())
        .collect();
    removed.sort();
    assert_eq!(removed, ["permissions.escalate", "tokens.report_leaked"]);
    assert!(events.iter().all(|e| e.actor_id.is_empty()), "{events:?}");
    let events = app
        .admin(&tenant.admin_token)
        .list_audit_events(proto::ListAuditEventsRequest {
            action: "token.update".into(),
            target_id: token_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len(), 2, "{events:?}");
}

backend_tests!(a_binary_starts_on_a_schema_a_newer_release_migrated);

// During a rolling upgrade, a replica of the previous release restarts after a newer one
// has migrated the shared database; on a rollback, the old binary meets the new schema.
async fn a_binary_starts_on_a_schema_a_newer_release_migrated() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", &[]).await;
    let stopped = app.stop().await;
    let checksum = match backend() {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "'\\x00'::bytea",
    };
    execute_sql(&stopped.database_url, &[format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer release', TRUE, {checksum}, 0)"
    )])
    .await;
    let app = TestApp::restart(stopped, |_| {}).await;
    assert!(app.verify(&tenant.admin_token, &[]).await.valid);
}

backend_tests!(a_server_that_does_not_migrate_refuses_a_database_that_lacks_its_migrations);

// Serving with --migrate-on-start false after forgetting `token-authority migrate`: a data
// migration that is missing fails no query, so the server must refuse to start.
async fn a_server_that_does_not_migrate_refuses_a_database_that_lacks_its_migrations() {
    let app = TestApp::spawn().await;
    let stopped = app.stop().await;
    execute_sql(&stopped.database_url, &[
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)"
            .to_owned(),
    ])
    .await;
    let mut settings = test_settings(&stopped.database_url);
    settings.migrate_on_start = false;
    let refused = match Application::build(settings).await {
        Ok(_) => panic!("a server started on a database that lacks a migration"),
        Err(error) => format!("{:#}", anyhow::Error::from(error)),
    };
    assert!(
        refused.contains("lacks migration") && refused.contains("token-authority migrate"),
        "{refused}"
    );
}
