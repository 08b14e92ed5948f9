//! Leak response: ReportLeakedTokens revokes tokens by their secrets, in every account,
//! tells watchers, and reveals a token, its account or its reporter only to those who may
//! see them.

use std::time::Duration;

use tonic::Code;

use token_authority::domain::TokenSecret;
use token_authority::proto::{self, LeakStatus, VerificationCode};

use crate::helpers::{TestApp, Watched, assert_code, code_of, read_until};

fn report(secrets: &[&str], source: &str, url: &str) -> proto::ReportLeakedTokensRequest {
    proto::ReportLeakedTokensRequest {
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        source: source.to_owned(),
        url: url.to_owned(),
    }
}

/// The audit events of `action` on `target_id`, as the holder of `token` sees them.
async fn audit(
    app: &TestApp,
    token: &str,
    action: &str,
    target_id: &str,
) -> Vec<proto::AuditEvent> {
    app.admin(token)
        .list_audit_events(proto::ListAuditEventsRequest {
            action: action.to_owned(),
            target_id: target_id.to_owned(),
            ..Default::default()
        })
        .await
        .expect("audit events")
        .into_inner()
        .events
}

backend_tests!(reported_secrets_are_revoked_in_every_account_and_named_only_where_visible);

async fn reported_secrets_are_revoked_in_every_account_and_named_only_where_visible() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let globex = app.create_tenant("globex", &[]).await;
    // Acme's scanner may report, and nothing else.
    let scanner = app
        .create_principal(
            &acme.admin_token,
            &acme.account_id,
            "scanner",
            &["tokens.report_leaked"],
        )
        .await;
    let scanner_token = app
        .create_token(&acme.admin_token, &scanner.id, &[])
        .await
        .secret;

    let acme_live = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let acme_revoked = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    app.revoke(&acme.admin_token, &acme_revoked.token.as_ref().unwrap().id)
        .await;
    let globex_live = app
        .create_token(&globex.admin_token, &globex.admin_id, &[])
        .await;
    let globex_disabled = app
        .create_token(&globex.admin_token, &globex.admin_id, &[])
        .await;
    app.disable(
        &globex.admin_token,
        &globex_disabled.token.as_ref().unwrap().id,
    )
    .await;
    // Expired tokens can be given a new expire time: a leaked one is revoked too. So is the
    // token of a secret replaced by a reset whose grace period has ended: its new secret is
    // most likely where the old one leaked (or in the hands of whoever reset it).
    let mut globex_tokens = app.tokens(&globex.admin_token);
    let globex_expired = globex_tokens
        .create_token(proto::CreateTokenRequest {
            name: "short".into(),
            expiry: Some(proto::create_token_request::Expiry::Ttl(
                prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rotated = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let rotated_id = rotated.token.as_ref().unwrap().id.clone();
    let reset = app
        .tokens(&acme.admin_token)
        .reset_token(proto::ResetTokenRequest {
            id: rotated_id.clone(),
            grace_period: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    app.advance_clock(Duration::from_secs(2));
    assert_eq!(
        code_of(&app.verify(&globex_expired.secret, &[]).await),
        VerificationCode::Expired
    );

    let mut stream = app
        .watch_from_now(&app.bootstrap_token, "")
        .await
        .expect("operator watches every account");
    let unknown = TokenSecret::generate();
    let answer = app
        .tokens(&scanner_token)
        .report_leaked_tokens(report(
            &[
                &acme_live.secret,
                &acme_revoked.secret,
                &globex_live.secret,
                &format!("Bearer {}", globex_disabled.secret),
                &globex_expired.secret,
                &rotated.secret,
                unknown.expose(),
                "tka_not-a-token",
            ],
            "github-secret-scanning",
            "https://github.com/someone/dotfiles/blob/main/.env",
        ))
        .await
        .expect("the scanner reports")
        .into_inner();

    let statuses: Vec<LeakStatus> = answer.results.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses,
        [
            LeakStatus::Revoked,
            LeakStatus::AlreadyInactive,
            LeakStatus::Revoked,
            LeakStatus::Revoked,
            LeakStatus::Revoked,
            LeakStatus::Revoked,
            LeakStatus::NotFound,
            LeakStatus::Malformed,
        ]
    );
    // Acme's own tokens are named to Acme's scanner; Globex's are not, nor is Globex.
    let named: Vec<(&str, &str)> = answer
        .results
        .iter()
        .map(|r| (r.token_id.as_str(), r.account_id.as_str()))
        .collect();
    let acme_named = |created: &proto::CreateTokenResponse| {
        (
            created.token.as_ref().unwrap().id.clone(),
            acme.account_id.clone(),
        )
    };
    let owned = |i: usize| (named[i].0.to_owned(), named[i].1.to_owned());
    assert_eq!(owned(0), acme_named(&acme_live));
    assert_eq!(owned(1), acme_named(&acme_revoked));
    assert_eq!(named[5], (rotated_id.as_str(), acme.account_id.as_str()));
    for hidden in [2, 3, 4, 6, 7] {
        assert_eq!(named[hidden], ("", ""), "result {hidden}");
    }
    let printed = format!("{answer:?}");
    assert!(!printed.contains(&globex.account_id), "{printed}");
    for created in [&globex_live, &globex_disabled, &globex_expired] {
        assert!(!printed.contains(&created.token.as_ref().unwrap().id));
    }

    // Revoked for every verifier at the answer's revision, and announced to watchers.
    for secret in [
        &acme_live.secret,
        &globex_live.secret,
        &globex_disabled.secret,
        &globex_expired.secret,
    ] {
        let verified = app
            .operator_tokens()
            .verify_token(proto::VerifyTokenRequest {
                token: secret.clone(),
                required_scopes: vec![],
                min_revision: answer.revision,
                client_address: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code_of(&verified), VerificationCode::Revoked);
    }
    // The rotated token is revoked, its current secret with it.
    assert_eq!(
        code_of(&app.verify(&reset.secret, &[]).await),
        VerificationCode::Revoked
    );
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, Duration::from_secs(10), |w| {
        w.events.len() >= 5
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    let revoked: Vec<&str> = watched
        .events
        .iter()
        .filter(|e| e.r#type() == proto::InvalidationType::TokenRevoked)
        .filter_map(|e| match &e.target {
            Some(proto::invalidation_event::Target::TokenId(id)) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(revoked.len(), 5, "{watched:?}");
    assert_eq!(watched.last_revision(), answer.revision);

    // Globex's record names neither the reporter from Acme nor any of its words (source,
    // url): only that a principal of another account reported it, in this service's words.
    let globex_live_id = &globex_live.token.as_ref().unwrap().id;
    let token = app.get_token(&globex.admin_token, globex_live_id).await;
    assert_eq!(token.revoker_id, "");
    assert_eq!(
        token.revoke_reason,
        "leaked: reported by a principal of another account (a secret scanner or incident responder)"
    );
    let records = audit(&app, &globex.admin_token, "token.revoke", globex_live_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(
        (record.actor_id.as_str(), record.actor_token_id.as_str()),
        ("", "")
    );
    assert_eq!(record.peer_address, "");
    assert!(!record.details.contains_key("leak_source"), "{record:?}");
    assert!(!record.details.contains_key("leak_url"), "{record:?}");
    assert_eq!(record.details["reporter"], "a principal of another account");
    let printed = format!("{record:?}");
    for foreign in [&acme.account_id[..], "github-secret-scanning", "dotfiles"] {
        assert!(!printed.contains(foreign), "{foreign}: {printed}");
    }
    // Acme's own token keeps its scanner's words: the reporter is of its account.
    let acme_live_id = &acme_live.token.as_ref().unwrap().id;
    let own = audit(&app, &acme.admin_token, "token.revoke", acme_live_id).await;
    assert_eq!(own[0].details["leak_source"], "github-secret-scanning");
    assert_eq!(
        app.get_token(&acme.admin_token, acme_live_id)
            .await
            .revoke_reason,
        "leaked: reported by github-secret-scanning"
    );
    // Acme's record of its own token names its scanner ...
    assert_eq!(
        app.get_token(&acme.admin_token, acme_live_id)
            .await
            .revoker_id,
        scanner.id
    );
    let records = audit(&app, &acme.admin_token, "token.revoke", acme_live_id).await;
    assert_eq!(records[0].actor_id, scanner.id);
    // ... and Acme keeps the report itself, naming no token of Globex; every revoke it
    // caused carries its id, so an operator can join them across accounts.
    let reports = audit(&app, &acme.admin_token, "token.report_leak", "").await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report_id = &reports[0].target_id;
    assert!(report_id.starts_with("lrp_"), "{report_id}");
    assert_eq!(reports[0].target_type, "leak_report");
    assert_eq!(reports[0].actor_id, scanner.id);
    let details = &reports[0].details;
    assert_eq!(details["source"], "github-secret-scanning");
    assert_eq!(details["secrets"], "8");
    assert_eq!(&record.details["leak_report_id"], report_id);
    assert!(
        audit(&app, &globex.admin_token, "token.report_leak", "")
            .await
            .is_empty()
    );

    // An operator sees every account: the same secrets, now inactive, are named to it.
    let answer = app
        .operator_tokens()
        .report_leaked_tokens(report(&[&globex_live.secret], "incident-42", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results[0].status(), LeakStatus::AlreadyInactive);
    assert_eq!(
        (
            answer.results[0].token_id.as_str(),
            answer.results[0].account_id.as_str()
        ),
        (globex_live_id.as_str(), globex.account_id.as_str())
    );
}

backend_tests!(an_operators_report_names_it_in_the_tokens_account);

async fn an_operators_report_names_it_in_the_tokens_account() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let leaked = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let id = leaked.token.as_ref().unwrap().id.clone();
    let answer = app
        .operator_tokens()
        .report_leaked_tokens(report(&[&leaked.secret], "incident-42", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results[0].status(), LeakStatus::Revoked);
    assert_eq!(answer.results[0].token_id, id);
    let owner = app.bootstrap_owner_id().await;
    assert_eq!(
        app.get_token(&acme.admin_token, &id).await.revoker_id,
        owner
    );
    let records = audit(&app, &acme.admin_token, "token.revoke", &id).await;
    assert_eq!(records[0].actor_id, owner);
    assert!(!records[0].details.contains_key("leak_url"));
    // A secret reported twice in one report: revoked once, then already inactive.
    let again = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let answer = app
        .tokens(&acme.admin_token)
        .report_leaked_tokens(report(&[&again.secret, &again.secret], "scanner", ""))
        .await
        .unwrap()
        .into_inner();
    let statuses: Vec<LeakStatus> = answer.results.iter().map(|r| r.status()).collect();
    assert_eq!(statuses, [LeakStatus::Revoked, LeakStatus::AlreadyInactive]);
}

backend_tests!(bad_leak_reports_are_refused_and_revoke_nothing);

async fn bad_leak_reports_are_refused_and_revoke_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let leaked = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let mut tokens = app.tokens(&acme.admin_token);
    let many: Vec<&str> = vec![leaked.secret.as_str(); 101];
    let long_source = "s".repeat(101);
    let long_url = format!("https://example.com/{}", "u".repeat(2048));
    for (request, field) in [
        (report(&[], "scanner", ""), "secrets"),
        (report(&many, "scanner", ""), "secrets"),
        (report(&[&leaked.secret], "", ""), "source"),
        (report(&[&leaked.secret], "  ", ""), "source"),
        (report(&[&leaked.secret], &long_source, ""), "source"),
        (report(&[&leaked.secret], "scan\nner", ""), "source"),
        (report(&[&leaked.secret], "scanner", &long_url), "url"),
        (
            report(&[&leaked.secret], "scanner", "https://x/\r\nforged: yes"),
            "url",
        ),
        (
            report(
                &[&leaked.secret],
                "scanner",
                &format!("https://x/?t={}", leaked.secret),
            ),
            "url",
        ),
        (
            report(&[&leaked.secret], &format!("found {}", leaked.secret), ""),
            "source",
        ),
        // Regression (review): a token glued to other characters was not seen.
        (
            report(
                &[&leaked.secret],
                "scanner",
                &format!("https://x/search?q=key%3D{}", leaked.secret),
            ),
            "url",
        ),
        (
            report(&[&leaked.secret], &format!("key_{}", leaked.secret), ""),
            "source",
        ),
        (
            report(
                &[&leaked.secret],
                "scanner",
                &format!("https://x/?t={}", leaked.secret.replacen('_', "%5F", 1)),
            ),
            "url",
        ),
    ] {
        let status = assert_code(
            tokens.report_leaked_tokens(request).await,
            Code::InvalidArgument,
        );
        assert!(status.message().contains(field), "{field}: {status:?}");
        assert!(!status.message().contains(&leaked.secret[4..]));
    }
    // Unauthenticated: a malformed credential, or a revoked one.
    let status = assert_code(
        app.tokens("tka_nope")
            .report_leaked_tokens(report(&[&leaked.secret], "scanner", ""))
            .await,
        Code::Unauthenticated,
    );
    assert!(!status.message().contains(&leaked.secret[4..]));
    let reporter = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    app.revoke(&acme.admin_token, &reporter.token.as_ref().unwrap().id)
        .await;
    let status = assert_code(
        app.tokens(&reporter.secret)
            .report_leaked_tokens(report(&[&leaked.secret], "scanner", ""))
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("revoked"), "{status:?}");
    // 100 secrets is the bound, and fine.
    let hundred: Vec<&str> = vec!["tka_x"; 100];
    let answer = tokens
        .report_leaked_tokens(report(&hundred, "scanner", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results.len(), 100);
    assert!(
        app.verify(&leaked.secret, &[]).await.valid,
        "nothing was revoked"
    );
}

backend_tests!(a_leaked_secret_revokes_its_token_even_after_resets);

// Regression (issue 20): whoever held a leaked secret with `tokens.update` could reset the
// token with it first; the report of the leaked secret then answered NOT_FOUND and the
// thief's new secret stayed valid.
async fn a_leaked_secret_revokes_its_token_even_after_resets() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let globex = app.create_tenant("globex", &[]).await;
    let reset = |secret: &str, id: &str| {
        let (secret, id) = (secret.to_owned(), id.to_owned());
        let app = &app;
        async move {
            app.tokens(&secret)
                .reset_token(proto::ResetTokenRequest {
                    id,
                    ..Default::default()
                })
                .await
                .expect("reset")
                .into_inner()
                .secret
        }
    };
    // The thief resets the token with the leaked secret itself, then once more.
    let leaked = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let id = leaked.token.as_ref().unwrap().id.clone();
    let first = reset(&leaked.secret, &id).await;
    let thiefs = reset(&first, &id).await;
    assert!(app.verify(&thiefs, &[]).await.valid);
    assert_eq!(
        code_of(&app.verify(&leaked.secret, &[]).await),
        VerificationCode::NotFound
    );
    // A scanner of another account reports the original secret: the token is revoked.
    let answer = app
        .tokens(&globex.admin_token)
        .report_leaked_tokens(report(&[&leaked.secret], "scanner", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results[0].status(), LeakStatus::Revoked);
    assert_eq!(answer.results[0].token_id, "", "not named across accounts");
    for secret in [&thiefs, &first] {
        let verdict = app
            .operator_tokens()
            .verify_token(proto::VerifyTokenRequest {
                token: secret.clone(),
                min_revision: answer.revision,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            matches!(
                code_of(&verdict),
                VerificationCode::Revoked | VerificationCode::NotFound
            ),
            "{verdict:?}"
        );
    }
    assert_eq!(
        code_of(&app.verify(&thiefs, &[]).await),
        VerificationCode::Revoked
    );
    // Reported again: already inactive, and Acme's own report names it.
    let again = app
        .tokens(&acme.admin_token)
        .report_leaked_tokens(report(&[&first], "scanner", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.results[0].status(), LeakStatus::AlreadyInactive);
    assert_eq!(again.results[0].token_id, id);
    // A deleted token's replaced secrets are forgotten with it.
    let gone = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let gone_id = gone.token.as_ref().unwrap().id.clone();
    reset(&acme.admin_token, &gone_id).await;
    app.tokens(&acme.admin_token)
        .delete_token(proto::DeleteTokenRequest {
            id: gone_id,
            ..Default::default()
        })
        .await
        .unwrap();
    let answer = app
        .tokens(&acme.admin_token)
        .report_leaked_tokens(report(&[&gone.secret], "scanner", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results[0].status(), LeakStatus::NotFound);
}
