//! Envoy's `Check` on the authority's own gRPC port (`--gateway-rules`): the gateway's
//! credential in the call's metadata must hold `tokens.verify`, it decides only on tokens of
//! its own account, and the answer carries the same header changes and refusals as the
//! edge's. Called here as Envoy calls it, and through Envoy itself configured as the docs say.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request as Req};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use token_authority::domain::TokenSecret;

use crate::helpers::{Credential, Gateway, RawResponse, TestApp, http, start_echo_upstream};

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

/// A Check request for `GET path` with these client headers, from no address Envoy reports.
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

/// `request` as Envoy reports it from a client at `client`.
fn request_from(client: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer;
    let mut request = request(path, headers);
    if let Some(attributes) = request.attributes.as_mut() {
        attributes.source = Some(Peer {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: client.to_owned(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        });
    }
    request
}

// Security review of issue 23: the authority's Check let any client behind the gateway
// send forged tokens without limit, each a database read in the pool every verifier shares.
#[tokio::test]
async fn a_client_spraying_forged_tokens_at_the_authoritys_check_is_held_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).expect("rules");
    let app = TestApp::spawn_with(|settings| {
        settings.gateway_rules = Some(rules);
        // One a second, with a burst of five.
        settings.auth_failures_per_second = 1;
    })
    .await;
    let tenant = app.create_tenant("shop", &["orders.read"]).await;
    let other = app.create_tenant("other", &["orders.read"]).await;
    let gateway = check_client(&app, Credential::Bearer(tenant.admin_token.clone()));
    let other_gateway = check_client(&app, Credential::Bearer(other.admin_token.clone()));
    // A second gateway of the same account, with a credential of its own.
    let second_credential = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["tokens.verify"])
        .await;
    let second_gateway = check_client(&app, Credential::Bearer(second_credential.secret));
    let status_at = |gateway: &AuthorizationClient<_>, client: &'static str, token: String| {
        let mut gateway = gateway.clone();
        async move {
            let auth = format!("Bearer {token}");
            let answer = gateway
                .check(request_from(
                    client,
                    "/v1/orders/7",
                    &[("authorization", auth.as_str())],
                ))
                .await
                .expect("checked")
                .into_inner();
            http_status(&answer)
        }
    };
    let status_from = |client, token| status_at(&gateway, client, token);
    let forged = || TokenSecret::generate().expose().to_owned();
    // Created before the spray, used after it; `valid` is verified once, so that the
    // authority holds it in memory.
    let valid = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    assert_eq!(status_from("198.51.100.9", valid.secret.clone()).await, 200);
    let fresh_credential = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    // The client sprays from the address the test's own gRPC calls come from.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(status_from("127.0.0.1", forged()).await);
    }
    assert_eq!(statuses.first(), Some(&401), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    // While the address is held off (seen just before: a 401 instead means the penalty
    // lapsed, and that failure starts the next), what the authority answers from memory is
    // answered: a cached valid token, a malformed one. And another gateway, of this account
    // or another, which names the same client address, spends its own credential's
    // allowance: a credential cannot lock out another gateway's clients (security review of
    // the recovered work).
    let mut seen_held_off = false;
    for _ in 0..5 {
        if status_from("127.0.0.1", forged()).await != 429 {
            continue;
        }
        seen_held_off = true;
        assert_eq!(status_from("127.0.0.1", valid.secret.clone()).await, 200);
        assert_eq!(status_from("127.0.0.1", "tka_x".to_owned()).await, 401);
        for other in [&other_gateway, &second_gateway] {
            assert_eq!(status_at(other, "127.0.0.1", forged()).await, 401);
        }
        break;
    }
    assert!(seen_held_off, "the address was never held off");
    // Another address is not held off, and its valid token passes.
    assert_eq!(status_from("198.51.100.7", valid.secret.clone()).await, 200);
    assert_eq!(status_from("198.51.100.7", forged()).await, 401);
    // The authority's own callers on the sprayer's address are not held off: a credential
    // it has not seen yet still authenticates from 127.0.0.1.
    app.create_token(&fresh_credential.secret, &tenant.admin_id, &["orders.read"])
        .await;
    // Clients whose address Envoy does not report share one allowance.
    let mut unknown = Vec::new();
    for _ in 0..12 {
        let auth = format!("Bearer {}", TokenSecret::generate().expose());
        let answer = gateway
            .clone()
            .check(request("/v1/orders/7", &[("authorization", auth.as_str())]))
            .await
            .expect("checked")
            .into_inner();
        unknown.push(http_status(&answer));
    }
    assert_eq!(unknown.last(), Some(&429), "{unknown:?}");
}

