//! Account token policies: the limits an account's tokens must keep (lifetime, reset grace,
//! scopes), enforced by create, update, duplicate and reset with FAILED_PRECONDITION naming
//! the rule, never applied to existing tokens, which `ListTokens` finds instead; who may
//! read and set a policy; and the `expire_time_before` filter.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tonic::{Code, Status};

use token_authority::proto::{self, VerificationCode};

use crate::helpers::{Tenant, TestApp, assert_code, code_of, mask};

const DAY: i64 = 86_400;

fn seconds(value: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: value,
        nanos: 0,
    }
}

fn policy(
    account_id: &str,
    max_lifetime: Option<i64>,
    max_grace: Option<i64>,
    allowed: &[&str],
) -> proto::TokenPolicy {
    proto::TokenPolicy {
        account_id: account_id.to_owned(),
        max_lifetime: max_lifetime.map(seconds),
        max_reset_grace_period: max_grace.map(seconds),
        allowed_scopes: allowed.iter().map(|s| (*s).to_owned()).collect(),
        etag: String::new(),
    }
}

async fn set_policy(
    app: &TestApp,
    caller_token: &str,
    policy: proto::TokenPolicy,
) -> Result<proto::SetTokenPolicyResponse, Status> {
    app.admin(caller_token)
        .set_token_policy(proto::SetTokenPolicyRequest {
            policy: Some(policy),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn get_policy(app: &TestApp, caller_token: &str, account_id: &str) -> proto::TokenPolicy {
    app.admin(caller_token)
        .get_token_policy(proto::GetTokenPolicyRequest {
            account_id: account_id.to_owned(),
        })
        .await
        .expect("policy read")
        .into_inner()
        .policy
        .expect("policy")
}

/// CreateToken for the caller itself with `scopes` and a lifetime of `ttl` seconds (None:
/// never expires).
async fn create(
    app: &TestApp,
    caller_token: &str,
    scopes: &[&str],
    ttl: Option<i64>,
) -> Result<proto::CreateTokenResponse, Status> {
    app.tokens(caller_token)
        .create_token(proto::CreateTokenRequest {
            name: "policy test".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expiry: ttl.map(|s| proto::create_token_request::Expiry::Ttl(seconds(s))),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The ids of `account_id`'s tokens that ListTokens says break its policy, every page.
async fn violators(app: &TestApp, caller_token: &str, account_id: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .tokens(caller_token)
            .list_tokens(proto::ListTokensRequest {
                account_id: account_id.to_owned(),
                violates_token_policy: true,
                page_size: 7,
                page_token,
                ..Default::default()
            })
            .await
            .expect("tokens listed")
            .into_inner();
        ids.extend(page.tokens.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            ids.sort();
            return ids;
        }
        page_token = page.next_page_token;
    }
}

fn refused_for(result: Result<impl std::fmt::Debug, Status>, rule: &str) -> Status {
    let status = assert_code(result, Code::FailedPrecondition);
    assert!(
        status.message().contains(&format!("token policy ({rule}")),
        "{rule}: {status:?}"
    );
    status
}

/// A principal of the tenant's account holding `accounts.manage` only (the tenant admin of
/// the helpers holds every tenant permission but that one), and its token.
async fn policy_manager(app: &TestApp, tenant: &Tenant) -> String {
    let manager = app
        .create_principal(
            &app.bootstrap_token,
            &tenant.account_id,
            "policy manager",
            &["accounts.manage"],
        )
        .await;
    app.create_token(&app.bootstrap_token, &manager.id, &[])
        .await
        .secret
}

backend_tests!(a_policy_governs_new_secrets_and_finds_the_tokens_that_break_it);

async fn a_policy_governs_new_secrets_and_finds_the_tokens_that_break_it() {
    let app = TestApp::spawn().await;
    let acme = app
        .create_tenant("acme", &["orders.read", "orders.write", "billing.read"])
        .await;
    let manager = policy_manager(&app, &acme).await;
    let admin = acme.admin_token.as_str();
    let open = get_policy(&app, admin, "").await;
    assert_eq!(open.account_id, acme.account_id);
    assert!(open.max_lifetime.is_none() && open.max_reset_grace_period.is_none());
    assert!(open.allowed_scopes.is_empty());

    // Tokens from before the policy: some will break it.
    let id = |created: &proto::CreateTokenResponse| created.token.as_ref().unwrap().id.clone();
    let forever = create(&app, admin, &[], None).await.unwrap();
    let fine = create(&app, admin, &["orders.read"], Some(10 * DAY))
        .await
        .unwrap();
    let long = create(&app, admin, &["orders.read"], Some(60 * DAY))
        .await
        .unwrap();
    let billing = create(&app, admin, &["billing.read"], Some(DAY))
        .await
        .unwrap();
    let wide = create(&app, admin, &["billing.read", "orders.read"], Some(DAY))
        .await
        .unwrap();
    let mixed = create(&app, admin, &["billing.read", "orders.read"], Some(DAY))
        .await
        .unwrap();
    assert!(violators(&app, admin, "").await.is_empty(), "no rule yet");

    let set = set_policy(
        &app,
        &manager,
        policy(
            "",
            Some(30 * DAY),
            Some(3600),
            &["orders.write", "orders.read"],
        ),
    )
    .await
    .unwrap()
    .policy
    .unwrap();
    assert_eq!(set.account_id, acme.account_id);
    assert_eq!(set.max_lifetime, Some(seconds(30 * DAY)));
    assert_eq!(set.max_reset_grace_period, Some(seconds(3600)));
    assert_eq!(set.allowed_scopes, ["orders.read", "orders.write"]);
    assert_ne!(set.etag, open.etag);
    assert_eq!(get_policy(&app, admin, "").await, set);

    // Create: an expiry within the lifetime, and listed scopes within the allowed ones.
    refused_for(
        create(&app, admin, &["orders.read"], None).await,
        "max_lifetime 30d",
    );
    refused_for(
        create(&app, admin, &["orders.read"], Some(30 * DAY + 1)).await,
        "max_lifetime",
    );
    let at = SystemTime::now() + Duration::from_secs(31 * DAY as u64);
    refused_for(
        app.tokens(admin)
            .create_token(proto::CreateTokenRequest {
                name: "absolute".into(),
                scopes: vec!["orders.read".into()],
                expiry: Some(proto::create_token_request::Expiry::ExpireTime(at.into())),
                ..Default::default()
            })
            .await,
        "max_lifetime",
    );
    refused_for(create(&app, admin, &[], Some(DAY)).await, "allowed_scopes");
    let status = refused_for(
        create(&app, admin, &["orders.read", "billing.read"], Some(DAY)).await,
        "allowed_scopes",
    );
    assert!(
        status.message().ends_with("not allow: billing.read"),
        "{status:?}"
    );
    let compliant = create(&app, admin, &["orders.read"], Some(30 * DAY))
        .await
        .unwrap();

    // Update: a new expiry or scope list must comply; other fields of any token may change.
    let fine_id = id(&fine);
    let update = |id: &str, values: proto::Token, path: &str| {
        let mut tokens = app.tokens(admin);
        let request = proto::UpdateTokenRequest {
            token: Some(proto::Token {
                id: id.to_owned(),
                ..values
            }),
            update_mask: mask(path),
        };
        async move { tokens.update_token(request).await }
    };
    refused_for(
        update(&fine_id, proto::Token::default(), "expire_time").await,
        "max_lifetime",
    );
    let created_at =
        SystemTime::try_from(fine.token.clone().unwrap().create_time.unwrap()).unwrap();
    let past_the_cap = created_at + Duration::from_secs(30 * DAY as u64 + 1);
    refused_for(
        update(
            &fine_id,
            proto::Token {
                expire_time: Some(past_the_cap.into()),
                ..Default::default()
            },
            "expire_time",
        )
        .await,
        "max_lifetime",
    );
    let at_the_cap = created_at + Duration::from_secs(30 * DAY as u64);
    update(
        &fine_id,
        proto::Token {
            expire_time: Some(at_the_cap.into()),
            ..Default::default()
        },
        "expire_time",
    )
    .await
    .expect("an expiry exactly at the cap is within it");
    let scopes = |values: &[&str]| proto::Token {
        scopes: values.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    refused_for(
        update(&id(&wide), scopes(&["billing.read"]), "scopes").await,
        "allowed_scopes",
    );
    update(&id(&wide), scopes(&["orders.read"]), "scopes")
        .await
        .expect("narrowed into the policy");
    update(
        &id(&forever),
        proto::Token {
            name: "renamed".into(),
            ..Default::default()
        },
        "name",
    )
    .await
    .expect("a rename is not a new secret");
    // Regression (issue 20): an expiry update skipped the scope rule, so a token listing a
    // scope the policy does not allow could live longer. A later expiry (within the
    // lifetime cap) is refused for its scopes; an earlier one only takes power away.
    let billing_created =
        SystemTime::try_from(billing.token.clone().unwrap().create_time.unwrap()).unwrap();
    let expiring = |at: SystemTime| proto::Token {
        expire_time: Some(at.into()),
        ..Default::default()
    };
    refused_for(
        update(
            &id(&billing),
            expiring(billing_created + Duration::from_secs(20 * DAY as u64)),
            "expire_time",
        )
        .await,
        "allowed_scopes",
    );
    update(
        &id(&billing),
        expiring(billing_created + Duration::from_secs(DAY as u64 / 2)),
        "expire_time",
    )
    .await
    .expect("a shorter life is allowed");
    // Narrowed into the policy in the same update, the longer life is fine.
    let mixed_created =
        SystemTime::try_from(mixed.token.clone().unwrap().create_time.unwrap()).unwrap();
    app.tokens(admin)
        .update_token(proto::UpdateTokenRequest {
            token: Some(proto::Token {
                id: id(&mixed),
                scopes: vec!["orders.read".into()],
                expire_time: Some((mixed_created + Duration::from_secs(20 * DAY as u64)).into()),
                ..Default::default()
            }),
            update_mask: crate::helpers::masks(&["expire_time", "scopes"]),
        })
        .await
        .expect("judged as it is after the update");
    // Enabling a token hands its secret out again: refused while it breaks the policy.
    app.disable(admin, &id(&billing)).await;
    refused_for(
        app.tokens(admin)
            .enable_token(proto::EnableTokenRequest {
                id: id(&billing),
                ..Default::default()
            })
            .await,
        "allowed_scopes",
    );

    // Reset: a token that breaks the policy gets no new secret; the grace period is capped.
    let reset = |id: String, grace: i64| {
        let mut tokens = app.tokens(admin);
        async move {
            tokens
                .reset_token(proto::ResetTokenRequest {
                    id,
                    grace_period: Some(seconds(grace)),
                    etag: String::new(),
                })
                .await
        }
    };
    refused_for(reset(id(&forever), 0).await, "max_lifetime");
    refused_for(reset(id(&billing), 0).await, "allowed_scopes");
    refused_for(
        reset(fine_id.clone(), 3601).await,
        "max_reset_grace_period 1h",
    );
    reset(fine_id.clone(), 3600)
        .await
        .expect("a grace period within the cap");

    // Duplicate: the copy keeps the original's lifetime and scopes, so must they.
    let duplicate = |id: String| {
        let mut tokens = app.tokens(admin);
        async move {
            tokens
                .duplicate_token(proto::DuplicateTokenRequest {
                    id,
                    name: String::new(),
                })
                .await
        }
    };
    refused_for(duplicate(id(&forever)).await, "max_lifetime");
    refused_for(duplicate(id(&long)).await, "max_lifetime");
    refused_for(duplicate(id(&billing)).await, "allowed_scopes");
    duplicate(id(&compliant)).await.expect("a compliant copy");

    // Nothing existing changed: the tokens that break the policy still verify, and the
    // listing finds exactly them (every page, and with a state filter).
    assert_eq!(
        code_of(&app.verify(&forever.secret, &[]).await),
        VerificationCode::Valid
    );
    // The tenant admin's and the manager's own tokens predate the policy, unscoped and
    // never expiring.
    let admin_token_id = app.verify(admin, &[]).await.token_id;
    let manager_token_id = app.verify(&manager, &[]).await.token_id;
    let mut breaking = vec![
        id(&forever),
        id(&long),
        id(&billing),
        admin_token_id.clone(),
        manager_token_id.clone(),
    ];
    breaking.sort();
    assert_eq!(violators(&app, admin, "").await, breaking);
    app.revoke(admin, &id(&billing)).await;
    let active = app
        .tokens(admin)
        .list_tokens(proto::ListTokensRequest {
            violates_token_policy: true,
            state: proto::TokenState::Active as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut active: Vec<String> = active.tokens.into_iter().map(|t| t.id).collect();
    active.sort();
    let mut expected = vec![id(&forever), id(&long), admin_token_id, manager_token_id];
    expected.sort();
    assert_eq!(active, expected);

    // The change is on record, with the rules before and after.
    let events = app
        .admin(admin)
        .list_audit_events(proto::ListAuditEventsRequest {
            action: "account.set_token_policy".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.target_type, "account");
    assert_eq!(event.target_id, acme.account_id);
    let detail = |key: &str| event.details.get(key).cloned().unwrap_or_default();
    assert_eq!(detail("max_lifetime_seconds"), (30 * DAY).to_string());
    assert_eq!(detail("max_reset_grace_period_seconds"), "3600");
    assert_eq!(detail("allowed_scopes"), "orders.read,orders.write");
    assert_eq!(detail("previous_max_lifetime_seconds"), "");
    assert_eq!(detail("previous_allowed_scopes"), "");

    // Setting the same policy again changes nothing; lifting it frees creation again.
    let again = set_policy(
        &app,
        &manager,
        policy(
            "",
            Some(30 * DAY),
            Some(3600),
            &["orders.read", "orders.write"],
        ),
    )
    .await
    .unwrap();
    assert_eq!(again.policy.unwrap().etag, set.etag);
    set_policy(&app, &manager, policy("", None, None, &[]))
        .await
        .unwrap();
    create(&app, admin, &[], None).await.expect("no rule left");
    assert!(violators(&app, admin, "").await.is_empty());
}

backend_tests!(only_account_managers_set_policies_and_only_their_own);

async fn only_account_managers_set_policies_and_only_their_own() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let globex = app.create_tenant("globex", &[]).await;
    let manager = policy_manager(&app, &acme).await;
    let strict = |account: &str| policy(account, Some(DAY), None, &[]);

    // Without accounts.manage: refused, even for the caller's own account.
    assert_code(
        set_policy(&app, &acme.admin_token, strict("")).await,
        Code::PermissionDenied,
    );
    // Another tenant's account is not there, to read or to set.
    assert_code(
        set_policy(&app, &manager, strict(&globex.account_id)).await,
        Code::NotFound,
    );
    assert_code(
        app.admin(&acme.admin_token)
            .get_token_policy(proto::GetTokenPolicyRequest {
                account_id: globex.account_id.clone(),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        app.tokens(&acme.admin_token)
            .list_tokens(proto::ListTokensRequest {
                account_id: globex.account_id.clone(),
                violates_token_policy: true,
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    let untouched = get_policy(&app, &globex.admin_token, "").await;
    assert!(untouched.max_lifetime.is_none(), "{untouched:?}");

    // Operators set any account's policy; it binds the operator's own token requests there.
    let set = set_policy(&app, &app.bootstrap_token, strict(&globex.account_id))
        .await
        .unwrap()
        .policy
        .unwrap();
    assert_eq!(set.account_id, globex.account_id);
    assert_eq!(get_policy(&app, &globex.admin_token, "").await, set);
    refused_for(
        app.tokens(&app.bootstrap_token)
            .create_token(proto::CreateTokenRequest {
                owner_id: globex.admin_id.clone(),
                name: "from the operator".into(),
                ..Default::default()
            })
            .await,
        "max_lifetime",
    );
    // ... and only there: acme has no rule.
    create(&app, &acme.admin_token, &[], None)
        .await
        .expect("acme has no policy");

    // A stale etag loses; the current one wins.
    let current = get_policy(&app, &acme.admin_token, "").await;
    let with_etag = |etag: &str| proto::TokenPolicy {
        etag: etag.to_owned(),
        ..strict("")
    };
    assert_code(
        set_policy(&app, &manager, with_etag("999")).await,
        Code::Aborted,
    );
    set_policy(&app, &manager, with_etag(&current.etag))
        .await
        .expect("the current etag");

    // Bad input: each is INVALID_ARGUMENT naming the field, and changes nothing.
    let before = get_policy(&app, &acme.admin_token, "").await;
    let cases: Vec<(proto::TokenPolicy, &str)> = vec![
        (policy("", Some(0), None, &[]), "policy.max_lifetime"),
        (policy("", Some(-DAY), None, &[]), "policy.max_lifetime"),
        (
            policy("", Some(36_501 * DAY), None, &[]),
            "policy.max_lifetime",
        ),
        (
            proto::TokenPolicy {
                max_lifetime: Some(prost_types::Duration {
                    seconds: 10,
                    nanos: 500_000_000,
                }),
                ..Default::default()
            },
            "policy.max_lifetime",
        ),
        (
            proto::TokenPolicy {
                max_lifetime: Some(prost_types::Duration {
                    seconds: 10,
                    nanos: -1,
                }),
                ..Default::default()
            },
            "policy.max_lifetime",
        ),
        (
            policy("", None, Some(-1), &[]),
            "policy.max_reset_grace_period",
        ),
        (
            policy("", None, Some(i64::MAX), &[]),
            "policy.max_reset_grace_period",
        ),
        (
            policy("", None, None, &["orders.read", "NOT A PERMISSION"]),
            "policy.allowed_scopes[1]",
        ),
        (
            policy("acc_not-an-id", None, None, &[]),
            "policy.account_id",
        ),
    ];
    for (bad, field) in cases {
        let status = assert_code(
            set_policy(&app, &manager, bad.clone()).await,
            Code::InvalidArgument,
        );
        assert!(status.message().starts_with(field), "{bad:?}: {status:?}");
    }
    let too_many: Vec<String> = (0..101).map(|i| format!("app.p{i}")).collect();
    assert_code(
        set_policy(
            &app,
            &manager,
            proto::TokenPolicy {
                allowed_scopes: too_many,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    // Absent, the policy is an error, not a request to lift every rule.
    let status = assert_code(
        app.admin(&manager)
            .set_token_policy(proto::SetTokenPolicyRequest { policy: None })
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().starts_with("policy"), "{status:?}");
    assert_eq!(get_policy(&app, &acme.admin_token, "").await, before);
    set_policy(&app, &manager, proto::TokenPolicy::default())
        .await
        .expect("an empty policy lifts every rule");
    let lifted = get_policy(&app, &acme.admin_token, "").await;
    assert!(
        lifted.max_lifetime.is_none(),
        "an empty policy lifts every rule"
    );
    assert_ne!(lifted.etag, before.etag);
    assert_code(
        app.tokens(&acme.admin_token)
            .list_tokens(proto::ListTokensRequest {
                expire_time_before: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
}

backend_tests!(a_token_checked_against_an_outdated_policy_does_not_commit);

/// The store refuses a token change checked against a policy that has changed since (the
/// race between CreateToken and SetTokenPolicy, made deterministic by calling the store
/// with the version read before the change).
async fn a_token_checked_against_an_outdated_policy_does_not_commit() {
    use token_authority::domain::{
        AccountId, AllowedNetworks, ApiVersion, AuditAction, AuditRecord, Description, Labels,
        PermissionSet, PrincipalId, Token, TokenName, TokenSecret, TokenSpec, now,
    };
    use token_authority::store::{Change, StoreError};

    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let manager = policy_manager(&app, &acme).await;
    let store = token_authority::startup::open_store(
        &crate::helpers::test_settings(&app.database_url),
        false,
    )
    .await
    .expect("the store opens beside the server");
    let account_id = AccountId::parse(&acme.account_id, "account").unwrap();
    let read = store.account(&account_id).await.unwrap().unwrap();
    set_policy(&app, &manager, policy("", Some(DAY), None, &[]))
        .await
        .unwrap();
    let owner = PrincipalId::parse(&acme.admin_id, "owner").unwrap();
    let secret = TokenSecret::generate();
    let token = Token::issue(
        TokenSpec {
            account_id: account_id.clone(),
            owner_id: owner.clone(),
            name: TokenName::parse("raced", "name").unwrap(),
            description: Description::default(),
            scopes: PermissionSet::default(),
            labels: Labels::default(),
            api_version: ApiVersion::default(),
            allowed_networks: AllowedNetworks::default(),
            expires_at: None,
            created_by: owner.clone(),
        },
        secret.display_hint(),
        now(),
    );
    let change = Change {
        audit: AuditRecord {
            account_id: account_id.clone(),
            actor_id: Some(owner),
            actor_token_id: None,
            action: AuditAction::TokenCreate,
            target_id: token.id.to_string(),
            peer_address: None,
            details: Default::default(),
            occurred_at: now(),
        },
        invalidation: None,
    };
    let stale = store
        .insert_token(&token, &secret.hash(), read.version, &change)
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict("account"))),
        "{stale:?}"
    );
    assert_code(
        app.tokens(&acme.admin_token)
            .get_token(proto::GetTokenRequest {
                id: token.id.to_string(),
            })
            .await,
        Code::NotFound,
    );
    // The store checks the version, not the rules (the authority does): at the current
    // version the insert commits.
    let current = store.account(&account_id).await.unwrap().unwrap();
    store
        .insert_token(&token, &secret.hash(), current.version, &change)
        .await
        .expect("the account's current version");
    // An update checked against the outdated version does not commit either.
    let mut renamed = token.clone();
    renamed.name = TokenName::parse("renamed", "name").unwrap();
    renamed.version += 1;
    let stale = store
        .update_token(&renamed, token.version, None, Some(read.version), &change)
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict("account"))),
        "{stale:?}"
    );
    assert_eq!(
        app.get_token(&acme.admin_token, token.id.as_str())
            .await
            .name,
        "raced"
    );
}

backend_tests!(expiring_tokens_are_found_before_they_stop);

async fn expiring_tokens_are_found_before_they_stop() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let admin = acme.admin_token.as_str();
    let soon = create(&app, admin, &[], Some(2 * DAY)).await.unwrap();
    let later = create(&app, admin, &[], Some(20 * DAY)).await.unwrap();
    create(&app, admin, &[], None).await.unwrap();
    let listed = |days: u64| {
        let mut tokens = app.tokens(admin);
        let before = SystemTime::now() + Duration::from_secs(days * DAY as u64);
        async move {
            let mut ids: Vec<String> = tokens
                .list_tokens(proto::ListTokensRequest {
                    expire_time_before: Some(before.into()),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .tokens
                .into_iter()
                .map(|t| t.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let id = |created: &proto::CreateTokenResponse| created.token.as_ref().unwrap().id.clone();
    assert!(listed(1).await.is_empty());
    assert_eq!(listed(7).await, [id(&soon)]);
    let mut both = vec![id(&soon), id(&later)];
    both.sort();
    assert_eq!(listed(30).await, both, "never-expiring tokens never match");
}

/// One token of the test's fixed population: its lifetime in seconds (None: never expires)
/// and its scopes.
const POPULATION: &[(Option<i64>, &[&str])] = &[
    // The tenant admin's and the manager's tokens, created with the tenant.
    (None, &[]),
    (None, &[]),
    (None, &[]),
    (None, &["a"]),
    (Some(DAY), &[]),
    (Some(DAY), &["a"]),
    (Some(DAY), &["a", "b"]),
    (Some(10 * DAY), &["b"]),
    (Some(10 * DAY), &["c"]),
    (Some(30 * DAY), &["a", "c"]),
    (Some(30 * DAY), &["a", "b", "c"]),
    (Some(30 * DAY + 1), &["b"]),
    (Some(365 * DAY), &["a"]),
];

/// The rules, written again for the test: a lifetime past the maximum or none, no scopes or
/// one outside the allowed ones.
fn breaks(token: (Option<i64>, &[&str]), max_lifetime: Option<i64>, allowed: &[&str]) -> bool {
    let (lifetime, scopes) = token;
    let lifetime_broken = max_lifetime.is_some_and(|max| lifetime.is_none_or(|l| l > max));
    let scopes_broken =
        !allowed.is_empty() && (scopes.is_empty() || scopes.iter().any(|s| !allowed.contains(s)));
    lifetime_broken || scopes_broken
}

/// The SQL filter and the rules the RPCs enforce agree, on both databases: for random
/// policies (lifetimes at and around the population's, any subset of scopes), ListTokens
/// finds exactly the tokens the rules refuse, and reset (which enforces the whole policy)
/// refuses exactly those.
mod the_violation_filter_and_the_enforced_rules_agree {
    use crate::helpers::Backend;

    #[test]
    fn sqlite() {
        super::check_filter_agrees_with_rules(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        super::check_filter_agrees_with_rules(Backend::Postgres);
    }
}

fn check_filter_agrees_with_rules(backend: crate::helpers::Backend) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let scope = &crate::helpers::BACKEND;
    let (app, acme, manager, ids) = runtime.block_on(scope.scope(backend, async {
        let app = TestApp::spawn().await;
        let acme = app.create_tenant("acme", &["a", "b", "c"]).await;
        let manager = policy_manager(&app, &acme).await;
        // The admin's and the manager's tokens: unscoped, never expiring, like the first of
        // the population.
        let mut ids = vec![
            app.verify(&acme.admin_token, &[]).await.token_id,
            app.verify(&manager, &[]).await.token_id,
        ];
        for (lifetime, scopes) in &POPULATION[2..] {
            let created = create(&app, &acme.admin_token, scopes, *lifetime)
                .await
                .unwrap();
            ids.push(created.token.unwrap().id);
        }
        (app, acme, manager, ids)
    }));
    let lifetimes = prop_oneof![
        Just(None),
        proptest::sample::select(vec![
            DAY - 1,
            DAY,
            10 * DAY,
            30 * DAY,
            30 * DAY + 1,
            364 * DAY,
            365 * DAY
        ])
        .prop_map(Some),
        (1..400 * DAY).prop_map(Some),
    ];
    let allowed = proptest::sample::subsequence(vec!["a", "b", "c", "d"], 0..=4);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&(lifetimes, allowed), |(max_lifetime, allowed)| {
        runtime.block_on(scope.scope(backend, async {
            set_policy(&app, &manager, policy("", max_lifetime, None, &allowed))
                .await
                .expect("policy set");
            let breaking: Vec<bool> = POPULATION
                .iter()
                .map(|token| breaks(*token, max_lifetime, &allowed))
                .collect();
            let mut expected: Vec<String> = ids
                .iter()
                .zip(&breaking)
                .filter(|(_, breaks)| **breaks)
                .map(|(id, _)| id.clone())
                .collect();
            expected.sort();
            let found = violators(&app, &acme.admin_token, "").await;
            prop_assert_eq!(
                &found,
                &expected,
                "policy {:?} {:?}",
                max_lifetime,
                &allowed
            );
            // A reset changes neither lifetime nor scopes, so the population stays as it is
            // (but for the two credentials of the test, which a reset would end).
            for (id, breaks) in ids.iter().zip(&breaking).skip(2) {
                let reset = app
                    .tokens(&acme.admin_token)
                    .reset_token(proto::ResetTokenRequest {
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await;
                let code = reset.err().map(|status| status.code());
                let expected = breaks.then_some(Code::FailedPrecondition);
                prop_assert_eq!(code, expected, "reset of {}", id);
            }
            Ok(())
        }))
    });
    if let Err(error) = outcome {
        panic!("{backend:?}: {error}");
    }
}

/// On PostgreSQL, where replicas write concurrently: a policy-checked change (create,
/// duplicate, reset, update of the expiry) whose account changes between the policy read
/// and the commit is refused ABORTED. Another transaction holds the account row, changed,
/// until the change is seen waiting for it; then commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_racing_an_account_change_is_aborted_on_postgres() {
    use sqlx::Connection;
    crate::helpers::BACKEND
        .scope(crate::helpers::Backend::Postgres, async {
            let app = TestApp::spawn().await;
            let acme = app.create_tenant("acme", &[]).await;
            let token_id = create(&app, &acme.admin_token, &[], Some(DAY))
                .await
                .unwrap()
                .token
                .unwrap()
                .id;
            for step in ["create", "duplicate", "reset", "update"] {
                let mut blocker = sqlx::PgConnection::connect(&app.database_url)
                    .await
                    .unwrap();
                sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
                sqlx::query("UPDATE accounts SET version = version + 1 WHERE id = $1")
                    .bind(&acme.account_id)
                    .execute(&mut blocker)
                    .await
                    .unwrap();
                let mut tokens = app.tokens(&acme.admin_token);
                let id = token_id.clone();
                let call = tokio::spawn(async move {
                    match step {
                        "create" => tokens
                            .create_token(proto::CreateTokenRequest {
                                name: "raced".into(),
                                ..Default::default()
                            })
                            .await
                            .map(|_| ()),
                        "duplicate" => tokens
                            .duplicate_token(proto::DuplicateTokenRequest {
                                id,
                                name: String::new(),
                            })
                            .await
                            .map(|_| ()),
                        "reset" => tokens
                            .reset_token(proto::ResetTokenRequest {
                                id,
                                ..Default::default()
                            })
                            .await
                            .map(|_| ()),
                        _ => {
                            let later = SystemTime::now() + Duration::from_secs(3_600);
                            tokens
                                .update_token(proto::UpdateTokenRequest {
                                    token: Some(proto::Token {
                                        id,
                                        expire_time: Some(later.into()),
                                        ..Default::default()
                                    }),
                                    update_mask: mask("expire_time"),
                                })
                                .await
                                .map(|_| ())
                        }
                    }
                });
                wait_for_share_lock_waiter(&app.database_url, step).await;
                sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
                let outcome = call.await.expect("the call returns");
                let status = assert_code(outcome, Code::Aborted);
                assert!(status.message().contains("account"), "{step}: {status:?}");
            }
        })
        .await
}

/// Waits until a session of the database waits for a lock in the policy version check.
async fn wait_for_share_lock_waiter(database_url: &str, step: &str) {
    use sqlx::Connection;
    let mut observer = sqlx::PgConnection::connect(database_url).await.unwrap();
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(
            // This test's database only: another test's lock must not release it early.
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database()
               AND wait_event_type = 'Lock' AND query LIKE '%FOR SHARE%'",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{step}: no change came to wait for the account row");
}
