//! The authorization model, searched rather than sampled. Each case builds a fresh tenant
//! with random principals (random system and application permissions) and tokens (random
//! scopes), sometimes an operator-account principal of limited power, and runs a random
//! sequence of RPCs as random callers against the real server, on the tenant's objects, the
//! operator account's and another tenant's. Secrets a step hands out join the pool of
//! callers, so power can be chained from step to step. After every step:
//!
//! - no secret handed out can do more than its caller may grant at that moment, nor ever
//!   grow afterwards (whatever its owner is granted later);
//! - no principal or token holding more than the caller may grant was changed, and no
//!   permission the caller may not grant was granted;
//! - no caller read or changed another account's objects unless it is an operator;
//! - a call succeeded only with the permission it requires, from a caller whose token works;
//! - every answer is a defined, expected gRPC code (never UNKNOWN, INTERNAL or CANCELLED).
//!
//! `cargo test` runs 96 cases; `PROPTEST_CASES=2000 cargo test --test api model` searches
//! longer.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tonic::{Code, Status};

use token_authority::proto::{self, PrincipalKind};

use crate::helpers::{Tenant, TestApp};

/// The permissions the model draws from: the tenant's system permissions and three
/// application ones (the tenant's administrator starts without `orders.delete`).
const POOL: [&str; 11] = [
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
    "orders.delete",
];

fn is_application(permission: &str) -> bool {
    permission.starts_with("orders.")
}

type Set = BTreeSet<&'static str>;

fn subset() -> impl Strategy<Value = Set> {
    proptest::sample::subsequence(POOL.to_vec(), 0..=POOL.len())
        .prop_map(|v| v.into_iter().collect())
}

fn to_set(values: &[String]) -> Set {
    values
        .iter()
        .filter_map(|p| POOL.iter().find(|q| **q == p.as_str()).copied())
        .collect()
}

#[derive(Debug, Clone)]
enum Action {
    CreateToken(Set),
    ResetToken,
    DuplicateToken,
    RevokeToken,
    DisableToken,
    EnableToken,
    DeleteToken,
    ExtendToken,
    NarrowScopes(Set),
    SetPermissions(Set),
    SetDisabled(bool),
    GetToken,
    ListTokens,
    /// Not a call of the actor's: the bootstrap owner grants every principal of the tenant
    /// more permissions, as administrators might at any time.
    OperatorGrants(Set),
}

impl Action {
    /// The permission the action's RPC requires.
    fn required(&self) -> &'static str {
        match self {
            Self::CreateToken(_) => "tokens.create",
            Self::DeleteToken => "tokens.delete",
            Self::GetToken | Self::ListTokens => "tokens.read",
            Self::SetPermissions(_) | Self::SetDisabled(_) | Self::OperatorGrants(_) => {
                "principals.manage"
            }
            _ => "tokens.update",
        }
    }
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        prop_oneof![Just(Set::new()), subset()].prop_map(Action::CreateToken),
        Just(Action::ResetToken),
        Just(Action::DuplicateToken),
        Just(Action::RevokeToken),
        Just(Action::DisableToken),
        Just(Action::EnableToken),
        Just(Action::DeleteToken),
        Just(Action::ExtendToken),
        subset().prop_map(Action::NarrowScopes),
        subset().prop_map(Action::SetPermissions),
        any::<bool>().prop_map(Action::SetDisabled),
        Just(Action::GetToken),
        Just(Action::ListTokens),
        subset().prop_map(Action::OperatorGrants),
    ]
}

/// Whose objects a step acts on.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// The principal and token at this index of the pools (modulo their length).
    Index(usize),
    /// The caller's own principal and token.
    Itself,
    /// The other tenant's.
    Foreign,
}

/// One call: `actor` indexes the pool of credentials (modulo its length).
#[derive(Debug, Clone)]
struct Step {
    actor: usize,
    aim: Aim,
    action: Action,
}

fn step() -> impl Strategy<Value = Step> {
    let aim = prop_oneof![
        6 => any::<usize>().prop_map(Aim::Index),
        3 => Just(Aim::Itself),
        2 => Just(Aim::Foreign),
    ];
    (any::<usize>(), aim, action()).prop_map(|(actor, aim, action)| Step { actor, aim, action })
}