/// Envoy itself asking the authority's `Check`, configured as docs/gateways.md says (the
/// shipped envoy.yaml pointed at the authority, with `initial_metadata`): identities reach
/// the service and credentials do not, refusals are the edge's, another account's token is
/// unknown, a revocation holds at once, and a gateway whose own credential is missing or
/// lacks `tokens.verify` lets nothing through (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_asking_the_authority_directly_guards_a_service() {
    let (app, _dir) = app_with_rules().await;
    let tenant = app.create_tenant("shop", &["orders.read"]).await;
    let other = app.create_tenant("other", &["orders.read"]).await;
    let upstream = start_echo_upstream().await;
    let envoy =
        Gateway::envoy_asking_authority(app.addr, Some(&tenant.admin_token), upstream).await;
    let get = |target: &'static str, headers: Vec<(&'static str, String)>| {
        let addr = envoy.addr;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http(addr, "GET", target, &headers).await
        }
    };

    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    let token_id = created.token.expect("token").id;
    let auth = format!("Bearer {}", created.secret);
    let answer = get("/v1/orders/7", vec![("authorization", auth.clone())]).await;
    assert_eq!(answer.status, 200, "{answer:?}\n{}", envoy.log());
    assert_eq!(answer.echoed("x-token-id"), [token_id.as_str()]);
    assert_eq!(answer.echoed("x-account-id"), [tenant.account_id.as_str()]);
    assert_eq!(answer.echoed("x-token-scopes"), ["orders.read"]);
    assert!(answer.echoed("authorization").is_empty(), "{}", answer.body);
    assert!(!answer.body.contains(&created.secret));
    assert!(
        !answer.body.contains(&tenant.admin_token),
        "the gateway's own"
    );

    // A forged identity is refused, not passed on.
    let forged = get(
        "/v1/orders/7",
        vec![
            ("authorization", auth.clone()),
            ("x-token-id", "tok_forged".into()),
        ],
    )
    .await;
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(forged.body.is_empty() || !forged.body.contains("tok_forged"));

    // Refusals carry their challenge.
    let challenge = |answer: &RawResponse| answer.header("www-authenticate").join(",");
    let missing = get("/v1/orders/7", vec![]).await;
    assert_eq!(missing.status, 401);
    assert!(challenge(&missing).starts_with("Bearer"), "{missing:?}");
    let unknown = get(
        "/v1/orders/7",
        vec![(
            "authorization",
            format!("Bearer {}", TokenSecret::generate().expose()),
        )],
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert!(challenge(&unknown).contains("invalid_token"), "{unknown:?}");
    // A token of a principal without orders.read.
    let reader = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "reader",
            &["tokens.read"],
        )
        .await;
    let reader_token = app.create_token(&tenant.admin_token, &reader.id, &[]).await;
    let answer = get(
        "/v1/orders/7",
        vec![("authorization", format!("Bearer {}", reader_token.secret))],
    )
    .await;
    assert_eq!(answer.status, 403);
    assert!(
        challenge(&answer).contains("insufficient_scope"),
        "{answer:?}"
    );
    assert_eq!(get("/healthz", vec![]).await.status, 200);

    // Another account's token is unknown to this gateway.
    let theirs = app
        .create_token(&other.admin_token, &other.admin_id, &["orders.read"])
        .await;
    let answer = get(
        "/v1/orders/7",
        vec![("authorization", format!("Bearer {}", theirs.secret))],
    )
    .await;
    assert_eq!(answer.status, 401);
    assert!(answer.echoed("x-token-id").is_empty());

    // Revoked: refused at the next request.
    app.revoke(&tenant.admin_token, &token_id).await;
    let answer = get("/v1/orders/7", vec![("authorization", auth.clone())]).await;
    assert_eq!(answer.status, 401, "{answer:?}");

    // A gateway without a credential, or with one lacking tokens.verify, passes nothing.
    let valid = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    let valid = format!("Bearer {}", valid.secret);
    for credential in [None, Some(reader_token.secret.as_str())] {
        let envoy = Gateway::envoy_asking_authority(app.addr, credential, upstream).await;
        let answer = http(
            envoy.addr,
            "GET",
            "/v1/orders/7",
            &[("authorization", valid.as_str())],
        )
        .await;
        assert_eq!(answer.status, 503, "{credential:?}: {answer:?}");
        assert!(answer.echoed("x-token-id").is_empty());
    }
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
