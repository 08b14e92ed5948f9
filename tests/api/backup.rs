//! `token-authority backup`: a consistent copy of a SQLite database taken while the server
//! runs and writes; a server started on the copy answers every verification as the original
//! did when the copy was taken.

use std::collections::BTreeMap;
use std::process::Command;

use token_authority::proto::{self, VerificationCode};

use crate::helpers::{TestApp, code_of, test_settings};

const BINARY: &str = env!("CARGO_BIN_EXE_token-authority");

/// Runs `token-authority backup` of `database_url` to `to`, in the directory `dir`; returns
/// whether it succeeded and what it printed.
async fn backup(database_url: &str, dir: &std::path::Path, to: &str) -> (bool, String) {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .args(["backup", "--database-url", database_url, "--to", to]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the backup task")
        .expect("the binary runs");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

/// What a verification says, without the revision (a restored server may be at another).
fn answer(response: proto::VerifyTokenResponse) -> proto::VerifyTokenResponse {
    // When it was answered, and in which history of the database (a restored copy starts
    // its own), differ between the two.
    proto::VerifyTokenResponse {
        revision: 0,
        verify_time: None,
        history: String::new(),
        ..response
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_server_writes_restores_every_answer() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &["orders.read"]).await;
    let owner = tenant.admin_id.as_str();
    let admin = tenant.admin_token.as_str();
    // Tokens in every state an answer can come from.
    let mut secrets = BTreeMap::new();
    let scoped = app.create_token(admin, owner, &["orders.read"]).await;
    secrets.insert("scoped", scoped.secret);
    let revoked = app.create_token(admin, owner, &[]).await;
    app.revoke(admin, &revoked.token.unwrap().id).await;
    secrets.insert("revoked", revoked.secret);
    let disabled = app.create_token(admin, owner, &[]).await;
    app.disable(admin, &disabled.token.unwrap().id).await;
    secrets.insert("disabled", disabled.secret);
    let reset = app.create_token(admin, owner, &[]).await;
    let renewed = app
        .tokens(admin)
        .reset_token(proto::ResetTokenRequest {
            id: reset.token.unwrap().id,
            grace_period: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    secrets.insert("reset, old secret in its grace period", reset.secret);
    secrets.insert("reset, new secret", renewed.secret);
    secrets.insert("tenant admin", tenant.admin_token.clone());
    secrets.insert("operator", app.bootstrap_token.clone());
    let mut before = BTreeMap::new();
    for (name, secret) in &secrets {
        before.insert(*name, answer(app.verify(secret, &[]).await));
    }
    assert_eq!(
        code_of(&before["revoked"]),
        VerificationCode::Revoked,
        "the states are what the names say"
    );

    // Tokens are created one after another while the backup runs: the copy holds a prefix
    // of them (a consistent snapshot), never a later one without an earlier one.
    let writer = {
        let tokens = app.tokens(admin);
        let owner = owner.to_owned();
        tokio::spawn(async move {
            let mut created = Vec::new();
            for i in 0..200 {
                let mut tokens = tokens.clone();
                let request = proto::CreateTokenRequest {
                    owner_id: owner.clone(),
                    name: format!("concurrent {i}"),
                    ..Default::default()
                };
                created.push(
                    tokens
                        .create_token(request)
                        .await
                        .unwrap()
                        .into_inner()
                        .secret,
                );
            }
            created
        })
    };
    let copy = app.dir.path().join("backup.db");
    let (succeeded, printed) = backup(&app.database_url, app.dir.path(), "backup.db").await;
    assert!(succeeded, "{printed}");
    assert!(printed.contains("Backup written to"), "{printed}");
    let concurrent = writer.await.unwrap();

    // Changes after the backup are not in it.
    let later = app.create_token(admin, owner, &[]).await;
    let scoped_id = app.verify(&secrets["scoped"], &[]).await.token_id;
    app.revoke(admin, &scoped_id).await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds secret hashes and keys");
    }
    // An existing file is never overwritten.
    let copied = std::fs::read(&copy).unwrap();
    let (succeeded, printed) = backup(&app.database_url, app.dir.path(), "backup.db").await;
    assert!(!succeeded);
    assert!(printed.contains("must not exist"), "{printed}");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        copied,
        "the copy is untouched"
    );
    // A name SQLite would read as a URI is a plain file name here.
    let uri_like = "file:copy.db?mode=memory";
    let (succeeded, printed) = backup(&app.database_url, app.dir.path(), uri_like).await;
    assert!(succeeded, "{printed}");
    let literal = std::fs::metadata(app.dir.path().join(uri_like)).unwrap();
    assert!(literal.len() > 0, "the copy is in the file named");
    assert!(
        no_staging_left(app.dir.path()),
        "the private directories the copies were written in are gone"
    );

    // Restore: a server on the copy.
    let stopped = app.stop().await;
    let restored_url = format!("sqlite://{}", copy.display());
    let restored = TestApp::start(test_settings(&restored_url), stopped.dir.clone()).await;
    assert!(
        restored.bootstrap_token.is_empty(),
        "a restored database is not bootstrapped again"
    );
    let verify = |secret: String| {
        let tokens = restored.tokens(&secrets["operator"]);
        async move {
            let mut tokens = tokens;
            let request = proto::VerifyTokenRequest {
                token: secret,
                required_scopes: vec![],
                min_revision: 0,
                client_address: String::new(),
            };
            answer(tokens.verify_token(request).await.unwrap().into_inner())
        }
    };
    for (name, secret) in &secrets {
        assert_eq!(verify(secret.clone()).await, before[name], "{name}");
    }
    assert_eq!(
        code_of(&verify(later.secret).await),
        VerificationCode::NotFound,
        "created after the backup"
    );
    let present: Vec<bool> = {
        let mut present = Vec::new();
        for secret in concurrent {
            present.push(verify(secret).await.valid);
        }
        present
    };
    let copied = present.iter().take_while(|valid| **valid).count();
    assert!(
        present[copied..].iter().all(|valid| !valid),
        "the copy holds a prefix of the tokens created during the backup: {present:?}"
    );
    let _ = restored.stop().await;
}

/// Whether `dir` holds none of the private directories `backup` writes its copy in.
fn no_staging_left(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().all(|entry| {
        !entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".token-authority-backup-")
    })
}

#[tokio::test]
async fn backup_refuses_postgresql_and_missing_databases() {
    let dir = tempfile::tempdir().unwrap();
    let (succeeded, printed) =
        backup("postgres://user@127.0.0.1:1/db", dir.path(), "copy.db").await;
    assert!(!succeeded);
    assert!(printed.contains("pg_dump"), "{printed}");
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());
    let (succeeded, printed) = backup(&missing, dir.path(), "copy.db").await;
    assert!(!succeeded, "{printed}");
    assert!(
        !dir.path().join("missing.db").exists(),
        "nothing is created"
    );
    assert!(
        !dir.path().join("copy.db").exists(),
        "no partial copy is left behind"
    );
    assert!(no_staging_left(dir.path()));
}