/// A principal to create: its permissions, and the scopes of the token issued for it.
type Member = (Set, Set);

#[derive(Debug, Clone)]
struct Case {
    members: Vec<Member>,
    /// A principal of the operator account, of limited power.
    operator: Option<Member>,
    steps: Vec<Step>,
}

fn member_case() -> impl Strategy<Value = Member> {
    (subset(), subset()).prop_map(|(permissions, scopes)| {
        let scopes = scopes.intersection(&permissions).copied().collect();
        (permissions, scopes)
    })
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(member_case(), 1..=3),
        proptest::option::weighted(0.3, member_case()),
        proptest::collection::vec(step(), 1..=8),
    )
        .prop_map(|(members, operator, steps)| Case {
            members,
            operator,
            steps,
        })
}

fn strings(set: &Set) -> Vec<String> {
    set.iter().map(|p| (*p).to_owned()).collect()
}

/// The permissions in `wanted` a caller holding `held` may not grant: those it lacks, but
/// for application ones when it holds `permissions.escalate`.
fn beyond(held: &Set, wanted: &Set) -> Set {
    let escalates = held.contains("permissions.escalate");
    wanted
        .iter()
        .filter(|p| !(held.contains(*p) || escalates && is_application(p)))
        .copied()
        .collect()
}

/// A secret in the pool of callers.
#[derive(Debug, Clone)]
struct Credential {
    secret: String,
    token_id: String,
    owner_id: String,
    account_id: String,
    /// What the token could do when the secret was handed out. Every secret in the model
    /// was handed to someone other than an owner with an unscoped token of its own, so it
    /// is pinned: it may shrink but never grow, whatever later steps grant its owner.
    issued_power: Set,
}

/// The objects of a case.
struct World {
    /// Principals the steps act on (the tenant's).
    principals: Vec<String>,
    /// Callers, and the tokens the steps act on.
    credentials: Vec<Credential>,
    operator_account: String,
    foreign_principal: String,
    foreign_token: String,
    foreign_account: String,
}

/// What a token can do now: its scopes within its owner's permissions, read by the
/// operator; None once it is gone.
async fn power_of(app: &TestApp, token_id: &str) -> Option<Set> {
    let token = app
        .operator_tokens()
        .get_token(proto::GetTokenRequest {
            id: token_id.to_owned(),
        })
        .await
        .ok()?
        .into_inner()
        .token?;
    let owner = app
        .operator_admin()
        .get_principal(proto::GetPrincipalRequest { id: token.owner_id })
        .await
        .ok()?
        .into_inner()
        .principal?;
    let permissions = to_set(&owner.permissions);
    let scopes = to_set(&token.scopes);
    if token.scopes.is_empty() {
        Some(permissions)
    } else {
        Some(scopes.intersection(&permissions).copied().collect())
    }
}

async fn principal_permissions(app: &TestApp, id: &str) -> Set {
    let principal = app
        .operator_admin()
        .get_principal(proto::GetPrincipalRequest { id: id.to_owned() })
        .await
        .expect("principals are never deleted")
        .into_inner()
        .principal
        .expect("principal");
    to_set(&principal.permissions)
}

