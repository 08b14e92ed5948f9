//! The authorization model, searched rather than sampled. Each case builds a fresh tenant
//! (and a foreign one) with random principals (random system and application permissions)
//! and tokens (random scopes), sometimes an operator-account principal of limited power, and
//! runs a random sequence of RPCs as random callers against the real server, on the
//! tenant's objects, the operator account's and the foreign tenant's. Secrets a step hands
//! out join the pool of callers, so power can be chained from step to step.
//!
//! The model keeps its own copy of every principal's permissions and every token's owner,
//! scopes, state and current secret, and computes from them alone, never from the server's
//! answers, what every call must do: succeed (with what effect) or be refused with which
//! code, by the rules of SECURITY.md (a working credential; the permission the RPC requires;
//! the caller's account unless it is an operator; no object or grant beyond the caller's
//! power; secrets pinned to what they could do when handed out). After every step each
//! credential's power as the server verifies it must equal the model's. A server that
//! refused everything, or allowed one call too many, fails; so does a run in which too few
//! calls succeed to have tested anything.
//!
//! `cargo test` runs 96 cases; `PROPTEST_CASES=2000 cargo test --test api model` searches
//! longer.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tonic::{Code, Status};

use token_authority::proto::{self, PrincipalKind};

use crate::helpers::{TENANT_PERMISSIONS, TestApp, mask};

/// The permissions the model draws from: every system permission a tenant may hold and three
/// application ones (the tenant's administrator starts without `orders.delete`).
const POOL: [&str; 12] = [
    "tokens.read",
    "tokens.create",
    "tokens.update",
    "tokens.delete",
    "tokens.verify",
    "tokens.report_leaked",
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

fn strings(set: &Set) -> Vec<String> {
    set.iter().map(|p| (*p).to_owned()).collect()
}

/// What a token with `scopes` of an owner holding `permissions` may do.
fn effective(scopes: &Set, permissions: &Set) -> Set {
    if scopes.is_empty() {
        permissions.clone()
    } else {
        scopes.intersection(permissions).copied().collect()
    }
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
    /// The principal and token at this index of the model's (modulo their number).
    Index(usize),
    /// The caller's own principal and token.
    Itself,
    /// The foreign tenant's administrator and its token.
    Foreign,
}

/// One call: `actor` indexes the pool of callers (modulo its length).
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Disabled,
    Revoked,
    Deleted,
}

#[derive(Debug, Clone)]
struct Principal {
    id: String,
    account: String,
    permissions: Set,
    disabled: bool,
}

#[derive(Debug, Clone)]
struct Token {
    id: String,
    /// Index of its owner in the model's principals.
    owner: usize,
    scopes: Set,
    state: State,
    /// The one secret that opens it (resets here have no grace period).
    secret: String,
}

/// A secret in the pool of callers: of token `token`, current or replaced since.
#[derive(Debug, Clone)]
struct Caller {
    token: usize,
    secret: String,
}

/// The model's copy of the world.
struct Model {
    principals: Vec<Principal>,
    tokens: Vec<Token>,
    callers: Vec<Caller>,
    operator_account: String,
    /// Index of the foreign tenant's administrator (and of its token, in `tokens`).
    foreign: (usize, usize),
    /// The tenant's principals: those `OperatorGrants` grants to.
    tenant: Vec<usize>,
}

impl Model {
    fn account_of_token(&self, token: usize) -> &str {
        &self.principals[self.tokens[token].owner].account
    }

    /// What a caller may do now: nothing unless its secret opens a working token.
    fn held(&self, caller: &Caller) -> Option<Set> {
        let token = &self.tokens[caller.token];
        let owner = &self.principals[token.owner];
        let works =
            token.state == State::Active && token.secret == caller.secret && !owner.disabled;
        works.then(|| effective(&token.scopes, &owner.permissions))
    }

    /// What a token may do, ignoring whether it works.
    fn power(&self, token: usize) -> Set {
        let token = &self.tokens[token];
        effective(&token.scopes, &self.principals[token.owner].permissions)
    }

