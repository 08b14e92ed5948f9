//! Read-your-writes: every change answers with the revision it was committed at, and
//! VerifyToken (and the client library) given that `min_revision` never answers from an
//! older state, on any replica; a replica that cannot catch up in time says so
//! (UNAVAILABLE) instead.

use std::time::{Duration, Instant};

use tonic::Code;

use token_authority::client::{CachingVerifier, VerifierConfig};
use token_authority::proto::{self, VerificationCode};

use crate::helpers::{BACKEND, Backend, TestApp, assert_code, code_of};

/// VerifyToken of `secret` on `app` as its operator, from a state that includes `revision`.
async fn verify_at(
    app: &TestApp,
    secret: &str,
    revision: u64,
) -> Result<proto::VerifyTokenResponse, tonic::Status> {
    app.operator_tokens()
        .verify_token(proto::VerifyTokenRequest {
            token: secret.to_owned(),
            required_scopes: vec![],
            min_revision: revision,
            client_address: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

// Replica B hears of A's changes neither by NOTIFY (off) nor by polling (hourly): without
// `min_revision` it keeps answering from its cache; with it, never older than asked.
#[tokio::test]
async fn a_replica_asked_for_a_revision_never_answers_from_before_it() {
    let a = BACKEND.scope(Backend::Postgres, TestApp::spawn()).await;
    let b = BACKEND
        .scope(
            Backend::Postgres,
            a.replica_with(|settings| {
                settings.event_poll_interval = Duration::from_secs(3600);
                settings.database_listen = false;
            }),
        )
        .await;
    let tenant = a.create_tenant("Acme", &[]).await;
    let created = a
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let id = created.token.clone().unwrap().id;
    // B caches the token as valid; a verifier attached to B follows B's stream.
    assert!(b.verify(&created.secret, &[]).await.valid);
    let mut config = VerifierConfig::new(b.channel_uri(), &tenant.admin_token);
    config.staleness_bound = Duration::from_secs(30);
    let verifier = CachingVerifier::new(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !verifier.is_fresh() {
        assert!(Instant::now() < deadline, "the verifier connects");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        verifier
            .verify(&created.secret, &[])
            .await
            .unwrap()
            .is_valid()
    );

    let mut tokens = a.tokens(&tenant.admin_token);
    for round in 0..5 {
        let disabled = tokens
            .disable_token(proto::DisableTokenRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if round == 0 {
            // The problem this solves: B still answers from before the change.
            assert!(b.verify(&created.secret, &[]).await.valid);
        }
        let answer = verify_at(&b, &created.secret, disabled.revision)
            .await
            .unwrap();
        assert_eq!(
            code_of(&answer),
            VerificationCode::Disabled,
            "round {round}"
        );
        assert!(answer.revision >= disabled.revision);
        let seen = verifier
            .verify_at_revision(&created.secret, &[], disabled.revision)
            .await
            .unwrap();
        assert_eq!(
            seen.code,
            VerificationCode::Disabled,
            "client, round {round}"
        );

        let enabled = tokens
            .enable_token(proto::EnableTokenRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(enabled.revision > disabled.revision);
        let answer = verify_at(&b, &created.secret, enabled.revision)
            .await
            .unwrap();
        assert!(answer.valid, "round {round}");
    }
    let revoked = tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let answer = verify_at(&b, &created.secret, revoked.revision)
        .await
        .unwrap();
    assert_eq!(code_of(&answer), VerificationCode::Revoked);
    let deleted = tokens
        .delete_token(proto::DeleteTokenRequest {
            id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.revision > revoked.revision);
    let answer = verify_at(&b, &created.secret, deleted.revision)
        .await
        .unwrap();
    assert_eq!(code_of(&answer), VerificationCode::NotFound);
}

backend_tests!(a_revision_never_committed_is_refused_at_once_and_revisions_only_grow);

// Before issue 20 a revision nobody had committed held the call for the whole wait (and
// returned as soon as any account changed): now the store is asked, and it is refused at
// once. UNAVAILABLE is for a replica that cannot tell (outage.rs).
async fn a_revision_never_committed_is_refused_at_once_and_revisions_only_grow() {
    let app =
        TestApp::spawn_with(|settings| settings.max_revision_wait = Duration::from_secs(5)).await;
    let tenant = app.create_tenant("Acme", &[]).await;
    // A change that alters answers first, so that no revision below is 0 (on a fresh
    // database every one would be, and `>=` would hold of anything).
    let throwaway = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let revoked = app
        .revoke(&tenant.admin_token, &throwaway.token.unwrap().id)
        .await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    assert!(created.revision > 0, "{}", created.revision);
    assert_eq!(revoked.state(), proto::TokenState::Revoked);
    // Reached: answered at once.
    let answer = verify_at(&app, &created.secret, created.revision)
        .await
        .unwrap();
    assert!(answer.valid && answer.revision >= created.revision);
    let started = Instant::now();
    let status = assert_code(
        verify_at(&app, &created.secret, answer.revision + 1000).await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("min_revision"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "no wait");
    // Nor is the revision the replica holds told (it counts every account's changes).
    assert!(
        !status.message().contains(&answer.revision.to_string()),
        "{status:?}"
    );
    // Revisions only grow, and a change that alters no answer still reports one.
    let renamed = app
        .tokens(&tenant.admin_token)
        .update_token(proto::UpdateTokenRequest {
            token: Some(proto::Token {
                id: created.token.clone().unwrap().id,
                name: "renamed".into(),
                ..Default::default()
            }),
            update_mask: crate::helpers::mask("name"),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(renamed.revision >= created.revision);
    // A change that alters answers moves it forward.
    let revoked = app
        .tokens(&tenant.admin_token)
        .revoke_token(proto::RevokeTokenRequest {
            id: created.token.clone().unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revision > renamed.revision);
}