/// Creates a principal in `account_id` with `permissions` and a token with `scopes` for
/// it, both as `issuer`; None when the issuer may not (e.g. a pinned token for a principal
/// without permissions).
async fn member(
    app: &TestApp,
    issuer: &str,
    account_id: &str,
    (permissions, scopes): &Member,
) -> Option<(String, Credential)> {
    let principal = app
        .admin(issuer)
        .create_principal(proto::CreatePrincipalRequest {
            account_id: account_id.to_owned(),
            kind: PrincipalKind::ServiceAccount as i32,
            display_name: "member".into(),
            permissions: strings(permissions),
        })
        .await
        .expect("the issuer escalates to anything")
        .into_inner()
        .principal
        .expect("principal");
    let created = app
        .tokens(issuer)
        .create_token(proto::CreateTokenRequest {
            owner_id: principal.id.clone(),
            name: "member".into(),
            scopes: strings(scopes),
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    let token_id = created.token?.id;
    let credential = Credential {
        secret: created.secret,
        owner_id: principal.id.clone(),
        issued_power: power_of(app, &token_id).await?,
        token_id,
        account_id: account_id.to_owned(),
    };
    Some((principal.id, credential))
}

async fn build(app: &TestApp, foreign: &Tenant, operator_account: &str, case: &Case) -> World {
    let tenant = app
        .create_tenant("Model", &["orders.read", "orders.write"])
        .await;
    // The tenant's administrator is a caller too: it may grant and issue anything in it.
    let admin_token_id = app.verify(&tenant.admin_token, &[]).await.token_id;
    let admin = Credential {
        secret: tenant.admin_token.clone(),
        issued_power: power_of(app, &admin_token_id).await.unwrap_or_default(),
        token_id: admin_token_id,
        owner_id: tenant.admin_id.clone(),
        account_id: tenant.account_id.clone(),
    };
    let mut world = World {
        principals: vec![tenant.admin_id.clone()],
        credentials: vec![admin],
        operator_account: operator_account.to_owned(),
        foreign_principal: foreign.admin_id.clone(),
        foreign_token: app.verify(&foreign.admin_token, &[]).await.token_id,
        foreign_account: foreign.account_id.clone(),
    };
    for member_case in &case.members {
        if let Some((principal, credential)) =
            member(app, &tenant.admin_token, &tenant.account_id, member_case).await
        {
            world.principals.push(principal);
            world.credentials.push(credential);
        }
    }
    if let Some(operator_case) = &case.operator
        && let Some((_, credential)) =
            member(app, &app.bootstrap_token, operator_account, operator_case).await
    {
        world.credentials.push(credential);
    }
    world
}

/// An answer is one of the defined refusals this model expects.
fn expected_refusal(status: &Status) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(
            status.code(),
            Code::PermissionDenied
                | Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::NotFound
                | Code::Unauthenticated
        ),
        "unexpected answer {status:?}"
    );
    Ok(())
}

/// What a step did, for the checks.
enum Outcome {
    /// A new secret, for the token with this id.
    Secret(String, String),
    /// A token or principal changed, or a token read.
    Done,
    /// A listing: the accounts of the tokens listed.
    Listed(Vec<String>),
    Refused(Status),
}

fn outcome<T>(
    result: Result<tonic::Response<T>, Status>,
    map: impl FnOnce(T) -> Outcome,
) -> Outcome {
    match result {
        Ok(response) => map(response.into_inner()),
        Err(status) => Outcome::Refused(status),
    }
}