    fn is_operator(&self, caller: &Caller) -> bool {
        self.account_of_token(caller.token) == self.operator_account
    }

    fn visible(&self, caller: &Caller, account: &str) -> bool {
        self.is_operator(caller) || self.account_of_token(caller.token) == account
    }

    /// The scopes of a secret for `owner` handed to `caller`, asking for `scopes`; the code
    /// of the refusal otherwise (issuance: see `issuable_scopes`).
    fn issue(&self, caller: &Caller, held: &Set, owner: usize, scopes: &Set) -> Result<Set, Code> {
        let principal = &self.principals[owner];
        if principal.disabled {
            return Err(Code::FailedPrecondition);
        }
        let caller_token = &self.tokens[caller.token];
        let issued = if caller_token.owner == owner && caller_token.scopes.is_empty() {
            scopes.clone()
        } else {
            let pinned = effective(scopes, &principal.permissions);
            if pinned.is_empty() {
                return Err(Code::InvalidArgument);
            }
            pinned
        };
        if !beyond(held, &effective(&issued, &principal.permissions)).is_empty() {
            return Err(Code::PermissionDenied);
        }
        Ok(issued)
    }

    /// A token the caller may change (see `changeable_token`).
    fn changeable(&self, caller: &Caller, held: &Set, token: usize) -> Result<(), Code> {
        if self.tokens[token].state == State::Deleted
            || !self.visible(caller, self.account_of_token(token))
        {
            return Err(Code::NotFound);
        }
        if !beyond(held, &self.power(token)).is_empty() {
            return Err(Code::PermissionDenied);
        }
        Ok(())
    }
}

/// What the model says a step must do.
#[derive(Debug)]
enum Expect {
    Refused(Code),
    /// Succeeds, with this effect on the model.
    Done(Effect),
}

#[derive(Debug)]
enum Effect {
    None,
    /// A new token of this owner, with these scopes (its id and secret from the answer).
    NewToken(usize, Set),
    /// This token gets a new secret and these scopes.
    Reset(usize, Set),
    State(usize, State),
    Scopes(usize, Set),
    Permissions(usize, Set),
    Disabled(usize, bool),
}

