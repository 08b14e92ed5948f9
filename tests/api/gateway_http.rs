//! nginx (`auth_request`) and Caddy (`forward_auth`) guarding a service with
//! `token-authority edge`, as `deploy/gateway/` ships their configurations: identity headers
//! reach the service and forged ones do not, refusals carry RFC 6750 challenges, path tricks
//! cannot reach a stricter route through a laxer one, a revocation is refused at the gateway
//! within milliseconds, and without the authority the gateway fails closed. Every test runs
//! once per gateway, as `name::nginx` and `name::caddy`; the gateway's behaviour depends on
//! no database, so one backend serves.

/// Runs the test function `name` once per gateway, as `name::nginx` and `name::caddy`.
macro_rules! gateway_tests {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nginx() {
                super::$name(crate::helpers::GatewayKind::Nginx).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn caddy() {
                super::$name(crate::helpers::GatewayKind::Caddy).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn envoy() {
                super::$name(crate::helpers::GatewayKind::Envoy).await
            }
        }
    };
}

use std::time::{Duration, Instant};

use token_authority::domain::TokenSecret;
use token_authority::proto;

use token_authority::gateway::edge::EdgeSettings;

use crate::helpers::{
    Gateway, GatewayKind, Proxy, RawResponse, TestApp, http, start_echo_upstream, start_edge_with,
};

const RULES: &str = r#"
[[route]]
path = "/healthz"
public = true

[[route]]
path = "/public/**"
public = true

[[route]]
name = "admin"
path = "/admin/**"
scopes = ["admin.write"]

[[route]]
name = "orders"
methods = ["GET"]
path = "/v1/orders/**"
scopes = ["orders.read"]
"#;

struct Setup {
    app: TestApp,
    gateway: Gateway,
    admin_token: String,
    admin_id: String,
    account_id: String,
    _dir: tempfile::TempDir,
}

async fn setup(kind: GatewayKind) -> Setup {
    setup_with(kind, |_| {}).await
}

/// [`setup`] with the edge's settings adjusted.
async fn setup_with(kind: GatewayKind, adjust: impl FnOnce(&mut EdgeSettings)) -> Setup {
    let app = TestApp::spawn().await;
    let tenant = app
        .create_tenant("shop", &["orders.read", "admin.write"])
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The edge verifies with the tenant administrator's token (it holds tokens.verify).
    let edge = start_edge_with(
        &app.channel_uri(),
        &tenant.admin_token,
        RULES,
        dir.path(),
        adjust,
    )
    .await;
    let upstream = start_echo_upstream().await;
    let gateway = Gateway::start(kind, Some(edge), upstream).await;
    Setup {
        app,
        gateway,
        admin_token: tenant.admin_token,
        admin_id: tenant.admin_id,
        account_id: tenant.account_id,
        _dir: dir,
    }
}

impl Setup {
    async fn token(&self, scopes: &[&str]) -> proto::CreateTokenResponse {
        self.app
            .create_token(&self.admin_token, &self.admin_id, scopes)
            .await
    }

    async fn get(&self, target: &str, headers: &[(&str, &str)]) -> RawResponse {
        http(self.gateway.addr, "GET", target, headers).await
    }
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

gateway_tests!(a_valid_token_passes_with_its_identity_and_without_its_credential);
async fn a_valid_token_passes_with_its_identity_and_without_its_credential(kind: GatewayKind) {
    let s = setup(kind).await;
    let created = s.token(&["orders.read"]).await;
    let token = created.token.expect("token");
    let auth = bearer(&created.secret);
    let answer = s
        .get("/v1/orders/7", &[("authorization", auth.as_str())])
        .await;
    assert_eq!(answer.status, 200, "{answer:?}\n{}", s.gateway.log());
    assert_eq!(answer.echoed("x-token-id"), [token.id.as_str()]);
    assert_eq!(answer.echoed("x-account-id"), [s.account_id.as_str()]);
    assert_eq!(answer.echoed("x-principal-id"), [s.admin_id.as_str()]);
    assert_eq!(answer.echoed("x-token-scopes"), ["orders.read"]);
    assert!(answer.echoed("authorization").is_empty(), "{}", answer.body);
    assert!(!answer.body.contains(&created.secret));

    // The x-api-key form too, and its header is removed as well.
    let answer = s
        .get("/v1/orders/7", &[("x-api-key", created.secret.as_str())])
        .await;
    assert_eq!(answer.status, 200);
    assert!(answer.echoed("x-api-key").is_empty(), "{}", answer.body);

    // Identity headers the client sends itself never reach the service: the edge refuses
    // the request (nginx and Envoy pass them to it), or the gateway removed them before
    // asking (Caddy) and the service gets the real identity, or none on a public route.
    for (target, credential) in [("/v1/orders/7", auth.as_str()), ("/public/page", "")] {
        let mut headers = vec![
            ("x-token-id", "tok_forged"),
            ("x-account-id", "acc_forged"),
            ("x-principal-id", "prn_forged"),
            ("x-token-scopes", "admin.write"),
        ];
        if !credential.is_empty() {
            headers.push(("authorization", credential));
        }
        let answer = s.get(target, &headers).await;
        match answer.status {
            403 => {}
            200 => {
                for (name, forged) in &headers[..4] {
                    assert!(
                        !answer.echoed(name).contains(forged),
                        "{target}: forged {name} reached the service: {}",
                        answer.body
                    );
                }
            }
            other => panic!("{target}: {other}: {answer:?}"),
        }
    }
}

gateway_tests!(refusals_say_401_or_403_with_their_challenge_and_nothing_more);
async fn refusals_say_401_or_403_with_their_challenge_and_nothing_more(kind: GatewayKind) {
    let s = setup(kind).await;
    let reader = s.token(&["orders.read"]).await;
    let unknown = TokenSecret::generate();

    let missing = s.get("/v1/orders/7", &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), ["Bearer"]);