async fn run_step(app: &TestApp, world: &mut World, step: &Step) -> Result<(), TestCaseError> {
    let actor = world.credentials[step.actor % world.credentials.len()].clone();
    let tenant_account = world.credentials[0].account_id.clone();
    let ((target_token, token_account), (target_principal, principal_account)) = match step.aim {
        Aim::Foreign => (
            (world.foreign_token.clone(), world.foreign_account.clone()),
            (
                world.foreign_principal.clone(),
                world.foreign_account.clone(),
            ),
        ),
        Aim::Itself => (
            (actor.token_id.clone(), actor.account_id.clone()),
            (actor.owner_id.clone(), actor.account_id.clone()),
        ),
        Aim::Index(i) => {
            let token = &world.credentials[i % world.credentials.len()];
            (
                (token.token_id.clone(), token.account_id.clone()),
                (
                    world.principals[i % world.principals.len()].clone(),
                    tenant_account,
                ),
            )
        }
    };

    if let Action::OperatorGrants(more) = &step.action {
        for principal in &world.principals {
            let mut permissions = principal_permissions(app, principal).await;
            permissions.extend(more);
            app.operator_admin()
                .update_principal(proto::UpdatePrincipalRequest {
                    principal: Some(proto::Principal {
                        id: principal.clone(),
                        permissions: strings(&permissions),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["permissions".to_owned()],
                    }),
                })
                .await
                .expect("the bootstrap owner grants anything");
        }
        return Ok(());
    }

    // The caller's power at this moment, as the server's own verification reports it.
    let answer = app.verify(&actor.secret, &[]).await;
    let held = to_set(&answer.effective_scopes);
    let operator = actor.account_id == world.operator_account;
    let token_power = power_of(app, &target_token).await;
    let principal_power = principal_permissions(app, &target_principal).await;

    let mut tokens = app.tokens(&actor.secret);
    let mut admin = app.admin(&actor.secret);
    let secret = |r: proto::CreateTokenResponse| {
        Outcome::Secret(r.secret, r.token.map(|t| t.id).unwrap_or_default())
    };
    let (result, account, touched) = match &step.action {
        Action::CreateToken(scopes) => (
            outcome(
                tokens
                    .create_token(proto::CreateTokenRequest {
                        owner_id: target_principal.clone(),
                        name: "x".into(),
                        scopes: strings(scopes),
                        ..Default::default()
                    })
                    .await,
                secret,
            ),
            principal_account,
            None,
        ),
        Action::ResetToken => (
            outcome(
                tokens
                    .reset_token(proto::ResetTokenRequest {
                        id: target_token.clone(),
                        ..Default::default()
                    })
                    .await,
                |r| Outcome::Secret(r.secret, target_token.clone()),
            ),
            token_account,
            token_power.clone(),
        ),
        Action::DuplicateToken => (
            outcome(
                tokens
                    .duplicate_token(proto::DuplicateTokenRequest {
                        id: target_token.clone(),
                        name: String::new(),
                    })
                    .await,
                |r| Outcome::Secret(r.secret, r.token.map(|t| t.id).unwrap_or_default()),
            ),
            token_account,
            None,
        ),
        Action::RevokeToken => (
            outcome(
                tokens
                    .revoke_token(proto::RevokeTokenRequest {
                        id: target_token.clone(),
                        ..Default::default()
                    })
                    .await,
                |_| Outcome::Done,
            ),
            token_account,
            token_power,
        ),
        Action::DisableToken => (
            outcome(
                tokens
                    .disable_token(proto::DisableTokenRequest {
                        id: target_token.clone(),
                        ..Default::default()
                    })
                    .await,
                |_| Outcome::Done,
            ),
            token_account,
            token_power,
        ),
        Action::EnableToken => (
            outcome(
                tokens
                    .enable_token(proto::EnableTokenRequest {
                        id: target_token.clone(),
                        ..Default::default()
                    })
                    .await,
                |_| Outcome::Done,
            ),
            token_account,
            token_power,
        ),
        Action::DeleteToken => (
            outcome(
                tokens
                    .delete_token(proto::DeleteTokenRequest {
                        id: target_token.clone(),
                        ..Default::default()
                    })
                    .await,
                |_| Outcome::Done,
            ),
            token_account,
            token_power,
        ),
        Action::ExtendToken | Action::NarrowScopes(_) => {
            let (token, path) = match &step.action {
                Action::NarrowScopes(scopes) => (
                    proto::Token {
                        scopes: strings(scopes),
                        ..Default::default()
                    },
                    "scopes",
                ),
                _ => (
                    proto::Token {
                        expire_time: Some(prost_types::Timestamp {
                            seconds: chrono::Utc::now().timestamp() + 86_400,
                            nanos: 0,
                        }),
                        ..Default::default()
                    },
                    "expire_time",
                ),
            };
            (
                outcome(
                    tokens
                        .update_token(proto::UpdateTokenRequest {
                            token: Some(proto::Token {
                                id: target_token.clone(),
                                ..token
                            }),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec![path.to_owned()],
                            }),
                        })
                        .await,
                    |_| Outcome::Done,
                ),
                token_account,
                token_power,
            )
        }
        Action::SetPermissions(_) | Action::SetDisabled(_) => {
            let (values, path) = match &step.action {
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
            (
                outcome(
                    admin
                        .update_principal(proto::UpdatePrincipalRequest {
                            principal: Some(proto::Principal {
                                id: target_principal.clone(),
                                ..values
                            }),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec![path.to_owned()],
                            }),
                        })
                        .await,
                    |_| Outcome::Done,
                ),
                principal_account,
                Some(principal_power),
            )
        }
        Action::OperatorGrants(_) => unreachable!("handled above"),
        Action::GetToken => (
            outcome(
                tokens
                    .get_token(proto::GetTokenRequest {
                        id: target_token.clone(),
                    })
                    .await,
                |_| Outcome::Done,
            ),
            token_account,
            None,
        ),
        Action::ListTokens => (
            outcome(
                tokens
                    .list_tokens(proto::ListTokensRequest {
                        account_id: token_account.clone(),
                        ..Default::default()
                    })
                    .await,
                |r| Outcome::Listed(r.tokens.into_iter().map(|t| t.account_id).collect()),
            ),
            token_account,
            None,
        ),
    };

    if let Outcome::Refused(status) = &result {
        expected_refusal(status)?;
        if !answer.valid {
            prop_assert_eq!(status.code(), Code::Unauthenticated, "{:?}", status);
        }
        return Ok(());
    }
    // It succeeded: with a working token, the permission it requires, in an account the
    // caller may see, on an object within the caller's power.
    prop_assert!(
        answer.valid,
        "{:?} succeeded with a token that does not work",
        step
    );
    prop_assert!(
        held.contains(step.action.required()),
        "{:?} succeeded without `{}`",
        step.action,
        step.action.required()
    );
    prop_assert!(
        operator || account == actor.account_id,
        "{:?} reached another account's object",
        step
    );
    if let Some(power) = touched {
        prop_assert!(
            beyond(&held, &power).is_empty(),
            "{:?} changed an object holding more than the caller: {:?}",
            step.action,
            beyond(&held, &power)
        );
    }
    if let Action::SetPermissions(set) = &step.action {
        prop_assert!(
            beyond(&held, set).is_empty(),
            "granted {:?}",
            beyond(&held, set)
        );
    }
    match result {
        Outcome::Secret(secret, token_id) => {
            let granted = power_of(app, &token_id).await.unwrap_or_default();
            prop_assert!(
                beyond(&held, &granted).is_empty(),
                "{:?} handed out a secret beyond the caller: {:?}",
                step.action,
                beyond(&held, &granted)
            );
            // The secret joins the callers: later steps may try to chain its power.
            let owner_id = app
                .operator_tokens()
                .get_token(proto::GetTokenRequest {
                    id: token_id.clone(),
                })
                .await
                .expect("the token just handed out")
                .into_inner()
                .token
                .expect("token")
                .owner_id;
            world.credentials.push(Credential {
                secret,
                token_id,
                owner_id,
                account_id: account.clone(),
                issued_power: granted,
            });
        }
        Outcome::Listed(accounts) => {
            prop_assert!(
                accounts.iter().all(|a| *a == account),
                "a listing of {} showed {:?}",
                account,
                accounts
            );
        }
        Outcome::Done | Outcome::Refused(_) => {}
    }
    Ok(())
}

async fn check(
    app: &TestApp,
    foreign: &Tenant,
    operator_account: &str,
    case: Case,
) -> Result<(), TestCaseError> {
    let mut world = build(app, foreign, operator_account, &case).await;
    for step in &case.steps {
        run_step(app, &mut world, step).await?;
        for credential in &world.credentials {
            let now = power_of(app, &credential.token_id)
                .await
                .unwrap_or_default();
            prop_assert!(
                now.is_subset(&credential.issued_power),
                "after {:?}, a handed-out secret grew from {:?} to {:?}",
                step,
                credential.issued_power,
                now
            );
        }
    }
    Ok(())
}

#[test]
fn no_sequence_of_calls_escalates_or_crosses_accounts() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (app, foreign, operator_account) = runtime.block_on(async {
        let app = TestApp::spawn().await;
        let foreign = app.create_tenant("Other", &["orders.read"]).await;
        let operator_account = app.verify(&app.bootstrap_token, &[]).await.account_id;
        (app, foreign, operator_account)
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&case(), |case| {
        runtime.block_on(check(&app, &foreign, &operator_account, case))
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
}