/// The model's verdict on `step` by the caller `caller`, on `token` and `principal`.
fn expect(
    model: &Model,
    caller: &Caller,
    token: usize,
    principal: usize,
    action: &Action,
) -> Expect {
    use Expect::{Done, Refused};
    let Some(held) = model.held(caller) else {
        return Refused(Code::Unauthenticated);
    };
    if !held.contains(action.required()) {
        return Refused(Code::PermissionDenied);
    }
    let verdict = (|| -> Result<Effect, Code> {
        let target = &model.tokens[token];
        let not_revoked = || {
            if target.state == State::Revoked {
                Err(Code::FailedPrecondition)
            } else {
                Ok(())
            }
        };
        match action {
            Action::CreateToken(scopes) => {
                let owner = &model.principals[principal];
                if !model.visible(caller, &owner.account) {
                    return Err(Code::NotFound);
                }
                if !scopes.is_subset(&owner.permissions) {
                    return Err(Code::InvalidArgument);
                }
                let issued = model.issue(caller, &held, principal, scopes)?;
                Ok(Effect::NewToken(principal, issued))
            }
            Action::GetToken => {
                if target.state == State::Deleted
                    || !model.visible(caller, model.account_of_token(token))
                {
                    return Err(Code::NotFound);
                }
                Ok(Effect::None)
            }
            // The listing of the target principal's account.
            Action::ListTokens => {
                if !model.visible(caller, &model.principals[principal].account) {
                    return Err(Code::NotFound);
                }
                Ok(Effect::None)
            }
            Action::DuplicateToken => {
                if target.state == State::Deleted
                    || !model.visible(caller, model.account_of_token(token))
                {
                    return Err(Code::NotFound);
                }
                let issued = model.issue(caller, &held, target.owner, &target.scopes)?;
                Ok(Effect::NewToken(target.owner, issued))
            }
            Action::ResetToken => {
                model.changeable(caller, &held, token)?;
                let issued = model.issue(caller, &held, target.owner, &target.scopes)?;
                not_revoked()?;
                Ok(Effect::Reset(token, issued))
            }
            Action::RevokeToken => {
                model.changeable(caller, &held, token)?;
                not_revoked()?;
                Ok(Effect::State(token, State::Revoked))
            }
            Action::DisableToken | Action::EnableToken => {
                model.changeable(caller, &held, token)?;
                not_revoked()?;
                let state = if matches!(action, Action::EnableToken) {
                    State::Active
                } else {
                    State::Disabled
                };
                Ok(Effect::State(token, state))
            }
            Action::DeleteToken => {
                model.changeable(caller, &held, token)?;
                Ok(Effect::State(token, State::Deleted))
            }
            Action::ExtendToken => {
                model.changeable(caller, &held, token)?;
                not_revoked()?;
                Ok(Effect::None)
            }
            Action::NarrowScopes(scopes) => {
                model.changeable(caller, &held, token)?;
                not_revoked()?;
                if scopes.is_empty() && !target.scopes.is_empty() {
                    return Err(Code::InvalidArgument);
                }
                let bound = if target.scopes.is_empty() {
                    &model.principals[target.owner].permissions
                } else {
                    &target.scopes
                };
                if !scopes.is_subset(bound) {
                    return Err(Code::InvalidArgument);
                }
                Ok(Effect::Scopes(token, scopes.clone()))
            }
            Action::SetPermissions(_) | Action::SetDisabled(_) => {
                let target = &model.principals[principal];
                if !model.visible(caller, &target.account) {
                    return Err(Code::NotFound);
                }
                if !beyond(&held, &target.permissions).is_empty() {
                    return Err(Code::PermissionDenied);
                }
                match action {
                    Action::SetPermissions(set) => {
                        if !beyond(&held, set).is_empty() {
                            return Err(Code::PermissionDenied);
                        }
                        Ok(Effect::Permissions(principal, set.clone()))
                    }
                    Action::SetDisabled(disabled) => {
                        if *disabled && model.tokens[caller.token].owner == principal {
                            return Err(Code::FailedPrecondition);
                        }
                        Ok(Effect::Disabled(principal, *disabled))
                    }
                    _ => unreachable!("matched above"),
                }
            }
            Action::OperatorGrants(_) => unreachable!("not a call of the actor's"),
        }
    })();
    match verdict {
        Ok(effect) => Done(effect),
        Err(code) => Refused(code),
    }
}

/// What a call answered: a secret and token id when it handed one out.
type Answer = Result<Option<(String, String)>, Status>;

fn answered<T>(
    result: Result<tonic::Response<T>, Status>,
    secret: impl FnOnce(T) -> Option<(String, String)>,
) -> Answer {
    result.map(|response| secret(response.into_inner()))
}

