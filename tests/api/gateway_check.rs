//! Envoy's `Check` on the authority's own gRPC port (`--gateway-rules`): the gateway's
//! credential in the call's metadata must hold `tokens.verify`, it decides only on tokens of
//! its own account, and the answer carries the same header changes and refusals as the
//! edge's. Called here as Envoy calls it; the gateway tests run Envoy itself against the edge.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request as Req};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::{Credential, TestApp};

const RULES: &str = r#"
[[route]]
path = "/healthz"
public = true

[[route]]
path = "/v1/orders/**"
scopes = ["orders.read"]
"#;

async fn app_with_rules() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).expect("rules");
    let app = TestApp::spawn_with(|settings| settings.gateway_rules = Some(rules)).await;
    (app, dir)
}

fn check_client(
    app: &TestApp,
    credential: Credential,
) -> AuthorizationClient<InterceptedService<Channel, Credential>> {
    AuthorizationClient::with_interceptor(app.channel.clone(), credential)
}

/// A Check request for `GET path` with these client headers, from 127.0.0.1.
fn request(path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Req {
                http: Some(HttpRequest {
                    method: "GET".to_owned(),
                    path: path.to_owned(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<HashMap<_, _>>(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The HTTP status Envoy would answer the client with (200 for an allowed request).
fn http_status(response: &CheckResponse) -> i32 {
    match &response.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => {
            denied.status.as_ref().map(|s| s.code).unwrap_or_default()
        }
        _ => 200,
    }
}

/// The value of header `name` the answer sets on the upstream request.
fn upstream_header<'a>(response: &'a CheckResponse, name: &str) -> Option<&'a str> {
    match &response.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok
            .headers
            .iter()
            .filter_map(|option| option.header.as_ref())
            .find(|header| header.key == name)
            .map(|header| header.value.as_str()),
        _ => None,
    }
}

#[tokio::test]
async fn the_authoritys_check_needs_a_gateway_credential_with_tokens_verify() {
    let (app, _dir) = app_with_rules().await;
    let tenant = app.create_tenant("shop", &["orders.read"]).await;
    let client_token = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    let auth = format!("Bearer {}", client_token.secret);
    let probe = request("/v1/orders/7", &[("authorization", auth.as_str())]);

    let anonymous = check_client(&app, Credential::None)
        .check(probe.clone())
        .await
        .expect_err("no gateway credential");
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // A token of the tenant without tokens.verify.
    let reader = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "reader",
            &["tokens.read"],
        )
        .await;
    let reader_token = app.create_token(&tenant.admin_token, &reader.id, &[]).await;
    let refused = check_client(&app, Credential::Bearer(reader_token.secret))
        .check(probe.clone())
        .await
        .expect_err("no tokens.verify");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // The tenant's administrator (tokens.verify) as the gateway.
    let gateway = Credential::Bearer(tenant.admin_token.clone());
    let allowed = check_client(&app, gateway.clone())
        .check(probe)
        .await
        .expect("checked")
        .into_inner();
    assert_eq!(allowed.status.as_ref().map(|s| s.code), Some(0));
    assert_eq!(
        upstream_header(&allowed, "x-token-id"),
        Some(client_token.token.expect("token").id.as_str())
    );
    assert_eq!(
        upstream_header(&allowed, "x-account-id"),
        Some(tenant.account_id.as_str())
    );

    let missing = check_client(&app, gateway.clone())
        .check(request("/v1/orders/7", &[]))
        .await
        .expect("checked")
        .into_inner();
    assert_eq!(http_status(&missing), 401);
    let public = check_client(&app, gateway)
        .check(request("/healthz", &[]))
        .await
        .expect("checked")
        .into_inner();
    assert_eq!(http_status(&public), 200);
}

#[tokio::test]
async fn a_gateway_of_one_account_cannot_pass_another_accounts_tokens() {
    let (app, _dir) = app_with_rules().await;
    let ours = app.create_tenant("ours", &["orders.read"]).await;
    let theirs = app.create_tenant("theirs", &["orders.read"]).await;
    let their_token = app
        .create_token(&theirs.admin_token, &theirs.admin_id, &["orders.read"])
        .await;
    let auth = format!("Bearer {}", their_token.secret);
    let answer = check_client(&app, Credential::Bearer(ours.admin_token))
        .check(request("/v1/orders/7", &[("authorization", auth.as_str())]))
        .await
        .expect("checked")
        .into_inner();
    assert_eq!(http_status(&answer), 401);
    assert!(upstream_header(&answer, "x-token-id").is_none());

    // Their own gateway passes it; after a revocation, not any more.
    let theirs_gateway = Credential::Bearer(theirs.admin_token.clone());
    let answer = check_client(&app, theirs_gateway.clone())
        .check(request("/v1/orders/7", &[("authorization", auth.as_str())]))
        .await
        .expect("checked")
        .into_inner();
    assert_eq!(http_status(&answer), 200);
    app.revoke(&theirs.admin_token, &their_token.token.expect("token").id)
        .await;
    let answer = check_client(&app, theirs_gateway)
        .check(request("/v1/orders/7", &[("authorization", auth.as_str())]))
        .await
        .expect("checked")
        .into_inner();
    assert_eq!(http_status(&answer), 401);
}

/// `token-authority edge` as operators run it: its token from the environment, JSON logs,
/// metrics. It serves forward-auth, counts its decisions, and writes nothing secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_binary_takes_its_token_from_the_environment_and_never_logs_a_secret() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("shop", &["orders.read"]).await;
    let client_token = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).expect("rules");
    let mut child = Command::new(env!("CARGO_BIN_EXE_token-authority"))
        .env("TOKEN_AUTHORITY_EDGE_TOKEN", &tenant.admin_token)
        .args(["edge", "--authority", &app.channel_uri(), "--rules"])
        .arg(&rules)
        .args([
            "--forward-auth-addr",
            "127.0.0.1:0",
            "--ext-authz-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the edge starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut logs = Vec::new();
    let mut addr = |wanted: &str, logs: &mut Vec<String>| loop {
        let line = lines.next().expect("the edge logs").expect("log line");
        logs.push(line.clone());
        if line.contains(wanted) {
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            break value["addr"]
                .as_str()
                .expect("addr")
                .parse::<std::net::SocketAddr>()
                .expect("address");
        }
    };
    let metrics = addr("metrics listening", &mut logs);
    let forward_auth = addr("forward-auth listening", &mut logs);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::helpers::http(forward_auth, "GET", "/ready", &[])
        .await
        .status
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let auth = format!("Bearer {}", client_token.secret);
    for (authorization, status) in [(auth.as_str(), 200), ("Bearer tka_not_a_token", 401)] {
        let answer = crate::helpers::http(
            forward_auth,
            "GET",
            "/forward-auth",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/v1/orders/7"),
                ("authorization", authorization),
            ],
        )
        .await;
        assert_eq!(answer.status, status, "{answer:?}");
    }
    let scrape = crate::helpers::http(metrics, "GET", "/metrics", &[]).await;
    assert!(
        scrape.body.contains(
            r#"token_authority_gateway_decisions_total{result="allowed",route="/v1/orders/**"} 1"#
        ),
        "{}",
        scrape.body
    );
    assert!(
        scrape
            .body
            .contains("token_authority_client_cache_lookups_total")
    );

    let _ = child.kill();
    let _ = child.wait();
    logs.extend(lines.map_while(Result::ok));
    let logs = logs.join("\n");
    for secret in [&tenant.admin_token, &client_token.secret] {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret in the edge's logs"
        );
    }
    assert!(!scrape.body.contains(&client_token.secret));
}

/// The edge's ext_authz listener answers gRPC health as its forward-auth listener answers
/// `/ready`: SERVING once its watch stream is live, so that Envoy's health checks can follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_ext_authz_listener_reports_its_readiness_over_grpc_health() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("shop", &["orders.read"]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = crate::helpers::start_edge(&app, &tenant.admin_token, RULES, dir.path()).await;
    let channel = Channel::from_shared(format!("http://{}", edge.ext_authz))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        loop {
            let status = health
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .map(|r| r.into_inner().status());
            if status.as_ref().is_ok_and(|s| *s == ServingStatus::Serving) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{service:?} never SERVING: {status:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
