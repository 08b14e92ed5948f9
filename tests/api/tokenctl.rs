//! `tokenctl` end to end against a real server: JSON output parsed and checked, the secret
//! shown once or written to a private file, and one exit code per error class.

use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::TestApp;

const TOKENCTL: &str = env!("CARGO_BIN_EXE_tokenctl");

/// Runs tokenctl against `app` as the holder of `token`.
fn tokenctl(app: &TestApp, token: &str, args: &[&str]) -> Output {
    Command::new(TOKENCTL)
        .env("TOKENCTL_ENDPOINT", app.channel_uri())
        .env("TOKENCTL_TOKEN", token)
        .args(args)
        .output()
        .expect("tokenctl runs")
}

/// Runs tokenctl with `input` on its standard input.
fn tokenctl_stdin(app: &TestApp, token: &str, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(TOKENCTL)
        .env("TOKENCTL_ENDPOINT", app.channel_uri())
        .env("TOKENCTL_TOKEN", token)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tokenctl runs");
    // tokenctl may refuse its arguments and exit before reading: a broken pipe is then the
    // expected outcome of the write, not a failure of the test.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    child.wait_with_output().expect("tokenctl ends")
}

/// The JSON verdict of a `token verify` that refused the token: exit code 9.
fn refused(output: &Output) -> Value {
    assert_eq!(
        output.status.code(),
        Some(9),
        "a refused token is exit code 9: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "tokenctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// The exit code and the single error line.
fn failure(output: &Output) -> (i32, String) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    (output.status.code().expect("exit code"), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_commands_work_end_to_end_with_json_output() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let admin = tenant.admin_token.clone();

    let created = json(&tokenctl(
        &app,
        &admin,
        &[
            "-o",
            "json",
            "token",
            "create",
            "--name",
            "ci deploy",
            "--scope",
            "tokens.read",
            "--label",
            "team=payments",
            "--expires",
            "30d",
        ],
    ));
    let secret = created["secret"]
        .as_str()
        .expect("the secret is shown once")
        .to_owned();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tka_"));
    assert_eq!(created["token"]["name"], "ci deploy");
    assert_eq!(
        created["token"]["scopes"],
        serde_json::json!(["tokens.read"])
    );
    assert_eq!(created["token"]["labels"]["team"], "payments");
    assert_eq!(created["token"]["state"], "active");
    assert!(created["token"]["expire_time"].is_string());
    assert!(app.verify(&secret, &["tokens.read"]).await.valid);

    let fetched = json(&tokenctl(
        &app,
        &admin,
        &["-o", "json", "token", "get", &id],
    ));
    assert_eq!(fetched["id"], id.as_str());
    assert!(fetched.get("secret").is_none(), "never shown again");
    assert!(
        !String::from_utf8_lossy(&tokenctl(&app, &admin, &["token", "get", &id]).stdout)
            .contains(&secret)
    );

    // Verification.
    // The token to verify comes on standard input, never as an argument.
    let verdict = json(&tokenctl_stdin(
        &app,
        &admin,
        &["-o", "json", "token", "verify", "--scope", "tokens.read"],
        &format!("{secret}\n"),
    ));
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["code"], "valid");
    assert_eq!(verdict["token_id"], id.as_str());

    // Pagination: --all follows every page.
    for i in 0..3 {
        json(&tokenctl(
            &app,
            &admin,
            &["-o", "json", "token", "create", "--name", &format!("t{i}")],
        ));
    }
    let first_page = json(&tokenctl(
        &app,
        &admin,
        &["-o", "json", "token", "list", "--page-size", "2"],
    ));
    assert_eq!(first_page["items"].as_array().unwrap().len(), 2);
    assert_ne!(first_page["next_page_token"], "", "more pages remain");
    // The page token continues where the first page stopped.
    let next = first_page["next_page_token"].as_str().unwrap().to_owned();
    let second_page = json(&tokenctl(
        &app,
        &admin,
        &[
            "-o",
            "json",
            "token",
            "list",
            "--page-size",
            "2",
            "--page-token",
            &next,
        ],
    ));
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&second_page).len(), 2);
    assert!(
        ids(&second_page)
            .iter()
            .all(|id| !ids(&first_page).contains(id)),
        "the second page follows the first"
    );
    let all = json(&tokenctl(
        &app,
        &admin,
        &["-o", "json", "token", "list", "--page-size", "2", "--all"],
    ));
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        5,
        "the admin's own token and four created"
    );
    assert_eq!(all["next_page_token"], "", "--all fetched every page");
    let filtered = json(&tokenctl(
        &app,
        &admin,
        &["-o", "json", "token", "list", "--name-contains", "deploy"],
    ));
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);

    // Revoke, then the table shows it and verification says so.
    let revoked = json(&tokenctl(
        &app,
        &admin,
        &["-o", "json", "token", "revoke", &id, "--reason", "rotation"],
    ));
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(revoked["revoke_reason"], "rotation");
    let table = String::from_utf8_lossy(
        &tokenctl(&app, &admin, &["token", "list", "--state", "revoked"]).stdout,
    )
    .into_owned();
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains("revoked"));
    let verdict = refused(&tokenctl_stdin(
        &app,
        &admin,
        &["-o", "json", "token", "verify", "-"],
        &secret,
    ));
    assert_eq!(verdict["code"], "revoked");
    // The revoke printed its revision; verifying from it answers, from beyond it does not.
    let revision = revoked["revision"].as_u64().expect("a revision");
    assert!(revision > 0);
    let at = revision.to_string();
    let verdict = refused(&tokenctl_stdin(
        &app,
        &admin,
        &["-o", "json", "token", "verify", "--min-revision", &at, "-"],
        &secret,
    ));
    assert_eq!(verdict["code"], "revoked");
    let beyond = (revision + 1000).to_string();
    let refused = tokenctl_stdin(
        &app,
        &admin,
        &["token", "verify", "--min-revision", &beyond, "-"],
        &secret,
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("newer than any change committed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_can_go_to_a_private_file_instead_of_the_terminal() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.token");
    let output = tokenctl(
        &app,
        &app.bootstrap_token,
        &[
            "-o",
            "json",
            "token",
            "create",
            "--name",
            "deploy",
            "--secret-file",
            file.to_str().unwrap(),
        ],
    );
    let created = json(&output);
    assert!(created.get("secret").is_none());
    let secret = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(secret.starts_with("tka_"));
    assert!(!String::from_utf8_lossy(&output.stdout).contains(&secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(app.verify(&secret, &[]).await.valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_class_has_its_exit_code_and_one_line() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let reader = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "reader",
            &["tokens.read"],
        )
        .await;
    let reader_token = app
        .create_token(&tenant.admin_token, &reader.id, &[])
        .await
        .secret;
    let admin = &tenant.admin_token;

    let unreachable = Command::new(TOKENCTL)
        .env("TOKENCTL_ENDPOINT", "http://127.0.0.1:1")
        .env("TOKENCTL_TOKEN", admin)
        .args(["token", "list"])
        .output()
        .unwrap();
    assert_eq!(failure(&unreachable).0, 3);
    assert_eq!(
        failure(&tokenctl(&app, "tka_garbage", &["token", "list"])).0,
        4
    );
    // With no credential at all, the error says where one comes from.
    let anonymous = Command::new(TOKENCTL)
        .env("TOKENCTL_ENDPOINT", app.channel_uri())
        .env_remove("TOKENCTL_TOKEN")
        .env_remove("TOKENCTL_TOKEN_FILE")
        .args(["token", "list"])
        .output()
        .unwrap();
    let (code, line) = failure(&anonymous);
    assert_eq!(code, 4);
    assert!(
        line.contains("TOKENCTL_TOKEN") && line.contains("--token-file"),
        "{line}"
    );
    assert_eq!(
        failure(&tokenctl(
            &app,
            &reader_token,
            &["token", "create", "--name", "x"]
        ))
        .0,
        5
    );
    let (code, line) = failure(&tokenctl(
        &app,
        admin,
        &["token", "get", "tok_AAAAAAAAAAAAAAAAAAAAAA"],
    ));
    assert_eq!(code, 6);
    assert!(line.contains("not found"));
    assert_eq!(
        failure(&tokenctl(&app, admin, &["token", "get", "not-an-id"])).0,
        7
    );
    assert_eq!(
        failure(&tokenctl(
            &app,
            admin,
            &["token", "create", "--name", "x", "--expires", "soon"]
        ))
        .0,
        2
    );
    // A bad command line is clap's: exit 2 with the usage hint (several lines, by convention).
    let unknown = tokenctl(&app, admin, &["token", "frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).starts_with("error: unrecognized subcommand"));
    let created = app
        .create_token(admin, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    assert_eq!(
        tokenctl(&app, admin, &["token", "revoke", &created.id])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        failure(&tokenctl(&app, admin, &["token", "revoke", &created.id])).0,
        8,
        "revoked twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_ends_tokenctl_without_a_panic() {
    let app = TestApp::spawn().await;
    for args in [
        &["token", "list"][..],
        &["-o", "json", "token", "list"],
        &["completions", "bash"],
    ] {
        let mut child = Command::new(TOKENCTL)
            .env("TOKENCTL_ENDPOINT", app.channel_uri())
            .env("TOKENCTL_TOKEN", &app.bootstrap_token)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tokenctl runs");
        // The reader goes away before tokenctl has written (`tokenctl … | head -0`).
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("tokenctl ends");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: nothing to say: {stderr}");
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(TOKENCTL)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(
            script.contains("tokenctl") && script.contains("revoke"),
            "{shell}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_token_command_works() {
    let app = TestApp::spawn().await;
    let tenant = app
        .create_tenant("Acme", &["orders.read", "orders.write"])
        .await;
    let admin = tenant.admin_token.clone();
    let created = json(&tokenctl(
        &app,
        &admin,
        &[
            "-o",
            "json",
            "token",
            "create",
            "--name",
            "svc",
            "--scope",
            "orders.read",
            "--scope",
            "orders.write",
        ],
    ));
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();

    // A watcher that stops after four events, resuming from the revision before the
    // changes: however late it connects, it gets them (no sleep to race with).
    let before = app.verify(&admin, &[]).await.revision.to_string();
    let watcher = tokio::process::Command::new(TOKENCTL)
        .env("TOKENCTL_ENDPOINT", app.channel_uri())
        .env("TOKENCTL_TOKEN", &admin)
        .args([
            "-o", "json", "token", "watch", "--after", &before, "--limit", "4",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let updated = json(&tokenctl(
        &app,
        &admin,
        &[
            "-o",
            "json",
            "token",
            "update",
            &id,
            "--name",
            "svc v2",
            "--scope",
            "orders.read",
            "--label",
            "env=prod",
            "--expires",
            "1y",
        ],
    ));
    assert_eq!(updated["name"], "svc v2");
    assert_eq!(updated["scopes"], serde_json::json!(["orders.read"]));
    assert_eq!(updated["labels"]["env"], "prod");
    assert!(updated["expire_time"].is_string());
    assert_eq!(
        json(&tokenctl(
            &app,
            &admin,
            &["-o", "json", "token", "disable", &id]
        ))["state"],
        "disabled"
    );
    assert_eq!(
        json(&tokenctl(
            &app,
            &admin,
            &["-o", "json", "token", "enable", &id]
        ))["state"],
        "active"
    );
    let reset = json(&tokenctl(
        &app,
        &admin,
        &["-o", "json", "token", "reset", &id, "--grace", "1h"],
    ));
    let new_secret = reset["secret"].as_str().unwrap().to_owned();
    assert_eq!(reset["token"]["id"], id.as_str());
    assert!(
        reset["revision"]
            .as_u64()
            .is_some_and(|revision| revision > 0),
        "a reset prints its revision like every change"
    );
    assert!(
        app.verify(&secret, &[]).await.valid,
        "old secret in its grace period"
    );
    assert!(app.verify(&new_secret, &[]).await.valid);

    // Bounded: a watcher that misses an event fails the test instead of hanging it.
    let watched = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        watcher.wait_with_output(),
    )
    .await
    .expect("the watcher saw its four events")
    .unwrap();
    assert!(watched.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&watched.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "token_updated",
            "token_disabled",
            "token_enabled",
            "token_reset"
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l["target_id"] == id.as_str() && l["revision"].as_u64().is_some())
    );

    let copy = json(&tokenctl(
        &app,
        &admin,
        &[
            "-o",
            "json",
            "token",
            "duplicate",
            &id,
            "--name",
            "svc copy",
        ],
    ));
    assert_eq!(copy["token"]["name"], "svc copy");
    assert_eq!(copy["token"]["scopes"], serde_json::json!(["orders.read"]));
    let copy_id = copy["token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        json(&tokenctl(
            &app,
            &admin,
            &["-o", "json", "token", "delete", &copy_id]
        ))["deleted"],
        copy_id.as_str()
    );
    assert_eq!(
        failure(&tokenctl(&app, &admin, &["token", "get", &copy_id])).0,
        6
    );
    assert_eq!(
        failure(&tokenctl(&app, &admin, &["token", "update", &id])).0,
        2,
        "nothing to change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_account_and_audit_commands_work() {
    let app = TestApp::spawn().await;
    let operator = app.bootstrap_token.clone();
    let account = json(&tokenctl(
        &app,
        &operator,
        &["-o", "json", "account", "create", "--name", "Initech"],
    ));
    let account_id = account["id"].as_str().unwrap().to_owned();
    assert_eq!(account["api_access_enabled"], true);
    let principal = json(&tokenctl(
        &app,
        &operator,
        &[
            "-o",
            "json",
            "principal",
            "create",
            "--name",
            "ci",
            "--account",
            &account_id,
            "--permission",
            "tokens.read",
        ],
    ));
    let principal_id = principal["id"].as_str().unwrap().to_owned();
    assert_eq!(principal["kind"], "service_account");
    assert_eq!(principal["account_id"], account_id.as_str());
    let fetched = json(&tokenctl(
        &app,
        &operator,
        &["-o", "json", "principal", "get", &principal_id],
    ));
    assert_eq!(fetched["permissions"], serde_json::json!(["tokens.read"]));
    let updated = json(&tokenctl(
        &app,
        &operator,
        &[
            "-o",
            "json",
            "principal",
            "update",
            &principal_id,
            "--name",
            "ci bot",
            "--disabled",
            "true",
        ],
    ));
    assert_eq!(updated["display_name"], "ci bot");
    assert_eq!(updated["disabled"], true);
    let listed = json(&tokenctl(
        &app,
        &operator,
        &[
            "-o",
            "json",
            "principal",
            "list",
            "--account",
            &account_id,
            "--all",
        ],
    ));
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let switched = json(&tokenctl(
        &app,
        &operator,
        &[
            "-o",
            "json",
            "account",
            "api-access",
            "off",
            "--account",
            &account_id,
        ],
    ));
    assert_eq!(switched["api_access_enabled"], false);
    let got = json(&tokenctl(
        &app,
        &operator,
        &["-o", "json", "account", "get", &account_id],
    ));
    assert_eq!(got["api_access_enabled"], false);
    let own = json(&tokenctl(
        &app,
        &operator,
        &["-o", "json", "account", "get"],
    ));
    assert_eq!(own["operator"], true);

    let audit = json(&tokenctl(
        &app,
        &operator,
        &[
            "-o",
            "json",
            "audit",
            "list",
            "--account",
            &account_id,
            "--all",
            "--page-size",
            "1",
        ],
    ));
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "account.set_api_access",
            "principal.update",
            "principal.create",
            "account.create"
        ]
    );
    let table = String::from_utf8_lossy(
        &tokenctl(
            &app,
            &operator,
            &[
                "audit",
                "list",
                "--account",
                &account_id,
                "--target",
                &principal_id,
            ],
        )
        .stdout,
    )
    .into_owned();
    assert!(table.lines().next().unwrap().starts_with("ID"));
    assert!(table.contains("principal.update"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_are_spoken_to_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (cert_path, key_path) = (cert.clone(), key.clone());
    let app = TestApp::spawn_with(move |settings| {
        settings.tls_cert = Some(cert_path);
        settings.tls_key = Some(key_path);
    })
    .await;
    let https = format!("https://localhost:{}", app.addr.port());
    let run = |endpoint: &str, extra: &[&str]| {
        Command::new(TOKENCTL)
            .env("TOKENCTL_ENDPOINT", endpoint)
            .env("TOKENCTL_TOKEN", &app.bootstrap_token)
            .args(extra)
            .args(["-o", "json", "token", "list"])
            .output()
            .unwrap()
    };
    // Trusting the server's CA: works.
    let listed = json(&run(&https, &["--ca-cert", cert.to_str().unwrap()]));
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    // Not trusting it (system roots only): refused, cleanly.
    let (code, line) = failure(&run(&https, &[]));
    assert_eq!(code, 3, "{line}");
    // Plaintext against a TLS server: refused too.
    let (code, line) = failure(&run(&app.channel_uri(), &[]));
    assert_eq!(code, 3, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_another_accounts_tokens() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let listed = json(&tokenctl(
        &app,
        &app.bootstrap_token,
        &[
            "-o",
            "json",
            "token",
            "list",
            "--account",
            &tenant.account_id,
        ],
    ));
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "the tenant administrator's token");
    assert_eq!(listed[0]["account_id"], tenant.account_id.as_str());
    // A tenant naming another account is told it does not exist.
    let other = app.create_tenant("Globex", &[]).await;
    let output = tokenctl(
        &app,
        &tenant.admin_token,
        &["token", "list", "--account", &other.account_id],
    );
    assert_eq!(failure(&output).0, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_read_from_files_or_stdin_never_from_arguments() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("own.token");
    std::fs::write(&own, format!("{}\n", tenant.admin_token)).unwrap();
    let own = own.to_str().unwrap();
    // Your credential from a file, or from stdin, with TOKENCTL_TOKEN unset.
    let listed = Command::new(TOKENCTL)
        .env("TOKENCTL_ENDPOINT", app.channel_uri())
        .env_remove("TOKENCTL_TOKEN")
        .args(["-o", "json", "--token-file", own, "token", "list"])
        .output()
        .unwrap();
    assert_eq!(json(&listed)["items"].as_array().unwrap().len(), 1);
    let listed = tokenctl_stdin(
        &app,
        "",
        &["-o", "json", "--token-file", "-", "token", "list"],
        &tenant.admin_token,
    );
    assert_eq!(json(&listed)["items"].as_array().unwrap().len(), 1);
    // The token to verify from a file.
    let checked = dir.path().join("checked.token");
    std::fs::write(&checked, &tenant.admin_token).unwrap();
    let verdict = json(&tokenctl(
        &app,
        &tenant.admin_token,
        &["-o", "json", "token", "verify", checked.to_str().unwrap()],
    ));
    assert_eq!(verdict["code"], "valid");

    // A secret where a file name belongs is refused, and not printed back.
    for args in [
        vec!["token", "verify", tenant.admin_token.as_str()],
        vec!["--token-file", tenant.admin_token.as_str(), "token", "list"],
    ] {
        let output = tokenctl(&app, &tenant.admin_token, &args);
        let (code, stderr) = failure(&output);
        assert_eq!(code, 2, "{stderr}");
        assert!(!stderr.contains(&tenant.admin_token), "{stderr}");
        assert!(stderr.contains("standard input"), "{stderr}");
    }
    // The old flag that took the token itself is gone.
    let output = tokenctl(
        &app,
        &tenant.admin_token,
        &["--token", "x", "token", "list"],
    );
    assert_eq!(output.status.code(), Some(2), "clap's usage error");
    // Stdin carries one secret, not two.
    let output = tokenctl_stdin(
        &app,
        "",
        &["--token-file", "-", "token", "verify"],
        &tenant.admin_token,
    );
    assert_eq!(failure(&output).0, 2);
    // Empty input is a usage error, not an empty token sent to the server.
    let output = tokenctl_stdin(&app, &tenant.admin_token, &["token", "verify"], "\n");
    assert_eq!(failure(&output).0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_secrets_are_reported_from_a_file_or_stdin_in_batches() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let first = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let second = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    // More than one request holds (100): tokenctl sends them in batches, answers in order.
    let mut input = format!("{}\n\n  {}  \n", first.secret, second.secret);
    for _ in 0..103 {
        input.push_str("tka_junk\n");
    }
    let report = json(&tokenctl_stdin(
        &app,
        &tenant.admin_token,
        &[
            "-o",
            "json",
            "token",
            "report-leak",
            "--source",
            "incident-7",
            "--url",
            "https://example.com/paste/7",
        ],
        &input,
    ));
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 105);
    assert_eq!(results[0]["status"], "REVOKED");
    assert_eq!(results[0]["secret"], 1);
    assert_eq!(
        results[1]["token_id"].as_str(),
        Some(second.token.as_ref().unwrap().id.as_str())
    );
    assert_eq!(results[104]["status"], "MALFORMED");
    assert!(report["revision"].as_u64().unwrap() > 0);
    assert!(!app.verify(&first.secret, &[]).await.valid);

    // From a file, as a table: the same secrets are now inactive; no secret is printed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leaked.txt");
    std::fs::write(&file, &input).unwrap();
    let output = tokenctl(
        &app,
        &tenant.admin_token,
        &[
            "token",
            "report-leak",
            "--source",
            "incident-7",
            file.to_str().unwrap(),
        ],
    );
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("#1") && table.contains("ALREADY_INACTIVE"),
        "{table}"
    );
    assert!(!table.contains(&first.secret[4..]), "{table}");

    // Never from the command line.
    let output = tokenctl(
        &app,
        &tenant.admin_token,
        &["token", "report-leak", "--source", "x", &second.secret],
    );
    let (code, stderr) = failure(&output);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains(&second.secret), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_policies_are_shown_changed_rule_by_rule_and_enforced() {
    let app = TestApp::spawn().await;
    let operator = app.bootstrap_token.clone();
    let acme = app.create_tenant("acme", &["orders.read"]).await;
    let set = |args: &[&str]| {
        let mut all = vec!["-o", "json", "account", "set-policy", "--account"];
        all.push(&acme.account_id);
        all.extend_from_slice(args);
        json(&tokenctl(&app, &operator, &all))
    };
    let policy = set(&["--max-lifetime", "90d", "--max-reset-grace", "1h"]);
    assert_eq!(policy["account_id"], acme.account_id.as_str());
    assert_eq!(policy["max_lifetime_seconds"], 90 * 86_400);
    assert_eq!(policy["max_reset_grace_period_seconds"], 3_600);
    // Only the rules given change.
    let policy = set(&["--allowed-scope", "orders.read"]);
    assert_eq!(policy["max_lifetime_seconds"], 90 * 86_400);
    assert_eq!(policy["allowed_scopes"], serde_json::json!(["orders.read"]));
    let policy = set(&["--max-reset-grace", "none"]);
    assert!(policy["max_reset_grace_period_seconds"].is_null());
    assert_eq!(policy["allowed_scopes"], serde_json::json!(["orders.read"]));
    // The tenant reads its own policy, as a table too.
    let shown = json(&tokenctl(
        &app,
        &acme.admin_token,
        &["-o", "json", "account", "policy"],
    ));
    assert_eq!(shown, policy);
    let table = tokenctl(&app, &acme.admin_token, &["account", "policy"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("max_lifetime") && table.contains("90d"),
        "{table}"
    );

    // Enforced: a token without an expiry is refused with the rule named.
    let refused = tokenctl(
        &app,
        &acme.admin_token,
        &[
            "token",
            "create",
            "--name",
            "forever",
            "--scope",
            "orders.read",
        ],
    );
    let (code, message) = failure(&refused);
    assert_eq!(code, 8, "FAILED_PRECONDITION: {message}");
    assert!(message.contains("max_lifetime"), "{message}");
    let within = json(&tokenctl(
        &app,
        &acme.admin_token,
        &[
            "-o",
            "json",
            "token",
            "create",
            "--name",
            "soon",
            "--scope",
            "orders.read",
            "--expires",
            "3d",
        ],
    ));
    let soon_id = within["token"]["id"].as_str().unwrap().to_owned();
    let listed = |filter: &[&str]| -> Vec<String> {
        let mut args = vec!["-o", "json", "token", "list"];
        args.extend_from_slice(filter);
        let tokens = json(&tokenctl(&app, &acme.admin_token, &args));
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed(&["--expiring-within", "7d"]), [soon_id]);
    // The tenant admin's own token predates the policy: unscoped, never expiring.
    let admin_token_id = app.verify(&acme.admin_token, &[]).await.token_id;
    assert_eq!(listed(&["--violating-policy"]), [admin_token_id]);

    // Setting needs accounts.manage; a bad duration is a usage error before any call.
    let (code, message) = failure(&tokenctl(
        &app,
        &acme.admin_token,
        &["account", "set-policy", "--max-lifetime", "30d"],
    ));
    assert_eq!(code, 5, "PERMISSION_DENIED: {message}");
    let (code, message) = failure(&tokenctl(
        &app,
        &operator,
        &["account", "set-policy", "--max-lifetime", "soon"],
    ));
    assert_eq!(code, 2, "usage: {message}");
    let (code, _) = failure(&tokenctl(&app, &operator, &["account", "set-policy"]));
    assert_eq!(code, 2);
    let (code, message) = failure(&tokenctl(
        &app,
        &acme.admin_token,
        &["token", "list", "--expiring-within", "tomorrow"],
    ));
    assert_eq!(code, 2, "usage: {message}");
}