/// Sends `action` as the holder of `secret`, on `token_id` and `principal_id`.
async fn call(
    app: &TestApp,
    secret: &str,
    token_id: &str,
    principal: &Principal,
    action: &Action,
) -> Answer {
    let mut tokens = app.tokens(secret);
    let mut admin = app.admin(secret);
    let new_secret = |r: proto::CreateTokenResponse| Some((r.secret, r.token?.id));
    let update = |values: proto::Token, path: &str| proto::UpdateTokenRequest {
        token: Some(proto::Token {
            id: token_id.to_owned(),
            ..values
        }),
        update_mask: mask(path),
    };
    let id = token_id.to_owned();
    match action {
        Action::CreateToken(scopes) => answered(
            tokens
                .create_token(proto::CreateTokenRequest {
                    owner_id: principal.id.clone(),
                    name: "x".into(),
                    scopes: strings(scopes),
                    ..Default::default()
                })
                .await,
            new_secret,
        ),
        Action::ResetToken => answered(
            tokens
                .reset_token(proto::ResetTokenRequest {
                    id: id.clone(),
                    ..Default::default()
                })
                .await,
            |r| Some((r.secret, id)),
        ),
        Action::DuplicateToken => answered(
            tokens
                .duplicate_token(proto::DuplicateTokenRequest {
                    id,
                    name: String::new(),
                })
                .await,
            |r| Some((r.secret, r.token?.id)),
        ),
        Action::RevokeToken => answered(
            tokens
                .revoke_token(proto::RevokeTokenRequest {
                    id,
                    ..Default::default()
                })
                .await,
            |_| None,
        ),
        Action::DisableToken => answered(
            tokens
                .disable_token(proto::DisableTokenRequest {
                    id,
                    ..Default::default()
                })
                .await,
            |_| None,
        ),
        Action::EnableToken => answered(
            tokens
                .enable_token(proto::EnableTokenRequest {
                    id,
                    ..Default::default()
                })
                .await,
            |_| None,
        ),
        Action::DeleteToken => answered(
            tokens
                .delete_token(proto::DeleteTokenRequest {
                    id,
                    ..Default::default()
                })
                .await,
            |_| None,
        ),
        Action::ExtendToken => {
            let later = prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp() + 86_400,
                nanos: 0,
            };
            let values = proto::Token {
                expire_time: Some(later),
                ..Default::default()
            };
            answered(
                tokens.update_token(update(values, "expire_time")).await,
                |_| None,
            )
        }
        Action::NarrowScopes(scopes) => {
            let values = proto::Token {
                scopes: strings(scopes),
                ..Default::default()
            };
            answered(tokens.update_token(update(values, "scopes")).await, |_| {
                None
            })
        }
        Action::SetPermissions(_) | Action::SetDisabled(_) => {
            let (values, path) = match action {
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
            answered(
                admin
                    .update_principal(proto::UpdatePrincipalRequest {
                        principal: Some(proto::Principal {
                            id: principal.id.clone(),
                            ..values
                        }),
                        update_mask: mask(path),
                    })
                    .await,
                |_| None,
            )
        }
        Action::GetToken => answered(
            tokens.get_token(proto::GetTokenRequest { id }).await,
            |_| None,
        ),
        Action::ListTokens => {
            let account = principal.account.clone();
            let listed = tokens
                .list_tokens(proto::ListTokensRequest {
                    account_id: account.clone(),
                    ..Default::default()
                })
                .await;
            if let Ok(page) = &listed {
                assert!(
                    page.get_ref()
                        .tokens
                        .iter()
                        .all(|t| t.account_id == account),
                    "a listing of {account} showed another account's tokens"
                );
            }
            answered(listed, |_| None)
        }
        Action::OperatorGrants(_) => unreachable!("not a call of the actor's"),
    }
}

/// Creates a principal in `account` with `permissions` and, as `issuer` (a caller of the
/// model, or the bootstrap owner when None), a token with `scopes` for it.
async fn add_member(
    app: &TestApp,
    model: &mut Model,
    issuer: Option<usize>,
    account: &str,
    (permissions, scopes): &Member,
) -> Result<(), TestCaseError> {
    let issuer_secret = match issuer {
        Some(caller) => model.callers[caller].secret.clone(),
        None => app.bootstrap_token.clone(),
    };
    let principal = app
        .admin(&issuer_secret)
        .create_principal(proto::CreatePrincipalRequest {
            account_id: account.to_owned(),
            kind: PrincipalKind::ServiceAccount as i32,
            display_name: "member".into(),
            permissions: strings(permissions),
        })
        .await
        .expect("the issuer escalates to anything")
        .into_inner()
        .principal
        .expect("principal");
    model.principals.push(Principal {
        id: principal.id.clone(),
        account: account.to_owned(),
        permissions: permissions.clone(),
        disabled: false,
    });
    let owner = model.principals.len() - 1;
    let created = app
        .tokens(&issuer_secret)
        .create_token(proto::CreateTokenRequest {
            owner_id: principal.id.clone(),
            name: "member".into(),
            scopes: strings(scopes),
            ..Default::default()
        })
        .await;
    // Issued by someone else: pinned to the scopes within the owner's permissions.
    let pinned = effective(scopes, permissions);
    match created {
        Ok(response) => {
            prop_assert!(!pinned.is_empty(), "a token with nothing to pin was issued");
            let response = response.into_inner();
            push_token(
                model,
                owner,
                pinned,
                response.secret,
                response.token.expect("token").id,
            );
        }
        Err(status) => {
            prop_assert!(pinned.is_empty(), "{status:?}");
            prop_assert_eq!(status.code(), Code::InvalidArgument);
        }
    }
    Ok(())
}

