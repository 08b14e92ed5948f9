//! Secrets never leak: no plaintext token in the database files, the logs or error
//! messages, whatever was done with it.

use tonic::Code;

use token_authority::proto;

use crate::helpers::{Backend, Credential, Stopped, TestApp, backend, captured_logs};

/// Everything the database holds, as (where, bytes): the SQLite files, or every row of every
/// PostgreSQL table as text (bytea columns show as hex, so hex forms are added too).
async fn stored_bytes(stopped: &Stopped) -> Vec<(String, Vec<u8>)> {
    match backend() {
        Backend::Sqlite => {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(stopped.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
            assert!(files.iter().any(|(name, _)| name.ends_with("authority.db")));
            files
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut db = sqlx::PgConnection::connect(&stopped.database_url)
                .await
                .unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            )
            .fetch_all(&mut db)
            .await
            .unwrap();
            assert!(tables.len() >= 7, "{tables:?}");
            let mut dumps = Vec::new();
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
                        .fetch_all(&mut db)
                        .await
                        .unwrap();
                dumps.push((table, rows.join("\n").into_bytes()));
            }
            dumps
        }
    }
}

backend_tests!(no_plaintext_secret_reaches_the_database_logs_or_errors);

async fn no_plaintext_secret_reaches_the_database_logs_or_errors() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let mut secrets = vec![app.bootstrap_token.clone(), tenant.admin_token.clone()];

    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let id = created.token.clone().unwrap().id;
    secrets.push(created.secret.clone());
    let reset = tokens
        .reset_token(proto::ResetTokenRequest {
            id: id.clone(),
            grace_period: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    secrets.push(reset.secret.clone());
    let duplicate = tokens
        .duplicate_token(proto::DuplicateTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    secrets.push(duplicate.secret.clone());

    // Use every secret: as a credential, in VerifyToken, and in failing calls.
    let mut messages = Vec::new();
    for secret in &secrets {
        assert!(app.verify(secret, &["tokens.read"]).await.valid);
        let _ = app
            .tokens(secret)
            .list_tokens(proto::ListTokensRequest::default())
            .await;
        // Almost right: a typo of the secret, presented as a credential and to VerifyToken.
        let mut typo = secret.clone();
        typo.pop();
        typo.push(if secret.ends_with('a') { 'b' } else { 'a' });
        let status = app
            .tokens_with(Credential::ApiKey(typo.clone()))
            .list_tokens(proto::ListTokensRequest::default())
            .await
            .expect_err("a typo is not a credential");
        assert_eq!(status.code(), Code::Unauthenticated);
        messages.push(status.message().to_owned());
        let _ = app.verify(&typo, &[]).await;
        // A request that fails validation while carrying the secret.
        let status = tokens
            .verify_token(proto::VerifyTokenRequest {
                token: secret.clone(),
                required_scopes: vec!["BAD".into()],
                min_revision: 0,
                client_address: String::new(),
            })
            .await
            .expect_err("bad scope");
        messages.push(status.message().to_owned());
    }
    tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = app
        .tokens(&reset.secret)
        .list_tokens(proto::ListTokensRequest::default())
        .await
        .unwrap_err();
    messages.push(status.message().to_owned());
    // Reported leaked: revoked by its secret; then a report refused for its source while
    // carrying the secret.
    let report = |source: &str| proto::ReportLeakedTokensRequest {
        secrets: vec![duplicate.secret.clone()],
        source: source.to_owned(),
        url: "https://example.com/pastes/1".to_owned(),
    };
    let reported = tokens
        .report_leaked_tokens(report("scanner"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reported.results[0].status(), proto::LeakStatus::Revoked);
    let status = tokens
        .report_leaked_tokens(report(""))
        .await
        .expect_err("no source");
    messages.push(status.message().to_owned());
    // Regression (issue 20): a url holding a secret encoded twice (`tka%255F…`) was stored.
    for encoded in ["%255F", "%25255F"] {
        let status = tokens
            .report_leaked_tokens(proto::ReportLeakedTokensRequest {
                url: format!(
                    "https://example.com/?t={}",
                    created.secret.replacen('_', encoded, 1)
                ),
                ..report("scanner")
            })
            .await
            .expect_err("a url holding a token");
        assert_eq!(status.code(), Code::InvalidArgument);
        messages.push(status.message().to_owned());
    }

    // The client library's log lines too: a verifier whose credential was revoked warns.
    let verifier = token_authority::client::CachingVerifier::new(
        token_authority::client::VerifierConfig::new(app.channel_uri(), reset.secret.clone()),
    )
    .unwrap();
    let _ = verifier.verify(&created.secret, &[]).await;
    // Other tests' verifiers warn the same: this one's line names this server.
    let this_server = format!("\"authority\":\"127.0.0.1:{}\"", app.addr.port());
    let warned = || {
        captured_logs().lines().any(|line| {
            line.contains("the verifier's credential was refused") && line.contains(&this_server)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !warned() {
        assert!(
            std::time::Instant::now() < deadline,
            "the verifier never warned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(verifier);

    let stopped = app.stop().await;
    let logs = captured_logs();
    // The capture holds this test's own lines (not only other tests'): they name its token.
    assert!(logs.contains(&id), "logs of this test were captured");
    let files = stored_bytes(&stopped).await;
    let found = |needle: &str| {
        files
            .iter()
            .any(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    assert!(found(&id), "the scan sees what is stored (the token id)");
    for secret in &secrets {
        // The random body alone: no prefix or formatting can hide a match.
        let body = &secret[4..36];
        assert!(!logs.contains(body), "a secret is in the logs");
        for message in &messages {
            assert!(
                !message.contains(body),
                "a secret is in an error message: {message}"
            );
        }
        let hex: String = body.bytes().map(|b| format!("{b:02x}")).collect();
        for (name, bytes) in &files {
            assert!(
                !bytes
                    .windows(hex.len())
                    .any(|window| window == hex.as_bytes()),
                "a secret (hex) is in {name}"
            );
            assert!(
                !bytes
                    .windows(body.len())
                    .any(|window| window == body.as_bytes()),
                "a secret is in {name}"
            );
        }
    }
}
