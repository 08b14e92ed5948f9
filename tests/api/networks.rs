//! Client-address allowlists: a token that lists networks verifies only from them, through
//! VerifyToken, as a credential of the authority itself, through the client library's cache
//! and behind its tower layer (with and without trusted proxies).

use std::time::Duration;

use tonic::Code;
use tonic::metadata::MetadataValue;

use token_authority::client::{
    CachingVerifier, Requirements, TrustedProxies, VerifierConfig, VerifyLayer,
};
use token_authority::proto::{self, VerificationCode};

use crate::helpers::{TestApp, Watched, assert_code, code_of, masks, read_until};

/// Creates a token for the tenant's admin that may be used from `networks` only.
async fn allowlisted(
    app: &TestApp,
    admin_token: &str,
    networks: &[&str],
) -> proto::CreateTokenResponse {
    app.tokens(admin_token)
        .create_token(proto::CreateTokenRequest {
            name: "allowlisted".into(),
            allowed_networks: networks.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .expect("token created")
        .into_inner()
}

/// VerifyToken as the operator, from `client`.
async fn verify_from(app: &TestApp, token: &str, client: &str) -> proto::VerifyTokenResponse {
    app.operator_tokens()
        .verify_token(proto::VerifyTokenRequest {
            token: token.to_owned(),
            client_address: client.to_owned(),
            ..Default::default()
        })
        .await
        .expect("VerifyToken answers")
        .into_inner()
}

backend_tests!(an_allowlisted_token_verifies_only_from_its_networks);

async fn an_allowlisted_token_verifies_only_from_its_networks() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let created = allowlisted(
        &app,
        &acme.admin_token,
        &["2001:db8::/32", "10.0.0.0/8", "192.0.2.7"],
    )
    .await;
    let token = created.token.clone().unwrap();
    assert_eq!(
        token.allowed_networks,
        ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"],
        "sorted, canonical"
    );
    let secret = &created.secret;
    for inside in ["10.1.2.3", "::ffff:10.1.2.3", "192.0.2.7", "2001:db8:5::1"] {
        let answer = verify_from(&app, secret, inside).await;
        assert_eq!(code_of(&answer), VerificationCode::Valid, "{inside}");
        assert_eq!(answer.allowed_networks, token.allowed_networks);
    }
    for outside in ["11.0.0.1", "192.0.2.8", "2001:db9::1", ""] {
        let answer = verify_from(&app, secret, outside).await;
        assert_eq!(
            code_of(&answer),
            VerificationCode::AddressNotAllowed,
            "{outside:?}"
        );
        assert!(!answer.valid);
        // Good but for the address: the identity comes along, for caches.
        assert_eq!(answer.token_id, token.id);
        assert_eq!(answer.allowed_networks, token.allowed_networks);
    }
    // A token without a list is unaffected by the address, or its absence.
    assert!(app.verify(&acme.admin_token, &[]).await.valid);
    // A bad address is the caller's mistake.
    let status = assert_code(
        app.operator_tokens()
            .verify_token(proto::VerifyTokenRequest {
                token: secret.clone(),
                client_address: "10.0.0.1:80".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().starts_with("client_address"), "{status:?}");
    // Another account's verifier learns nothing of the list.
    let globex = app.create_tenant("globex", &[]).await;
    let foreign = app
        .tokens(&globex.admin_token)
        .verify_token(proto::VerifyTokenRequest {
            token: secret.clone(),
            client_address: "10.1.2.3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_of(&foreign), VerificationCode::NotFound);
    assert!(foreign.allowed_networks.is_empty() && foreign.token_id.is_empty());

    // Duplicate copies the list; reset keeps it.
    let mut tokens = app.tokens(&acme.admin_token);
    let copy = tokens
        .duplicate_token(proto::DuplicateTokenRequest {
            id: token.id.clone(),
            name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(copy.token.unwrap().allowed_networks, token.allowed_networks);
    let reset = tokens
        .reset_token(proto::ResetTokenRequest {
            id: token.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reset.token.unwrap().allowed_networks,
        token.allowed_networks
    );
    let secret = reset.secret;
    assert_eq!(
        code_of(&verify_from(&app, &secret, "").await),
        VerificationCode::AddressNotAllowed
    );

    // Update replaces the list (watchers hear of it), and an empty list lifts it.
    let mut stream = app.watch_from_now(&acme.admin_token, "").await.unwrap();
    let update = |networks: &[&str]| proto::UpdateTokenRequest {
        token: Some(proto::Token {
            id: token.id.clone(),
            allowed_networks: networks.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        }),
        update_mask: masks(&["allowed_networks"]),
    };
    let updated = tokens
        .update_token(update(&["198.51.100.0/24"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.token.unwrap().allowed_networks, ["198.51.100.0/24"]);
    let mut watched = Watched::default();
    read_until(&mut stream, &mut watched, Duration::from_secs(10), |w| {
        !w.events.is_empty()
    })
    .await
    .expect("the watch stream delivered what the test waits for");
    assert_eq!(watched.types(), [proto::InvalidationType::TokenUpdated]);
    assert_eq!(
        code_of(&verify_from(&app, &secret, "10.1.2.3").await),
        VerificationCode::AddressNotAllowed
    );
    assert!(verify_from(&app, &secret, "198.51.100.9").await.valid);
    tokens.update_token(update(&[])).await.unwrap();
    assert!(verify_from(&app, &secret, "").await.valid);
    let audit = app
        .admin(&acme.admin_token)
        .list_audit_events(proto::ListAuditEventsRequest {
            action: "token.update".into(),
            target_id: token.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        audit
            .iter()
            .all(|e| e.details["fields"] == "allowed_networks")
    );
    assert_eq!(audit.len(), 2);
}

// Refused before any storage is read: one backend is enough.
#[tokio::test]
async fn malformed_networks_are_refused_naming_the_entry() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let mut tokens = app.tokens(&acme.admin_token);
    let too_many: Vec<String> = (0..65).map(|i| format!("10.0.{i}.0/24")).collect();
    for (networks, field) in [
        (
            vec!["10.0.0.0/8".to_owned(), "10.0.0.0/33".to_owned()],
            "allowed_networks[1]",
        ),
        (vec!["10.1.2.3/8".to_owned()], "allowed_networks[0]"),
        (vec!["example.com".to_owned()], "allowed_networks[0]"),
        (too_many, "allowed_networks"),
    ] {
        let status = assert_code(
            tokens
                .create_token(proto::CreateTokenRequest {
                    name: "x".into(),
                    allowed_networks: networks,
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
        );
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    let token = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await
        .token
        .unwrap();
    let status = assert_code(
        tokens
            .update_token(proto::UpdateTokenRequest {
                token: Some(proto::Token {
                    id: token.id.clone(),
                    allowed_networks: vec!["10.0.0.0/8".into(), "nope".into()],
                    ..Default::default()
                }),
                update_mask: masks(&["allowed_networks"]),
            })
            .await,
        Code::InvalidArgument,
    );
    assert!(
        status.message().starts_with("token.allowed_networks[1]"),
        "{status:?}"
    );
    // Nothing changed.
    let stored = app.get_token(&acme.admin_token, &token.id).await;
    assert!(stored.allowed_networks.is_empty());
    assert_eq!(stored.etag, token.etag);
}

backend_tests!(an_allowlisted_credential_calls_the_authority_only_from_its_networks);

async fn an_allowlisted_credential_calls_the_authority_only_from_its_networks() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    // The tests connect from loopback.
    let local = allowlisted(&app, &acme.admin_token, &["127.0.0.0/8", "::1"]).await;
    let remote = allowlisted(&app, &acme.admin_token, &["203.0.113.0/24"]).await;
    assert!(
        app.tokens(&local.secret)
            .list_tokens(proto::ListTokensRequest::default())
            .await
            .is_ok()
    );
    let status = assert_code(
        app.tokens(&remote.secret)
            .list_tokens(proto::ListTokensRequest::default())
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("address"), "{status:?}");
}

backend_tests!(an_allowlisted_credential_hands_out_no_secret_usable_elsewhere);

// Regression (review): a stolen token limited to one network, holding tokens.create or
// tokens.update, could mint or widen a secret usable from anywhere.
async fn an_allowlisted_credential_hands_out_no_secret_usable_elsewhere() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    // The tests connect from loopback, inside the credential's list.
    let local = allowlisted(&app, &acme.admin_token, &["127.0.0.0/8"]).await;
    let local_id = local.token.as_ref().unwrap().id.clone();
    let unrestricted = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await
        .token
        .unwrap()
        .id;
    let mut tokens = app.tokens(&local.secret);
    let create = |networks: &[&str]| proto::CreateTokenRequest {
        name: "minted".into(),
        allowed_networks: networks.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    };
    for wider in [
        &[][..],
        &["10.0.0.0/8"],
        &["127.0.0.1", "192.0.2.1"],
        &["0.0.0.0/0"],
    ] {
        let status = assert_code(
            tokens.create_token(create(wider)).await,
            Code::PermissionDenied,
        );
        assert!(status.message().contains("127.0.0.0/8"), "{status:?}");
    }
    tokens
        .create_token(create(&["127.0.0.1"]))
        .await
        .expect("a list within the credential's");
    let set_list = |networks: &[&str]| proto::UpdateTokenRequest {
        token: Some(proto::Token {
            id: local_id.clone(),
            allowed_networks: networks.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        }),
        update_mask: masks(&["allowed_networks"]),
    };
    let refusals = [
        tokens.update_token(set_list(&[])).await.map(|_| ()),
        tokens
            .duplicate_token(proto::DuplicateTokenRequest {
                id: unrestricted.clone(),
                name: String::new(),
            })
            .await
            .map(|_| ()),
        tokens
            .reset_token(proto::ResetTokenRequest {
                id: unrestricted.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    ];
    for refused in refusals {
        let status = assert_code(refused, Code::PermissionDenied);
        assert!(status.message().contains("127.0.0.0/8"), "{status:?}");
    }
    // Its own kind of secret it may still copy, narrow and renew.
    tokens
        .duplicate_token(proto::DuplicateTokenRequest {
            id: local_id.clone(),
            name: String::new(),
        })
        .await
        .expect("a copy with the same list");
    tokens
        .update_token(set_list(&["127.0.0.0/16"]))
        .await
        .expect("a narrower list");
    let renewed = tokens
        .reset_token(proto::ResetTokenRequest {
            id: local_id.clone(),
            ..Default::default()
        })
        .await
        .expect("its own token, within its list")
        .into_inner();
    assert_eq!(
        renewed.token.unwrap().allowed_networks,
        ["127.0.0.0/16"],
        "kept by the reset"
    );
}

backend_tests!(an_allowlisted_credential_revives_no_power_usable_elsewhere);

// Regression (issue 20): a credential limited to networks could enable a disabled
// unrestricted token (whose secret a thief kept), give it a longer life, or give a principal
// (and so its unrestricted tokens) permissions back.
async fn an_allowlisted_credential_revives_no_power_usable_elsewhere() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &["orders.read"]).await;
    let local = allowlisted(&app, &acme.admin_token, &["127.0.0.0/8"]).await;
    let mut tokens = app.tokens(&local.secret);
    let mut admin = app.admin(&local.secret);
    let unrestricted = app
        .create_token(&acme.admin_token, &acme.admin_id, &[])
        .await;
    let unrestricted_id = unrestricted.token.as_ref().unwrap().id.clone();
    app.disable(&acme.admin_token, &unrestricted_id).await;
    let refused = |result: Result<(), tonic::Status>, what: &str| {
        let status = assert_code(result, Code::PermissionDenied);
        assert!(status.message().contains("networks"), "{what}: {status:?}");
    };
    refused(
        tokens
            .enable_token(proto::EnableTokenRequest {
                id: unrestricted_id.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        "enable",
    );
    let expiring = |id: &str, seconds: u64| proto::UpdateTokenRequest {
        token: Some(proto::Token {
            id: id.to_owned(),
            expire_time: Some((std::time::SystemTime::now() + Duration::from_secs(seconds)).into()),
            ..Default::default()
        }),
        update_mask: masks(&["expire_time"]),
    };
    let short = app
        .tokens(&acme.admin_token)
        .create_token(proto::CreateTokenRequest {
            name: "short".into(),
            expiry: Some(proto::create_token_request::Expiry::Ttl(
                prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let short_id = short.token.as_ref().unwrap().id.clone();
    refused(
        tokens
            .update_token(expiring(&short_id, 7200))
            .await
            .map(|_| ()),
        "a longer life",
    );
    tokens
        .update_token(expiring(&short_id, 600))
        .await
        .expect("a shorter life takes power away");
    // A principal: no permissions given back, no re-enabling; taking away is fine.
    let worker = app
        .create_principal(
            &acme.admin_token,
            &acme.account_id,
            "worker",
            &["orders.read"],
        )
        .await;
    let update = |permissions: Option<&[&str]>, disabled: Option<bool>| {
        let mut mask = Vec::new();
        if permissions.is_some() {
            mask.push("permissions");
        }
        if disabled.is_some() {
            mask.push("disabled");
        }
        proto::UpdatePrincipalRequest {
            principal: Some(proto::Principal {
                id: worker.id.clone(),
                permissions: permissions
                    .unwrap_or_default()
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
                disabled: disabled.unwrap_or_default(),
                ..Default::default()
            }),
            update_mask: masks(&mask),
        }
    };
    admin
        .update_principal(update(Some(&[]), None))
        .await
        .expect("permissions taken away");
    refused(
        admin
            .update_principal(update(Some(&["orders.read"]), None))
            .await
            .map(|_| ()),
        "permissions given back",
    );
    admin
        .update_principal(update(None, Some(true)))
        .await
        .expect("disabled");
    refused(
        admin
            .update_principal(update(None, Some(false)))
            .await
            .map(|_| ()),
        "re-enabled",
    );
    // A token within the credential's list it may still switch back on.
    let inside = allowlisted(&app, &acme.admin_token, &["127.0.0.1/32"]).await;
    let inside_id = inside.token.as_ref().unwrap().id.clone();
    app.disable(&acme.admin_token, &inside_id).await;
    tokens
        .enable_token(proto::EnableTokenRequest {
            id: inside_id,
            ..Default::default()
        })
        .await
        .expect("enabled within its list");
}

/// Serves the health service behind a [`VerifyLayer`] that requires a token (and, with
/// `trusted`, believes X-Forwarded-For from those proxies); returns its address.
async fn layered_backend(app: &TestApp, trusted: &[&str]) -> String {
    let verifier = CachingVerifier::new(VerifierConfig::new(
        app.channel_uri(),
        app.bootstrap_token.clone(),
    ))
    .unwrap();
    let (_, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer =
        VerifyLayer::new(verifier, &[]).trust_proxies(TrustedProxies::parse(trusted).unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

/// A health check through the layer with `token`, as if forwarded for `forwarded_for`.
async fn check(backend: &str, token: &str, forwarded_for: Option<&str>) -> Result<(), Code> {
    let channel = tonic::transport::Channel::from_shared(backend.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest::default());
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    if let Some(address) = forwarded_for {
        request
            .metadata_mut()
            .insert("x-forwarded-for", address.parse().unwrap());
    }
    client.check(request).await.map(drop).map_err(|s| s.code())
}

#[tokio::test]
async fn the_layer_checks_the_peer_or_what_trusted_proxies_forwarded() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("acme", &[]).await;
    let loopback = allowlisted(&app, &acme.admin_token, &["127.0.0.0/8"])
        .await
        .secret;
    let office = allowlisted(&app, &acme.admin_token, &["198.51.100.0/24"])
        .await
        .secret;

    // No trusted proxies: the peer (loopback) is the client, whatever the header claims.
    let direct = layered_backend(&app, &[]).await;
    assert_eq!(
        check(&direct, &loopback, Some("198.51.100.7")).await,
        Ok(())
    );
    assert_eq!(
        check(&direct, &office, Some("198.51.100.7")).await,
        Err(Code::Unauthenticated),
        "a forged header is not believed"
    );
    assert_eq!(check(&direct, &acme.admin_token, None).await, Ok(()));

    // Loopback is a trusted proxy: the forwarded client counts.
    let proxied = layered_backend(&app, &["127.0.0.0/8"]).await;
    assert_eq!(check(&proxied, &office, Some("198.51.100.7")).await, Ok(()));
    assert_eq!(
        check(&proxied, &loopback, Some("198.51.100.7")).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(
        check(&proxied, &office, Some("not an address")).await,
        Err(Code::Unauthenticated),
        "unreadable: unknown, refused"
    );
    assert_eq!(
        check(&proxied, &office, Some("203.0.113.1")).await,
        Err(Code::Unauthenticated)
    );

    // The client library's own call, for any address, from one cached answer: one remote
    // verification, then cache hits only (counted by the verifier's own metrics, with a
    // recorder of this test's).
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let verifier = metrics::with_local_recorder(&recorder, || {
        CachingVerifier::new(VerifierConfig::new(
            app.channel_uri(),
            app.bootstrap_token.clone(),
        ))
    })
    .unwrap();
    crate::helpers::heard(&verifier, 0).await;
    let from = |address: &str| Requirements {
        client_address: Some(address.parse().unwrap()),
        ..Requirements::default()
    };
    let inside = verifier
        .verify_with(&office, &from("198.51.100.9"))
        .await
        .unwrap();
    assert!(inside.is_valid());
    let identity = inside.identity.unwrap();
    assert_eq!(identity.allowed_networks, ["198.51.100.0/24"]);
    let outside = verifier
        .verify_with(&office, &from("192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(outside.code, VerificationCode::AddressNotAllowed);
    assert_eq!(
        verifier.verify(&office, &[]).await.unwrap().code,
        VerificationCode::AddressNotAllowed,
        "an unknown address is refused"
    );
    let remote = "token_authority_client_remote_verifications_total";
    let lookups = "token_authority_client_cache_lookups_total";
    use crate::helpers::sample;
    assert_eq!(
        sample(&recorder, remote, Some(("outcome", "answered"))),
        1.0
    );
    assert_eq!(sample(&recorder, lookups, Some(("result", "hit"))), 2.0);
}