fn push_token(model: &mut Model, owner: usize, scopes: Set, secret: String, id: String) {
    model.tokens.push(Token {
        id,
        owner,
        scopes,
        state: State::Active,
        secret: secret.clone(),
    });
    model.callers.push(Caller {
        token: model.tokens.len() - 1,
        secret,
    });
}

/// A tenant's administrator, its token and its account, as `create_tenant` makes them: the
/// token is issued by the bootstrap owner, so pinned to the tenant permissions, and the
/// administrator then brings `extra` application permissions in.
async fn add_tenant(app: &TestApp, model: &mut Model, extra: &[&'static str]) -> (usize, usize) {
    let tenant = app.create_tenant("Model", extra).await;
    let tenant_permissions: Set = TENANT_PERMISSIONS.iter().copied().collect();
    let mut permissions = tenant_permissions.clone();
    permissions.extend(extra);
    model.principals.push(Principal {
        id: tenant.admin_id,
        account: tenant.account_id,
        permissions,
        disabled: false,
    });
    let owner = model.principals.len() - 1;
    let token_id = app.verify(&tenant.admin_token, &[]).await.token_id;
    push_token(
        model,
        owner,
        tenant_permissions,
        tenant.admin_token,
        token_id,
    );
    (owner, model.tokens.len() - 1)
}

async fn build(app: &TestApp, operator_account: &str, case: &Case) -> Result<Model, TestCaseError> {
    let mut model = Model {
        principals: Vec::new(),
        tokens: Vec::new(),
        callers: Vec::new(),
        operator_account: operator_account.to_owned(),
        foreign: (0, 0),
        tenant: Vec::new(),
    };
    // The tenant's administrator is caller 0: it may grant and issue anything in it.
    let (admin, _) = add_tenant(app, &mut model, &["orders.read", "orders.write"]).await;
    let account = model.principals[admin].account.clone();
    for member in &case.members {
        add_member(app, &mut model, Some(0), &account, member).await?;
    }
    model.tenant = (0..model.principals.len()).collect();
    model.foreign = add_tenant(app, &mut model, &["orders.read"]).await;
    if let Some(member) = &case.operator {
        add_member(app, &mut model, None, operator_account, member).await?;
    }
    Ok(model)
}

/// Runs `step` and checks its answer against the model; returns whether it succeeded.
async fn run_step(app: &TestApp, model: &mut Model, step: &Step) -> Result<bool, TestCaseError> {
    if let Action::OperatorGrants(more) = &step.action {
        for &principal in &model.tenant.clone() {
            let mut permissions = model.principals[principal].permissions.clone();
            permissions.extend(more);
            app.operator_admin()
                .update_principal(proto::UpdatePrincipalRequest {
                    principal: Some(proto::Principal {
                        id: model.principals[principal].id.clone(),
                        permissions: strings(&permissions),
                        ..Default::default()
                    }),
                    update_mask: mask("permissions"),
                })
                .await
                .expect("the bootstrap owner grants anything");
            model.principals[principal].permissions = permissions;
        }
        return Ok(true);
    }
    let caller = model.callers[step.actor % model.callers.len()].clone();
    let (principal, token) = match step.aim {
        Aim::Foreign => model.foreign,
        Aim::Itself => (model.tokens[caller.token].owner, caller.token),
        Aim::Index(i) => (i % model.principals.len(), i % model.tokens.len()),
    };
    let expected = expect(model, &caller, token, principal, &step.action);
    let answer = call(
        app,
        &caller.secret,
        &model.tokens[token].id,
        &model.principals[principal],
        &step.action,
    )
    .await;
    match (expected, answer) {
        (Expect::Refused(code), Err(status)) => {
            prop_assert_eq!(status.code(), code, "{:?}: {:?}", step, status);
            Ok(false)
        }
        (Expect::Refused(code), Ok(_)) => Err(TestCaseError::fail(format!(
            "{step:?} succeeded; the model refuses it with {code:?}"
        ))),
        (Expect::Done(effect), Err(status)) => Err(TestCaseError::fail(format!(
            "{step:?} was refused ({status:?}); the model allows it ({effect:?})"
        ))),
        (Expect::Done(effect), Ok(handed_out)) => {
            match effect {
                Effect::None => {}
                Effect::NewToken(owner, scopes) => {
                    let (secret, id) = handed_out.expect("a secret");
                    push_token(model, owner, scopes, secret, id);
                }
                Effect::Reset(token, scopes) => {
                    let (secret, _) = handed_out.expect("a secret");
                    model.tokens[token].scopes = scopes;
                    model.tokens[token].secret = secret.clone();
                    model.callers.push(Caller { token, secret });
                }
                Effect::State(token, state) => model.tokens[token].state = state,
                Effect::Scopes(token, scopes) => model.tokens[token].scopes = scopes,
                Effect::Permissions(principal, set) => {
                    model.principals[principal].permissions = set
                }
                Effect::Disabled(principal, disabled) => {
                    model.principals[principal].disabled = disabled;
                }
            }
            Ok(true)
        }
    }
}

/// Every caller's power, as the server verifies it, is the model's.
async fn check_powers(app: &TestApp, model: &Model, after: &Step) -> Result<(), TestCaseError> {
    for caller in &model.callers {
        let answer = app.verify(&caller.secret, &[]).await;
        // Compared as text, so that a permission outside the model's pool would show.
        let server = answer.valid.then(|| {
            let mut scopes = answer.effective_scopes.clone();
            scopes.sort();
            scopes
        });
        let modelled = model.held(caller).map(|set| strings(&set));
        prop_assert_eq!(
            &server,
            &modelled,
            "after {:?}, the power of token {} differs",
            after,
            &model.tokens[caller.token].id
        );
    }
    Ok(())
}

async fn check(
    app: &TestApp,
    operator_account: &str,
    case: Case,
    succeeded: &mut (usize, usize),
) -> Result<(), TestCaseError> {
    let mut model = build(app, operator_account, &case).await?;
    for step in &case.steps {
        if run_step(app, &mut model, step).await? {
            succeeded.0 += 1;
        }
        succeeded.1 += 1;
        check_powers(app, &model, step).await?;
    }
    Ok(())
}

#[test]
fn no_sequence_of_calls_escalates_or_crosses_accounts() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (app, operator_account) = runtime.block_on(async {
        let app = TestApp::spawn().await;
        let operator_account = app.verify(&app.bootstrap_token, &[]).await.account_id;
        (app, operator_account)
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
    let succeeded = std::cell::RefCell::new((0, 0));
    let outcome = runner.run(&case(), |case| {
        let mut counts = (0, 0);
        let result = runtime.block_on(check(&app, &operator_account, case, &mut counts));
        let mut total = succeeded.borrow_mut();
        total.0 += counts.0;
        total.1 += counts.1;
        result
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
    // A server refusing everything would pass every "refused" check: the model allows a
    // good share of the calls it draws, and they must have succeeded.
    let (done, steps) = *succeeded.borrow();
    eprintln!("model: {done} of {steps} calls succeeded");
    assert!(
        done * 4 >= steps,
        "only {done} of {steps} calls succeeded: the search tested too little"
    );
}