    for credential in [
        "Bearer not-a-token".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        bearer(unknown.expose()),
    ] {
        let answer = s
            .get("/v1/orders/7", &[("authorization", credential.as_str())])
            .await;
        assert_eq!(answer.status, 401, "{credential}");
        assert_eq!(
            answer.header("www-authenticate"),
            [r#"Bearer error="invalid_token""#],
            "{credential}"
        );
        assert!(!answer.body.contains(unknown.expose()));
    }

    // Two different credentials: refused, not guessed at.
    let two = s
        .get(
            "/v1/orders/7",
            &[
                ("authorization", bearer(&reader.secret).as_str()),
                ("x-api-key", unknown.expose()),
            ],
        )
        .await;
    assert_eq!(two.status, 401);

    // A scope the token lacks.
    let answer = s
        .get(
            "/admin/users",
            &[("authorization", bearer(&reader.secret).as_str())],
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.header("www-authenticate"),
        [r#"Bearer error="insufficient_scope""#]
    );

    // A method no route allows, and a path no route matches: refused without a default.
    let post = http(
        s.gateway.addr,
        "POST",
        "/v1/orders/7",
        &[
            ("authorization", bearer(&reader.secret).as_str()),
            ("content-length", "0"),
        ],
    )
    .await;
    assert_eq!(post.status, 403);
    // HEAD is answered by GET handlers: the GET rule applies to it, with its scopes.
    let head = http(s.gateway.addr, "HEAD", "/v1/orders/7", &[]).await;
    assert_eq!(head.status, 401);
    let unmatched = s
        .get(
            "/v2/anything",
            &[("authorization", bearer(&reader.secret).as_str())],
        )
        .await;
    assert_eq!(unmatched.status, 403);
}

gateway_tests!(a_token_used_outside_its_networks_is_refused_at_the_gateway);
async fn a_token_used_outside_its_networks_is_refused_at_the_gateway(kind: GatewayKind) {
    let s = setup(kind).await;
    let created = s
        .app
        .tokens(&s.admin_token)
        .create_token(proto::CreateTokenRequest {
            name: "office only".into(),
            scopes: vec!["orders.read".into()],
            allowed_networks: vec!["10.0.0.0/8".into()],
            ..Default::default()
        })
        .await
        .expect("token created")
        .into_inner();
    // The gateway tells the edge the client is 127.0.0.1.
    let answer = s
        .get(
            "/v1/orders/7",
            &[
                ("authorization", bearer(&created.secret).as_str()),
                // A client claiming an address of the network: the gateway replaces the header.
                ("x-forwarded-for", "10.1.2.3"),
            ],
        )
        .await;
    assert_eq!(answer.status, 403, "{answer:?}");
}

gateway_tests!(path_tricks_cannot_reach_a_stricter_route_through_a_laxer_one);
async fn path_tricks_cannot_reach_a_stricter_route_through_a_laxer_one(kind: GatewayKind) {
    let s = setup(kind).await;
    let reader = s.token(&["orders.read"]).await;
    let auth = bearer(&reader.secret);
    // Each of these is /admin/… to some service: with a token for the orders route only,
    // or none for the public one, it must be refused.
    for target in [
        "/v1/orders/%2e%2e/%2e%2e/admin/users",
        "/v1/orders/%2E%2E/%2E%2E/admin/users",
        "/v1/orders/..%2F..%2Fadmin/users",
        "/v1/orders/..%5C..%5Cadmin/users",
        "/v1/orders/..;/..;/admin/users",
        "/v1/orders/%252e%252e/%252e%252e/admin/users",
        "/ADMIN/users",
        "/Admin/users",
        "/admin./users",
        "/admin%2e/users",
        "/admin;x=1/users",
        "//admin/users",
        "/./admin/users",
        "/v1/orders/.../admin/users",
    ] {
        let answer = s.get(target, &[("authorization", auth.as_str())]).await;
        assert!(
            answer.status == 403 || answer.status == 400,
            "{target}: {answer:?}"
        );
    }
    for target in [
        "/public/%2e%2e/admin/users",
        "/public/..%2Fadmin/users",
        "/public/..;/admin/users",
        "/PUBLIC/../admin/users",
        // Climbing out of the stricter route into the laxer one: a service that does not
        // resolve dot segments (or reads `..;` as a name) routes these to /admin.
        "/admin/..;/public/x",
        "/admin/..%3B/public/x",
        "/admin/%2e%2e/public/x",
        "/admin/../public/x",
        // A `#` in the request line: the edge must not stop reading at it.
        "/public#/../admin/users",
        "/public%23/../admin/users",
    ] {
        let answer = s.get(target, &[]).await;
        // Refused; or, where the gateway itself resolved the path (Envoy's normalize_path),
        // passed on as the public path the edge judged, never as the admin one.
        let refused = [400, 401, 403].contains(&answer.status);
        let served_public = answer.status == 200
            && answer
                .echoed("target")
                .iter()
                .all(|received| received.starts_with("/public/") && !received.contains(".."));
        assert!(refused || served_public, "{target}: {answer:?}");
    }
    // Characters a service may normalise to ASCII, under the public route: fullwidth `．．`
    // and `／` are ../admin to a service that normalises NFKC. No gateway changes them, and
    // the public rule would match them as names: the edge must refuse them.
    for target in [
        "/public/%EF%BC%8E%EF%BC%8E/admin/users",
        "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin/users",
    ] {
        let answer = s.get(target, &[]).await;
        assert!([400, 403].contains(&answer.status), "{target}: {answer:?}");
    }
    // Identity headers spelled with underscores, which CGI-style services read as the
    // real ones, and method overrides: refused (or dropped by the gateway), never passed.
    for (name, value) in [
        ("x_token_id", "tok_forged"),
        ("X_Token_Scopes", "admin.write"),
        ("x-token_api_version", "v9"),
        ("x-http-method-override", "DELETE"),
        ("x-method-override", "DELETE"),
        ("X_HTTP_Method_Override", "DELETE"),
        ("x-original-url", "/admin/users"),
        ("X-Rewrite-URL", "/admin/users"),
    ] {
        let answer = s.get("/public/page", &[(name, value)]).await;
        let passed_on = answer.body.lines().any(|line| {
            line.to_ascii_lowercase()
                .starts_with(&name.to_ascii_lowercase())
        });
        assert!(
            answer.status != 200 || !passed_on,
            "{name} reached the service: {answer:?}"
        );
    }
    // A method override in the query, as PHP names parameters: refused.
    for target in [
        "/public/page?_method=DELETE",
        "/public/page?.method=DELETE",
        "/public/page?+_method=DELETE",
        "/public/page?%20_method=DELETE",
        "/public/page?a=1&_METHOD[]=DELETE",
    ] {
        let answer = s.get(target, &[]).await;
        assert_eq!(answer.status, 403, "{target}: {answer:?}");
    }
    // The client names a public path itself, in either convention's headers: the gateway
    // overwrites or removes them, or the edge refuses the mix.
    for (name, value) in [
        ("x-original-uri", "/public/page"),
        ("x-original-method", "GET"),
        ("x-forwarded-uri", "/public/page"),
        ("x-forwarded-method", "GET"),
    ] {
        let answer = s.get("/admin/users", &[(name, value)]).await;
        assert_eq!(answer.status, 401, "{name}: {answer:?}");
    }
    let both = s
        .get(
            "/admin/users",
            &[
                ("x-original-uri", "/public/page"),
                ("x-original-method", "GET"),
                ("x-forwarded-uri", "/public/page"),
                ("x-forwarded-method", "GET"),
            ],
        )
        .await;
    assert_eq!(both.status, 401, "{both:?}");
}

gateway_tests!(a_revoked_token_is_refused_at_the_gateway_within_milliseconds);
async fn a_revoked_token_is_refused_at_the_gateway_within_milliseconds(kind: GatewayKind) {
    let s = setup(kind).await;
    let created = s.token(&["orders.read"]).await;
    let id = created.token.expect("token").id;
    let auth = bearer(&created.secret);
    // Warm: the edge's cache holds the answer.
    for _ in 0..3 {
        assert_eq!(
            s.get("/v1/orders/7", &[("authorization", auth.as_str())])
                .await
                .status,
            200
        );
    }
    s.app.revoke(&s.admin_token, &id).await;
    let revoked_at = Instant::now();
    loop {
        let answer = s
            .get("/v1/orders/7", &[("authorization", auth.as_str())])
            .await;
        if answer.status == 401 {
            break;
        }
        assert_eq!(answer.status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still let through a second after the revocation"
        );
    }
    println!(
        "revocation refused at {kind:?} {:?} after RevokeToken returned",
        revoked_at.elapsed()
    );
}

gateway_tests!(without_the_authority_the_gateway_fails_closed_and_recovers_when_it_returns);
async fn without_the_authority_the_gateway_fails_closed_and_recovers_when_it_returns(
    kind: GatewayKind,
) {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("shop", &["orders.read"]).await;
    let warm = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    let revoked = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    // The edge reaches the authority through a stable address, as through a load balancer.
    let proxy = Proxy::to(app.addr).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge_with(&proxy.uri(), &tenant.admin_token, RULES, dir.path(), |_| {}).await;
    let gateway = Gateway::start(kind, Some(edge), start_echo_upstream().await).await;
    let get = |secret: &str| {
        let auth = bearer(secret);
        async move {
            http(
                gateway.addr,
                "GET",
                "/v1/orders/7",
                &[("authorization", auth.as_str())],
            )
            .await
            .status
        }
    };
    assert_eq!(get(&warm.secret).await, 200);
    app.revoke(&tenant.admin_token, &revoked.token.expect("token").id)
        .await;
    let deadline = Instant::now() + Duration::from_secs(1);
    while get(&revoked.secret).await != 401 {
        assert!(Instant::now() < deadline, "the revocation never arrived");
    }

    // The authority goes away: its watch stream ends, so the cache can no longer hear of
    // revocations. Valid answers are no longer served from it (the client library's rule,
    // which is stricter than waiting out the staleness bound): 503, never a stale 200.
    let stopped = app.stop().await;
    let stopped_at = Instant::now();
    loop {
        let status = get(&warm.secret).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            stopped_at.elapsed() < Duration::from_secs(5),
            "a warm token still passed 5 s after the authority stopped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "{kind:?} answered 503 for a warm token {:?} after the authority stopped",
        stopped_at.elapsed()
    );
    // Refusals are still served from the cache, and an unknown token cannot be checked.
    assert_eq!(get(&revoked.secret).await, 401);
    assert_eq!(
        http(edge.forward_auth, "GET", "/ready", &[]).await.status,
        503
    );
    assert_eq!(get(TokenSecret::generate().expose()).await, 503);

    // Back on another port behind the same address: the edge reconnects and lets the warm
    // token through again.
    let app = TestApp::restart(stopped, |_| {}).await;
    proxy.retarget(app.addr);
    let restarted_at = Instant::now();
    while get(&warm.secret).await != 200 {
        assert!(
            restarted_at.elapsed() < Duration::from_secs(10),
            "the edge never recovered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&revoked.secret).await, 401);
    // Ready again once its watch stream is back (after the reconnection backoff).
    while http(edge.forward_auth, "GET", "/ready", &[]).await.status != 200 {
        assert!(
            restarted_at.elapsed() < Duration::from_secs(15),
            "the edge's stream never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

gateway_tests!(a_client_spraying_forged_tokens_is_held_off_without_look_ups);
async fn a_client_spraying_forged_tokens_is_held_off_without_look_ups(kind: GatewayKind) {
    // One a second with a burst of five: whatever the machine's speed, at most a few of
    // the 150 get through.
    let s = setup_with(kind, |edge| edge.invalid_tokens_per_second = 1).await;
    // Well-formed tokens no cache knows: each would cost a call to the authority.
    let mut held_off = 0;
    for _ in 0..150 {
        let forged = bearer(TokenSecret::generate().expose());
        let answer = s
            .get("/v1/orders/7", &[("authorization", forged.as_str())])
            .await;
        match answer.status {
            401 => {}
            // 429; nginx turns it into 503 (its auth_request knows only 2xx, 401 and 403).
            429 | 503 => held_off += 1,
            other => panic!("{other}: {answer:?}"),
        }
    }
    assert!(
        held_off >= 100,
        "only {held_off} of 150 forged tokens held off"
    );
    // A token the edge's cache answers costs nothing, so it is not held off, even from the
    // same address as the spray. Its first use needs the authority: wait out the penalty
    // (and the refill of a cell at one a second).
    let good = bearer(&s.token(&["orders.read"]).await.secret);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s
        .get("/v1/orders/7", &[("authorization", good.as_str())])
        .await
        .status
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "never let through");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..150 {
        let forged = bearer(TokenSecret::generate().expose());
        let _ = s
            .get("/v1/orders/7", &[("authorization", forged.as_str())])
            .await;
    }
    let answer = s
        .get("/v1/orders/7", &[("authorization", good.as_str())])
        .await;
    assert_eq!(answer.status, 200, "a cached token held off: {answer:?}");
}
