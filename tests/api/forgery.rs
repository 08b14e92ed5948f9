//! What a stranger with forged tokens can make the database do. The checksum is public, so
//! anyone can forge well-formed tokens: a repeated one is answered from memory, distinct
//! ones from one address are limited (a far-future `min_revision` is refused at once:
//! read_your_writes.rs).
//! The database reads are counted by the server's own metric
//! (`token_authority_cold_lookups_total`).

use std::time::{Duration, Instant};

use tonic::Code;

use token_authority::domain::TokenSecret;
use token_authority::proto;
use token_authority::proto::admin_service_client::AdminServiceClient;
use token_authority::proto::token_service_client::TokenServiceClient;

use crate::helpers::terminate;
use crate::helpers::{Backend, Credential, TestApp, assert_code, backend};
use crate::metrics::{Metered, scrape_metrics, value};

fn cold_lookups(metrics_addr: &str, result: &str) -> f64 {
    value(
        &scrape_metrics(metrics_addr),
        "token_authority_cold_lookups_total",
        &[("result", result)],
    )
}

backend_tests!(a_repeated_forged_token_costs_one_database_read);

// Regression (issue 20): the same forged token sent 200 times as a credential ran 400 SQL
// statements; now the first read is remembered.
async fn a_repeated_forged_token_costs_one_database_read() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = match backend() {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("forgery.db").display()),
        Backend::Postgres => pg_cluster::fresh_database().await,
    };
    let Metered {
        child,
        channel,
        metrics_addr,
        owner,
        _dir,
        ..
    } = Metered::start_on(dir, database_url, &["--auth-failures-per-second", "0"]).await;
    let forged = TokenSecret::generate();
    let before = cold_lookups(&metrics_addr, "not_found");
    let mut admin = AdminServiceClient::with_interceptor(
        channel.clone(),
        Credential::Bearer(forged.expose().to_owned()),
    );
    for _ in 0..200 {
        let status = admin
            .get_account(proto::GetAccountRequest::default())
            .await
            .expect_err("a forged credential");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // VerifyToken of the same forged token: remembered too.
    let mut tokens =
        TokenServiceClient::with_interceptor(channel.clone(), Credential::Bearer(owner.clone()));
    for _ in 0..200 {
        let answer = tokens
            .verify_token(proto::VerifyTokenRequest {
                token: forged.expose().to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.code(), proto::VerificationCode::NotFound);
    }
    let reads = cold_lookups(&metrics_addr, "not_found") - before;
    assert_eq!(reads, 1.0, "one read for 400 presentations");
    // The owner's own token was read once too, and is cached since.
    assert_eq!(cold_lookups(&metrics_addr, "found"), 1.0);
    // A new token presented by 50 calls at once, none of them cached: one read, the others
    // wait for it (as the watch streams of one credential do after a change of its owner).
    let fresh = tokens
        .create_token(proto::CreateTokenRequest {
            name: "fresh".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let mut admin = AdminServiceClient::with_interceptor(
            channel.clone(),
            Credential::Bearer(fresh.clone()),
        );
        calls.spawn(async move { admin.get_account(proto::GetAccountRequest::default()).await });
    }
    for answer in calls.join_all().await {
        answer.expect("the fresh token authenticates");
    }
    assert_eq!(
        cold_lookups(&metrics_addr, "found"),
        2.0,
        "one read for 50 at once"
    );
    // Off the runtime: the clients' connection tasks must run while the server drains.
    tokio::task::spawn_blocking(move || terminate(child))
        .await
        .unwrap();
}

backend_tests!(an_address_that_keeps_failing_is_refused_for_a_while);

// Regression (issue 20): failed authentications were not limited at all, so distinct
// forged tokens each cost a database read, as fast as they could be sent. And (review) the
// limit must not lock out good clients on the same address, nor a credential's holder
// when someone else presents it from the wrong network.
async fn an_address_that_keeps_failing_is_refused_for_a_while() {
    let app = TestApp::spawn_with(|settings| settings.auth_failures_per_second = 5).await;
    let tenant = app.create_tenant("acme", &[]).await;
    let mut admin = app.admin(&tenant.admin_token);
    admin
        .get_account(proto::GetAccountRequest::default())
        .await
        .expect("a good credential, cached from here on");
    // A credential allowed elsewhere only, presented here: refused from the cache, often,
    // and never counted against anyone.
    let elsewhere = app
        .tokens(&tenant.admin_token)
        .create_token(proto::CreateTokenRequest {
            name: "office".into(),
            allowed_networks: vec!["198.51.100.0/24".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    for _ in 0..60 {
        assert_code(
            app.admin(&elsewhere)
                .get_account(proto::GetAccountRequest::default())
                .await,
            Code::Unauthenticated,
        );
    }
    // A token created now and never presented: its first use needs the database.
    let fresh = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .secret;
    let started = Instant::now();
    let (mut unauthenticated, mut exhausted) = (0, 0);
    for _ in 0..100 {
        let forged = TokenSecret::generate();
        match app
            .admin(forged.expose())
            .get_account(proto::GetAccountRequest::default())
            .await
        {
            Err(status) if status.code() == Code::Unauthenticated => unauthenticated += 1,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(status.message().contains("address"), "{status:?}");
                exhausted += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A burst of 25, then 5 a second.
    let allowed = 25.0 + 5.0 * started.elapsed().as_secs_f64() + 2.0;
    assert!(
        f64::from(unauthenticated) <= allowed,
        "{unauthenticated} > {allowed}"
    );
    assert!(exhausted >= 100 - allowed as i32, "{exhausted}");
    // While penalized, the address gets no database read ...
    assert_code(
        app.admin(&fresh)
            .get_account(proto::GetAccountRequest::default())
            .await,
        Code::ResourceExhausted,
    );
    // ... but its cached good credential keeps working ...
    admin
        .get_account(proto::GetAccountRequest::default())
        .await
        .expect("a cached credential is never limited");
    // ... and a moment later it is served again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.admin(&fresh)
        .get_account(proto::GetAccountRequest::default())
        .await
        .expect("served after the penalty");
}
