//! The client library against the real server: the caching verifier hears every kind of
//! change, resumes after restarts, flushes on resets, never caches an answer a revocation
//! has overtaken, and fails closed; the tower layer guards a service with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

use token_authority::client::{
    CachingVerifier, Identity, VerifierConfig, VerifyError, VerifyLayer,
};
use token_authority::proto::{self, VerificationCode};

use token_authority::startup::open_store;

use crate::helpers::{
    Proxy, Tenant, TestApp, heard, mask, retained_revisions, sample, test_settings,
};

const WAIT: Duration = Duration::from_secs(10);

/// A verifier for `app`, as a backend holding the tenant's admin token (which has
/// `tokens.verify`).
fn verifier(
    app: &TestApp,
    credential: &str,
    adjust: impl FnOnce(&mut VerifierConfig),
) -> CachingVerifier {
    verifier_at(app.channel_uri(), credential, adjust)
}

/// A verifier of the authority at `endpoint` (a [`Proxy`] for tests that restart it).
fn verifier_at(
    endpoint: String,
    credential: &str,
    adjust: impl FnOnce(&mut VerifierConfig),
) -> CachingVerifier {
    let mut config = VerifierConfig::new(endpoint, credential);
    config.staleness_bound = Duration::from_secs(5);
    adjust(&mut config);
    CachingVerifier::new(config).expect("a valid configuration")
}

async fn code(verifier: &CachingVerifier, token: &str, required: &[&str]) -> VerificationCode {
    verifier
        .verify(token, required)
        .await
        .expect("an answer")
        .code
}

/// The server's current revision, as seen by a fresh verification.
async fn server_revision(app: &TestApp, tenant: &Tenant) -> u64 {
    app.verify(&tenant.admin_token, &[]).await.revision
}

backend_tests!(every_invalidation_reaches_the_cache);

