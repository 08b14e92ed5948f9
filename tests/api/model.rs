//! The authorization model, searched rather than sampled: random principals with random
//! permission sets (system and application), random token scopes, and a random RPC that
//! hands out a secret or changes a principal, run against the real server. After each call:
//! no secret can do more than its caller may grant, no principal was changed beyond the
//! caller's power, and every answer is a defined, expected gRPC code.
//!
//! `cargo test` runs 64 cases; `PROPTEST_CASES=2000 cargo test --test api model` searches
//! longer.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tonic::Code;

use token_authority::proto::{self, PrincipalKind};

use crate::helpers::{Tenant, TestApp};

/// The permissions the model draws from: the tenant's system permissions and two
/// application ones.
const POOL: [&str; 10] = [
    "tokens.read",
    "tokens.create",
    "tokens.update",
    "tokens.delete",
    "tokens.verify",
    "principals.manage",
    "audit.read",
    "permissions.escalate",
    "orders.read",
    "orders.write",
];

fn is_application(permission: &str) -> bool {
    permission.starts_with("orders.")
}

type Set = BTreeSet<&'static str>;

fn subset() -> impl Strategy<Value = Set> {
    proptest::sample::subsequence(POOL.to_vec(), 0..=POOL.len())
        .prop_map(|v| v.into_iter().collect())
}

#[derive(Debug, Clone)]
enum Action {
    CreateToken { scopes: Set },
    ResetToken,
    DuplicateToken,
    SetPermissions(Set),
    SetDisabled(bool),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        subset().prop_map(|scopes| Action::CreateToken { scopes }),
        Just(Action::ResetToken),
        Just(Action::DuplicateToken),
        subset().prop_map(Action::SetPermissions),
        any::<bool>().prop_map(Action::SetDisabled),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    caller_permissions: Set,
    caller_scopes: Set,
    target_permissions: Set,
    target_token_scopes: Set,
    action: Action,
}

/// The permission the action's RPC requires.
fn required(action: &Action) -> &'static str {
    match action {
        Action::CreateToken { .. } => "tokens.create",
        Action::ResetToken | Action::DuplicateToken => "tokens.update",
        Action::SetPermissions(_) | Action::SetDisabled(_) => "principals.manage",
    }
}

/// Cases biased towards the interesting ones: the caller usually holds the permission its
/// call requires, and the target often holds only what the caller holds.
fn case() -> impl Strategy<Value = Case> {
    (subset(), subset(), subset(), subset(), action(), 0u8..4).prop_map(
        |(mut caller_permissions, mut caller_scopes, target, target_token_scopes, action, bias)| {
            if bias > 0 {
                caller_permissions.insert(required(&action));
                if !caller_scopes.is_empty() {
                    caller_scopes.insert(required(&action));
                }
            }
            let target_permissions = if bias > 1 {
                target.intersection(&caller_permissions).copied().collect()
            } else {
                target
            };
            Case {
                caller_permissions,
                caller_scopes,
                target_permissions,
                target_token_scopes,
                action,
            }
        },
    )
}

fn strings(set: &Set) -> Vec<String> {
    set.iter().map(|p| (*p).to_owned()).collect()
}

/// What the caller may grant: what it holds, plus every application permission with
/// `permissions.escalate`.
fn beyond(caller: &Set, wanted: &Set) -> Set {
    let escalates = caller.contains("permissions.escalate");
    wanted
        .iter()
        .filter(|p| !(caller.contains(*p) || escalates && is_application(p)))
        .copied()
        .collect()
}

/// A token for `owner` with `scopes`, issued by the tenant's administrator; None when the
/// administrator may not (an unscoped token for a principal without permissions).
async fn issue(
    app: &TestApp,
    tenant: &Tenant,
    owner: &str,
    scopes: &Set,
) -> Option<(String, String)> {
    let created = app
        .tokens(&tenant.admin_token)
        .create_token(proto::CreateTokenRequest {
            owner_id: owner.to_owned(),
            name: "model".into(),
            scopes: strings(scopes),
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    Some((created.token?.id, created.secret))
}

/// The effective permissions of `secret`, as the operator's verification reports them.
async fn effective(app: &TestApp, secret: &str) -> Set {
    let answer = app.verify(secret, &[]).await;
    answer
        .effective_scopes
        .iter()
        .filter_map(|p| POOL.iter().find(|q| **q == p.as_str()).copied())
        .collect()
}

async fn check(app: &TestApp, tenant: &Tenant, case: Case) -> Result<(), TestCaseError> {
    let admin = app.admin(&tenant.admin_token);
    let principal = |name: &str, permissions: &Set| proto::CreatePrincipalRequest {
        kind: PrincipalKind::ServiceAccount as i32,
        display_name: name.to_owned(),
        permissions: strings(permissions),
        ..Default::default()
    };
    let caller = admin
        .clone()
        .create_principal(principal("caller", &case.caller_permissions))
        .await
        .expect("the administrator escalates to anything")
        .into_inner()
        .principal
        .expect("principal");
    let target = admin
        .clone()
        .create_principal(principal("target", &case.target_permissions))
        .await
        .expect("the administrator escalates to anything")
        .into_inner()
        .principal
        .expect("principal");
    let caller_scopes: Set = case
        .caller_scopes
        .intersection(&case.caller_permissions)
        .copied()
        .collect();
    let target_scopes: Set = case
        .target_token_scopes
        .intersection(&case.target_permissions)
        .copied()
        .collect();
    let (Some((_, caller_secret)), Some((target_token, _))) = (
        issue(app, tenant, &caller.id, &caller_scopes).await,
        issue(app, tenant, &target.id, &target_scopes).await,
    ) else {
        return Ok(());
    };
    // What the caller's call may do, read back from the server itself.
    let held = effective(app, &caller_secret).await;
    let mut tokens = app.tokens(&caller_secret);
    let mut caller_admin = app.admin(&caller_secret);
    let secret = match &case.action {
        Action::CreateToken { scopes } => tokens
            .create_token(proto::CreateTokenRequest {
                owner_id: target.id.clone(),
                name: "x".into(),
                scopes: strings(scopes),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().secret),
        Action::ResetToken => tokens
            .reset_token(proto::ResetTokenRequest {
                id: target_token.clone(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().secret),
        Action::DuplicateToken => tokens
            .duplicate_token(proto::DuplicateTokenRequest {
                id: target_token.clone(),
                name: String::new(),
            })
            .await
            .map(|r| r.into_inner().secret),
        Action::SetPermissions(_) | Action::SetDisabled(_) => {
            let (values, path) = match &case.action {
                Action::SetPermissions(set) => (
                    proto::Principal {
                        permissions: strings(set),
                        ..Default::default()
                    },
                    "permissions",
                ),
                Action::SetDisabled(disabled) => (
                    proto::Principal {
                        disabled: *disabled,
                        ..Default::default()
                    },
                    "disabled",
                ),
                _ => unreachable!("matched above"),
            };
            let outcome = caller_admin
                .update_principal(proto::UpdatePrincipalRequest {
                    principal: Some(proto::Principal {
                        id: target.id.clone(),
                        ..values
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec![path.to_owned()],
                    }),
                })
                .await;
            match outcome {
                Ok(_) => {
                    prop_assert!(held.contains("principals.manage"));
                    prop_assert!(
                        beyond(&held, &case.target_permissions).is_empty(),
                        "changed a principal holding more than the caller: {:?}",
                        beyond(&held, &case.target_permissions)
                    );
                    if let Action::SetPermissions(set) = &case.action {
                        prop_assert!(
                            beyond(&held, set).is_empty(),
                            "granted {:?}",
                            beyond(&held, set)
                        );
                    }
                }
                Err(status) => prop_assert!(
                    matches!(status.code(), Code::PermissionDenied),
                    "unexpected answer {status:?}"
                ),
            }
            return Ok(());
        }
    };
    match secret {
        Ok(secret) => {
            let granted = effective(app, &secret).await;
            prop_assert!(
                beyond(&held, &granted).is_empty(),
                "{:?} handed out a secret beyond the caller: {:?}",
                case.action,
                beyond(&held, &granted)
            );
        }
        Err(status) => prop_assert!(
            matches!(
                status.code(),
                Code::PermissionDenied | Code::InvalidArgument | Code::FailedPrecondition
            ),
            "unexpected answer {status:?}"
        ),
    }
    Ok(())
}

#[test]
fn no_sequence_of_grants_and_issues_escalates() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (app, tenant) = runtime.block_on(async {
        let app = TestApp::spawn().await;
        let tenant = app
            .create_tenant("Model", &["orders.read", "orders.write"])
            .await;
        (app, tenant)
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&case(), |case| runtime.block_on(check(&app, &tenant, case)));
    if let Err(error) = outcome {
        panic!("{error}");
    }
}