async fn every_invalidation_reaches_the_cache() {
    let app = TestApp::spawn().await;
    let tenant = app
        .create_tenant("Acme", &["orders.read", "orders.write"])
        .await;
    let verifier = verifier(&app, &tenant.admin_token, |_| {});
    heard(&verifier, 0).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let mut admin = app.admin(&tenant.admin_token);
    let robot = app
        .create_principal(
            &tenant.admin_token,
            &tenant.account_id,
            "robot",
            &["orders.read", "orders.write"],
        )
        .await;
    // Each case: a token cached as valid, a change, and the code it must answer afterwards.
    let fresh = |scopes: &'static [&'static str]| {
        let app = &app;
        let owner = robot.id.clone();
        let creator = tenant.admin_token.clone();
        async move { app.create_token(&creator, &owner, scopes).await }
    };

    let revoked = fresh(&[]).await;
    let disabled = fresh(&[]).await;
    let deleted = fresh(&[]).await;
    let reset = fresh(&[]).await;
    let narrowed = fresh(&["orders.read", "orders.write"]).await;
    for created in [&revoked, &disabled, &deleted, &reset, &narrowed] {
        assert_eq!(
            code(&verifier, &created.secret, &["orders.write"]).await,
            VerificationCode::Valid
        );
    }
    let id = |c: &proto::CreateTokenResponse| c.token.clone().unwrap().id;
    tokens
        .revoke_token(proto::RevokeTokenRequest {
            id: id(&revoked),
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .disable_token(proto::DisableTokenRequest {
            id: id(&disabled),
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .delete_token(proto::DeleteTokenRequest {
            id: id(&deleted),
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .reset_token(proto::ResetTokenRequest {
            id: id(&reset),
            ..Default::default()
        })
        .await
        .unwrap();
    tokens
        .update_token(proto::UpdateTokenRequest {
            token: Some(proto::Token {
                id: id(&narrowed),
                scopes: vec!["orders.read".into()],
                ..Default::default()
            }),
            update_mask: mask("scopes"),
        })
        .await
        .unwrap();
    heard(&verifier, server_revision(&app, &tenant).await).await;
    assert_eq!(
        code(&verifier, &revoked.secret, &[]).await,
        VerificationCode::Revoked
    );
    assert_eq!(
        code(&verifier, &disabled.secret, &[]).await,
        VerificationCode::Disabled
    );
    assert_eq!(
        code(&verifier, &deleted.secret, &[]).await,
        VerificationCode::NotFound
    );
    assert_eq!(
        code(&verifier, &reset.secret, &[]).await,
        VerificationCode::NotFound
    );
    assert_eq!(
        code(&verifier, &narrowed.secret, &["orders.write"]).await,
        VerificationCode::InsufficientScopes
    );

    // Enabling again: the briefly cached DISABLED answer is dropped by the event.
    tokens
        .enable_token(proto::EnableTokenRequest {
            id: id(&disabled),
            ..Default::default()
        })
        .await
        .unwrap();
    heard(&verifier, server_revision(&app, &tenant).await).await;
    assert_eq!(
        code(&verifier, &disabled.secret, &[]).await,
        VerificationCode::Valid
    );

    // The owner loses a permission, then is disabled: all of its tokens follow.
    let owner_token = fresh(&[]).await;
    assert_eq!(
        code(&verifier, &owner_token.secret, &["orders.write"]).await,
        VerificationCode::Valid
    );
    admin
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: robot.id.clone(),
                permissions: vec!["orders.read".into()],
                ..Default::default()
            }),
            update_mask: mask("permissions"),
        })
        .await
        .unwrap();
    heard(&verifier, server_revision(&app, &tenant).await).await;
    assert_eq!(
        code(&verifier, &owner_token.secret, &["orders.write"]).await,
        VerificationCode::InsufficientScopes
    );
    admin
        .update_principal(proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: robot.id.clone(),
                disabled: true,
                ..Default::default()
            }),
            update_mask: mask("disabled"),
        })
        .await
        .unwrap();
    heard(&verifier, server_revision(&app, &tenant).await).await;
    assert_eq!(
        code(&verifier, &owner_token.secret, &[]).await,
        VerificationCode::OwnerDisabled
    );

    // A reset's grace period ends: announced by the server, heard by the verifier.
    let graced = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    tokens
        .reset_token(proto::ResetTokenRequest {
            id: id(&graced),
            grace_period: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        code(&verifier, &graced.secret, &[]).await,
        VerificationCode::Valid
    );
    let reset_at = server_revision(&app, &tenant).await;
    // The cached VALID ends with the grace period by itself (answers are cached no longer
    // than the secret works), so the old secret answers EXPIRED from then on ...
    let deadline = Instant::now() + WAIT;
    while code(&verifier, &graced.secret, &[]).await == VerificationCode::Valid {
        assert!(
            Instant::now() < deadline,
            "the ended grace period never reached the verifier"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        code(&verifier, &graced.secret, &[]).await,
        VerificationCode::Expired
    );
    // ... and the server announces the end (TOKEN_SECRET_EXPIRED), which the verifier hears.
    let deadline = Instant::now() + WAIT;
    let announced = loop {
        let revision = server_revision(&app, &tenant).await;
        if revision > reset_at {
            break revision;
        }
        assert!(
            Instant::now() < deadline,
            "the grace end was never announced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    heard(&verifier, announced).await;

    // API access switched off: every token of the account, the verifier's own included.
    let operator_verifier = verifier_for_operator(&app);
    let last = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    assert_eq!(
        code(&operator_verifier, &last.secret, &[]).await,
        VerificationCode::Valid
    );
    app.operator_admin()
        .set_api_access(proto::SetApiAccessRequest {
            account_id: tenant.account_id.clone(),
            enabled: false,
        })
        .await
        .unwrap();
    heard(&operator_verifier, server_revision(&app, &tenant).await).await;
    assert_eq!(
        code(&operator_verifier, &last.secret, &[]).await,
        VerificationCode::ApiAccessDisabled
    );
}

backend_tests!(an_offered_answer_older_than_what_the_verifier_remembers_is_refused);

async fn an_offered_answer_older_than_what_the_verifier_remembers_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    // Answers (and so the watermarks that check them) are kept for 300 ms.
    let verifier = verifier(&app, &tenant.admin_token, |config| {
        config.valid_ttl = Duration::from_millis(300);
        config.invalid_ttl = Duration::from_millis(300);
    });
    heard(&verifier, 0).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let old_answer = app
        .tokens(&tenant.admin_token)
        .verify_token(proto::VerifyTokenRequest {
            token: created.secret.clone(),
            required_scopes: vec![],
            min_revision: 0,
            client_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(old_answer.valid);
    app.revoke(&tenant.admin_token, &created.token.clone().unwrap().id)
        .await;
    heard(&verifier, server_revision(&app, &tenant).await).await;
    // Long after, the revocation's watermark is forgotten (the next event prunes it) ...
    tokio::time::sleep(Duration::from_millis(400)).await;
    let other = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    app.disable(&tenant.admin_token, &other.token.unwrap().id)
        .await;
    heard(&verifier, server_revision(&app, &tenant).await).await;
    // ... and the answer from before it, of unknown age to the verifier, is refused: once it
    // was cached and answered VALID for a revoked token.
    assert!(!verifier.offer(&created.secret, old_answer));
    assert_eq!(
        code(&verifier, &created.secret, &[]).await,
        VerificationCode::Revoked
    );
}

/// A verifier of `tenant` that trusts its cache for 800 ms without hearing from the
/// authority, and stays disconnected for a while once its stream drops.
fn verifier_with_bound(app: &TestApp, tenant: &Tenant) -> CachingVerifier {
    verifier(app, &tenant.admin_token, |config| {
        config.staleness_bound = Duration::from_millis(800);
        config.reconnect_backoff = (Duration::from_secs(6), Duration::from_secs(6));
    })
}

fn verifier_for_operator(app: &TestApp) -> CachingVerifier {
    verifier(app, &app.bootstrap_token, |_| {})
}

backend_tests!(an_answer_overtaken_by_a_revocation_is_never_cached);

async fn an_answer_overtaken_by_a_revocation_is_never_cached() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let verifier = verifier(&app, &tenant.admin_token, |_| {});
    heard(&verifier, 0).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;

    // 1. A VerifyToken call is answered (valid, at revision R) ...
    let in_flight = app
        .tokens(&tenant.admin_token)
        .verify_token(proto::VerifyTokenRequest {
            token: created.secret.clone(),
            required_scopes: vec![],
            min_revision: 0,
            client_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(in_flight.valid);
    // 2. ... the token is revoked and the verifier hears of it ...
    app.revoke(&tenant.admin_token, &created.token.clone().unwrap().id)
        .await;
    let revoked_at = server_revision(&app, &tenant).await;
    assert!(revoked_at > in_flight.revision);
    heard(&verifier, revoked_at).await;
    // 3. ... before the answer reaches the cache: it is refused, and nothing stale remains.
    assert!(
        !verifier.offer(&created.secret, in_flight.clone()),
        "the overtaken answer must not be cached"
    );
    assert_eq!(
        code(&verifier, &created.secret, &[]).await,
        VerificationCode::Revoked
    );

    // Control: an answer computed after the revocation is cached.
    let current = app
        .tokens(&tenant.admin_token)
        .verify_token(proto::VerifyTokenRequest {
            token: created.secret.clone(),
            required_scopes: vec![],
            min_revision: 0,
            client_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verifier.offer(&created.secret, current));
}

backend_tests!(the_cache_fails_closed_as_soon_as_its_stream_is_lost);

// Issue 21: a stream loss the verifier knew of (the authority shut down, the connection
// cut) left its cache trusted until the staleness bound, serving VALID for tokens revoked
// meanwhile.
async fn the_cache_fails_closed_as_soon_as_its_stream_is_lost() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let proxy = Proxy::to(app.addr).await;
    let verifier = verifier_at(proxy.uri(), &tenant.admin_token, |config| {
        config.staleness_bound = Duration::from_secs(60);
        // Stay disconnected for a while after the stream drops.
        config.reconnect_backoff = (Duration::from_secs(6), Duration::from_secs(6));
    });
    heard(&verifier, 0).await;
    assert_eq!(
        code(&verifier, &created.secret, &[]).await,
        VerificationCode::Valid
    );

    // The authority goes away: well within the staleness bound, the cache stops serving
    // valid answers the moment the stream ends; with nobody to ask, it fails closed.
    let stopped = app.stop().await;
    let deadline = Instant::now() + WAIT;
    while verifier.is_fresh() {
        assert!(Instant::now() < deadline, "the loss was never noticed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let error = verifier
        .verify(&created.secret, &[])
        .await
        .expect_err("fails closed");
    assert!(matches!(error, VerifyError::Unavailable(_)), "{error:?}");

    // Back up, but the verifier's stream is not (yet): every call is remote, so a
    // revocation made meanwhile is seen although no event was heard.
    let app = TestApp::restart(stopped, |_| {}).await;
    proxy.retarget(app.addr);
    app.revoke(&tenant.admin_token, &created.token.clone().unwrap().id)
        .await;
    assert!(!verifier.is_fresh());
    assert_eq!(
        code(&verifier, &created.secret, &[]).await,
        VerificationCode::Revoked
    );
    // A refusal stays right while the stream is down: the next one comes from memory.
    assert_eq!(
        code(&verifier, &created.secret, &[]).await,
        VerificationCode::Revoked
    );
    // Malformed tokens are still refused locally.
    assert_eq!(
        code(&verifier, "not a token", &[]).await,
        VerificationCode::Malformed
    );
}

backend_tests!(a_reset_flushes_answers_whose_events_were_pruned_while_disconnected);

async fn a_reset_flushes_answers_whose_events_were_pruned_while_disconnected() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let kept = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let missed = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let proxy = Proxy::to(app.addr).await;
    let verifier = verifier_at(proxy.uri(), &tenant.admin_token, |config| {
        config.staleness_bound = Duration::from_secs(60);
        config.reconnect_backoff = (Duration::from_millis(100), Duration::from_millis(200));
    });
    heard(&verifier, server_revision(&app, &tenant).await).await;
    assert_eq!(
        code(&verifier, &kept.secret, &[]).await,
        VerificationCode::Valid
    );
    assert_eq!(
        code(&verifier, &missed.secret, &[]).await,
        VerificationCode::Valid
    );

    // The authority restarts where the verifier cannot reach it (the proxy still points at
    // the old address). Meanwhile a token is revoked, and the log is pruned behind a newer
    // event, so the revocation can never be delivered as an event.
    let stopped = app.stop().await;
    let app = TestApp::restart(stopped, |_| {}).await;
    let revoked_at = {
        let mut tokens = app.tokens(&tenant.admin_token);
        tokens
            .revoke_token(proto::RevokeTokenRequest {
                id: missed.token.clone().unwrap().id,
                ..Default::default()
            })
            .await
            .unwrap();
        let revoked_at = server_revision(&app, &tenant).await;
        tokens
            .disable_token(proto::DisableTokenRequest {
                id: kept.token.clone().unwrap().id,
                ..Default::default()
            })
            .await
            .unwrap();
        tokens
            .enable_token(proto::EnableTokenRequest {
                id: kept.token.clone().unwrap().id,
                ..Default::default()
            })
            .await
            .unwrap();
        revoked_at
    };
    let store = open_store(&test_settings(&app.database_url), false)
        .await
        .unwrap();
    store
        .prune_events(chrono::Utc::now() + chrono::Duration::minutes(1))
        .await
        .unwrap();
    let retained = retained_revisions(&app.database_url).await;
    assert_eq!(
        retained.len(),
        1,
        "only the newest event is kept: {retained:?}"
    );
    assert!(retained[0] > i64::try_from(revoked_at).unwrap());
    // The verifier, disconnected, knows its stream is lost: it serves no valid answer from
    // its cache, and with the authority out of reach it fails closed ...
    let error = verifier
        .verify(&missed.secret, &[])
        .await
        .expect_err("fails closed");
    assert!(matches!(error, VerifyError::Unavailable(_)), "{error:?}");
    // ... until it reconnects: its resume point is behind the retained log, so the
    // authority sends a reset, and the reset flushes the cache.
    proxy.retarget(app.addr);
    heard(&verifier, server_revision(&app, &tenant).await).await;
    assert_eq!(
        code(&verifier, &missed.secret, &[]).await,
        VerificationCode::Revoked
    );
    assert_eq!(
        code(&verifier, &kept.secret, &[]).await,
        VerificationCode::Valid
    );
}

backend_tests!(a_tenant_verifier_sees_only_its_own_account);

async fn a_tenant_verifier_sees_only_its_own_account() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", &[]).await;
    let globex = app.create_tenant("Globex", &[]).await;
    let theirs = app
        .create_token(&globex.admin_token, &globex.admin_id, &[])
        .await;
    let verifier = verifier(&app, &acme.admin_token, |_| {});
    heard(&verifier, 0).await;
    assert_eq!(
        code(&verifier, &theirs.secret, &[]).await,
        VerificationCode::NotFound
    );
    let refused = CachingVerifier::new(VerifierConfig::new(
        app.channel_uri(),
        "tka_not-a-real-token",
    ))
    .unwrap()
    .verify(&theirs.secret, &[])
    .await
    .expect_err("a verifier without a valid credential gets no answers");
    assert!(
        matches!(refused, VerifyError::Refused(ref s) if s.code() == Code::Unauthenticated),
        "{refused:?}"
    );
}

backend_tests!(the_layer_guards_a_service_and_hands_it_the_identity);

async fn the_layer_guards_a_service_and_hands_it_the_identity() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &["orders.read"]).await;
    let reader = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["orders.read"])
        .await;
    let weak = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &["tokens.read"])
        .await;
    let verifier = verifier_with_bound(&app, &tenant);
    heard(&verifier, 0).await;
    let probe = verifier.clone();
    // The protected service answers with the token id it was handed.
    let inner = tower::service_fn(|request: http::Request<tonic::body::Body>| async move {
        let identity = request.extensions().get::<Arc<Identity>>().cloned();
        let mut response = http::Response::new(tonic::body::Body::empty());
        if let Some(identity) = identity {
            response
                .headers_mut()
                .insert("x-token-id", identity.token_id.parse().unwrap());
        }
        Ok::<_, std::convert::Infallible>(response)
    });
    let mut service = VerifyLayer::new(verifier, &["orders.read"])
        .allow_unauthenticated("/grpc.health.v1.Health/")
        .layer(inner);
    let call = |path: &str, auth: Option<String>| {
        let mut builder = http::Request::builder().uri(format!("http://backend{path}"));
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(tonic::body::Body::empty()).unwrap()
    };
    let grpc_status = |response: &http::Response<tonic::body::Body>| {
        tonic::Status::from_header_map(response.headers()).map(|s| s.code())
    };

    let ok = service
        .call(call(
            "/orders.v1.Orders/List",
            Some(format!("Bearer {}", reader.secret)),
        ))
        .await
        .unwrap();
    assert_eq!(
        ok.headers()["x-token-id"],
        reader.token.clone().unwrap().id.as_str()
    );
    let none = service
        .call(call("/orders.v1.Orders/List", None))
        .await
        .unwrap();
    assert_eq!(grpc_status(&none), Some(Code::Unauthenticated));
    let basic = service
        .call(call(
            "/orders.v1.Orders/List",
            Some(format!("Basic {}", reader.secret)),
        ))
        .await
        .unwrap();
    assert_eq!(grpc_status(&basic), Some(Code::Unauthenticated));
    let garbage = service
        .call(call("/orders.v1.Orders/List", Some("Bearer nope".into())))
        .await
        .unwrap();
    assert_eq!(grpc_status(&garbage), Some(Code::Unauthenticated));
    let lacking = service
        .call(call(
            "/orders.v1.Orders/List",
            Some(format!("Bearer {}", weak.secret)),
        ))
        .await
        .unwrap();
    assert_eq!(grpc_status(&lacking), Some(Code::PermissionDenied));
    let health = service
        .call(call("/grpc.health.v1.Health/Check", None))
        .await
        .unwrap();
    assert_eq!(
        grpc_status(&health),
        None,
        "open paths pass without a token"
    );
    // The authority goes away. Once the verifier is stale, even a caller whose answer is
    // cached gets UNAVAILABLE (fail closed), not the cached answer.
    let _ = app.stop().await;
    let deadline = Instant::now() + WAIT;
    while probe.is_fresh() {
        assert!(Instant::now() < deadline, "the verifier never went stale");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = service
        .call(call(
            "/orders.v1.Orders/List",
            Some(format!("Bearer {}", reader.secret)),
        ))
        .await
        .unwrap();
    assert_eq!(grpc_status(&down), Some(Code::Unavailable));
}

#[tokio::test]
async fn a_verifier_speaks_tls_to_https_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (cert_path, key_path) = (cert.clone(), key.clone());
    let app = TestApp::spawn_with(move |settings| {
        settings.tls_cert = Some(cert_path);
        settings.tls_key = Some(key_path);
    })
    .await;
    let mut config = VerifierConfig::new(
        format!("https://localhost:{}", app.addr.port()),
        app.bootstrap_token.clone(),
    );
    config.ca_certificate = Some(certified.cert.pem().into_bytes());
    let verifier = CachingVerifier::new(config).unwrap();
    heard(&verifier, 0).await;
    assert_eq!(
        code(&verifier, &app.bootstrap_token, &[]).await,
        VerificationCode::Valid
    );
}

// A backend exports the verifier's metrics with its own recorder: here a Prometheus one,
// made current while the verifier registers its series (a global recorder would mix in the
// other tests' verifiers).
#[tokio::test]
async fn the_verifier_records_hits_misses_remote_calls_and_staleness() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let created = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let verifier = metrics::with_local_recorder(&recorder, || {
        verifier(&app, &tenant.admin_token, |config| {
            config.staleness_bound = Duration::from_millis(500);
            config.reconnect_backoff = (Duration::from_millis(50), Duration::from_millis(50));
        })
    });
    heard(&verifier, 0).await;
    let lookups = "token_authority_client_cache_lookups_total";
    let remote = "token_authority_client_remote_verifications_total";
    for _ in 0..3 {
        assert_eq!(
            code(&verifier, &created.secret, &[]).await,
            VerificationCode::Valid
        );
    }
    code(&verifier, "not a token", &[]).await;
    assert_eq!(sample(&recorder, lookups, Some(("result", "miss"))), 1.0);
    assert_eq!(sample(&recorder, lookups, Some(("result", "hit"))), 2.0);
    assert_eq!(
        sample(&recorder, remote, Some(("outcome", "answered"))),
        1.0
    );
    let malformed = "token_authority_client_malformed_total";
    assert_eq!(sample(&recorder, malformed, None), 1.0);
    assert_eq!(
        sample(&recorder, "token_authority_client_reconnects_total", None),
        0.0
    );

    // The authority goes away: the stream reconnects (and fails), the cache goes stale, and
    // the verification fails closed.
    let _stopped = app.stop().await;
    let deadline = Instant::now() + WAIT;
    while verifier.is_fresh() {
        assert!(Instant::now() < deadline, "the verifier never went stale");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = verifier.verify(&created.secret, &[]).await.unwrap_err();
    assert!(matches!(error, VerifyError::Unavailable(_)), "{error:?}");
    assert_eq!(sample(&recorder, lookups, Some(("result", "stale"))), 1.0);
    assert_eq!(
        sample(&recorder, remote, Some(("outcome", "unavailable"))),
        1.0
    );
    let reconnects = "token_authority_client_reconnects_total";
    while sample(&recorder, reconnects, None) < 1.0 {
        assert!(Instant::now() < deadline, "the stream never reconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Sampled every second: a sample taken after the bound passed shows it.
    let staleness = "token_authority_client_staleness_seconds";
    while sample(&recorder, staleness, None) <= 0.5 {
        assert!(Instant::now() < deadline, "the staleness gauge never grew");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
