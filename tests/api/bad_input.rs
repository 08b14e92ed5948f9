//! Bad input gets a clear INVALID_ARGUMENT (or NOT_FOUND for unknown ids) and changes
//! nothing.

use std::collections::HashMap;

use prost_types::{Duration, FieldMask, Timestamp};
use tonic::Code;

use token_authority::domain::TokenId;
use token_authority::proto::{self, PrincipalKind};

use crate::helpers::{TestApp, assert_code};

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn named(name: &str) -> proto::CreateTokenRequest {
    proto::CreateTokenRequest {
        name: name.to_owned(),
        ..Default::default()
    }
}

backend_tests!(invalid_token_fields_are_refused_naming_the_field);

async fn invalid_token_fields_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let past = Timestamp {
        seconds: now_seconds() - 60,
        nanos: 0,
    };
    let cases: Vec<(&str, proto::CreateTokenRequest)> = vec![
        ("name", named("")),
        ("name", named("   ")),
        ("name", named(&"n".repeat(201))),
        ("name", named("line\nbreak")),
        (
            "description",
            proto::CreateTokenRequest {
                description: "d".repeat(1001),
                ..named("ok")
            },
        ),
        (
            "scopes[0]",
            proto::CreateTokenRequest {
                scopes: vec!["NOT A SCOPE".into()],
                ..named("ok")
            },
        ),
        (
            "scopes[1]",
            proto::CreateTokenRequest {
                scopes: vec!["tokens.read".into(), "".into()],
                ..named("ok")
            },
        ),
        (
            "labels",
            proto::CreateTokenRequest {
                labels: HashMap::from([("Bad Key".into(), "v".into())]),
                ..named("ok")
            },
        ),
        (
            "labels[k]",
            proto::CreateTokenRequest {
                labels: HashMap::from([("k".into(), "v".repeat(257))]),
                ..named("ok")
            },
        ),
        (
            "labels",
            proto::CreateTokenRequest {
                labels: (0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect(),
                ..named("ok")
            },
        ),
        (
            "api_version",
            proto::CreateTokenRequest {
                api_version: "v".repeat(65),
                ..named("ok")
            },
        ),
        (
            "expire_time",
            proto::CreateTokenRequest {
                expiry: Some(proto::create_token_request::Expiry::ExpireTime(past)),
                ..named("ok")
            },
        ),
        (
            "ttl",
            proto::CreateTokenRequest {
                expiry: Some(proto::create_token_request::Expiry::Ttl(Duration {
                    seconds: -5,
                    nanos: 0,
                })),
                ..named("ok")
            },
        ),
        (
            "ttl",
            proto::CreateTokenRequest {
                expiry: Some(proto::create_token_request::Expiry::Ttl(Duration {
                    seconds: i64::MAX,
                    nanos: 0,
                })),
                ..named("ok")
            },
        ),
        (
            "owner_id",
            proto::CreateTokenRequest {
                owner_id: "not-an-id".into(),
                ..named("ok")
            },
        ),
    ];
    for (field, request) in cases {
        let status = assert_code(tokens.create_token(request).await, Code::InvalidArgument);
        assert!(
            status.message().starts_with(field),
            "expected the message to name {field}: {status:?}"
        );
    }
    let listed = tokens
        .list_tokens(proto::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(
        listed.len(),
        1,
        "only the admin's own token exists: nothing was created"
    );
}

backend_tests!(unknown_and_malformed_ids);

async fn unknown_and_malformed_ids() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let unknown = TokenId::generate().to_string();
    assert_code(
        tokens
            .get_token(proto::GetTokenRequest {
                id: unknown.clone(),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        tokens
            .revoke_token(proto::RevokeTokenRequest {
                id: unknown.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    for malformed in [
        "",
        "tok_",
        "acc_AAAAAAAAAAAAAAAAAAAAAA",
        "tok_../../etc/passwd",
        "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let status = assert_code(
            tokens
                .get_token(proto::GetTokenRequest {
                    id: malformed.into(),
                })
                .await,
            Code::InvalidArgument,
        );
        assert!(status.message().starts_with("id"), "{status:?}");
    }
    let mut admin = app.admin(&tenant.admin_token);
    assert_code(
        admin
            .get_principal(proto::GetPrincipalRequest { id: "prn_x".into() })
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        admin
            .get_principal(proto::GetPrincipalRequest {
                id: token_authority::domain::PrincipalId::generate().to_string(),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        tokens
            .list_tokens(proto::ListTokensRequest {
                owner_id: "bogus".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
}

backend_tests!(tampered_and_misused_page_tokens_are_refused);

async fn tampered_and_misused_page_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    for _ in 0..3 {
        app.create_token(&tenant.admin_token, &tenant.admin_id, &[])
            .await;
    }
    let mut tokens = app.tokens(&tenant.admin_token);
    let first = tokens
        .list_tokens(proto::ListTokensRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let good = first.next_page_token.clone();
    assert!(!good.is_empty());
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 3;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [flipped.as_str(), "garbage", "!!!", &good[..good.len() / 2]] {
        let status = assert_code(
            tokens
                .list_tokens(proto::ListTokensRequest {
                    page_size: 1,
                    page_token: bad.to_owned(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
        );
        assert!(status.message().starts_with("page_token"));
    }
    // A token issued for other filters is refused too.
    let status = assert_code(
        tokens
            .list_tokens(proto::ListTokensRequest {
                page_size: 1,
                page_token: good.clone(),
                name_contains: "x".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("different filters"));
    // A page token of one listing is not accepted by another.
    assert_code(
        app.admin(&tenant.admin_token)
            .list_principals(proto::ListPrincipalsRequest {
                page_token: good.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    // Negative page sizes are refused; the genuine token still works.
    assert_code(
        tokens
            .list_tokens(proto::ListTokensRequest {
                page_size: -1,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    let next = tokens
        .list_tokens(proto::ListTokensRequest {
            page_size: 1,
            page_token: good,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.tokens.len(), 1);
    assert_ne!(next.tokens[0].id, first.tokens[0].id);
}

backend_tests!(grace_periods_beyond_the_cap_or_the_expiry_are_refused);

async fn grace_periods_beyond_the_cap_or_the_expiry_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let mut tokens = app.tokens(&tenant.admin_token);
    let short = tokens
        .create_token(proto::CreateTokenRequest {
            expiry: Some(proto::create_token_request::Expiry::Ttl(Duration {
                seconds: 3600,
                nanos: 0,
            })),
            ..named("one hour")
        })
        .await
        .unwrap()
        .into_inner();
    let id = short.token.unwrap().id;
    let reset = |seconds| proto::ResetTokenRequest {
        id: id.clone(),
        grace_period: Some(Duration { seconds, nanos: 0 }),
        ..Default::default()
    };
    // Beyond the token's expiry.
    let status = assert_code(tokens.reset_token(reset(7200)).await, Code::InvalidArgument);
    assert!(status.message().contains("expire"));
    // Negative.
    assert_code(tokens.reset_token(reset(-1)).await, Code::InvalidArgument);
    // Beyond the server's cap (one day in tests) on a token that never expires.
    let forever = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await;
    let status = assert_code(
        tokens
            .reset_token(proto::ResetTokenRequest {
                id: forever.token.unwrap().id,
                grace_period: Some(Duration {
                    seconds: 2 * 86_400,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("at most"));
    // Nothing changed: both original secrets still work.
    assert!(app.verify(&short.secret, &[]).await.valid);
    assert!(app.verify(&forever.secret, &[]).await.valid);
}

backend_tests!(invalid_updates_and_admin_requests_are_refused);

async fn invalid_updates_and_admin_requests_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let token = app
        .create_token(&tenant.admin_token, &tenant.admin_id, &[])
        .await
        .token
        .unwrap();
    let mut tokens = app.tokens(&tenant.admin_token);
    let update = |paths: Vec<&str>, values: proto::Token| proto::UpdateTokenRequest {
        token: Some(proto::Token {
            id: token.id.clone(),
            ..values
        }),
        update_mask: Some(FieldMask {
            paths: paths.into_iter().map(String::from).collect(),
        }),
    };
    for (paths, values) in [
        (vec![], proto::Token::default()),
        (vec!["owner_id"], proto::Token::default()),
        (vec!["state"], proto::Token::default()),
        (
            vec!["name"],
            proto::Token {
                name: String::new(),
                ..Default::default()
            },
        ),
        (
            vec!["expire_time"],
            proto::Token {
                expire_time: Some(Timestamp {
                    seconds: now_seconds() - 10,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ),
        (
            vec!["expire_time"],
            proto::Token {
                expire_time: Some(Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                ..Default::default()
            },
        ),
    ] {
        assert_code(
            tokens.update_token(update(paths, values)).await,
            Code::InvalidArgument,
        );
    }
    assert_code(
        tokens
            .update_token(proto::UpdateTokenRequest {
                token: None,
                update_mask: None,
            })
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        tokens
            .verify_token(proto::VerifyTokenRequest {
                token: app.bootstrap_token.clone(),
                required_scopes: vec!["Not Valid".into()],
                min_revision: 0,
                client_address: String::new(),
            })
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        tokens
            .revoke_token(proto::RevokeTokenRequest {
                id: token.id.clone(),
                reason: "r".repeat(1001),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    // Regression (issue 20): an unknown mask path was quoted back whole (200 kB of path, a
    // 200 kB error); now a short, escaped excerpt.
    for path in ["x".repeat(200_000), format!("evil\n{}", "é".repeat(50))] {
        let status = assert_code(
            tokens
                .update_token(update(vec![&path], proto::Token::default()))
                .await,
            Code::InvalidArgument,
        );
        assert!(
            status.message().len() < 1024,
            "{} bytes",
            status.message().len()
        );
        assert!(!status.message().contains('\n'), "{status:?}");
        assert!(status.message().contains("cannot be updated"), "{status:?}");
    }
    let mut admin = app.admin(&tenant.admin_token);
    assert_code(
        admin
            .create_principal(proto::CreatePrincipalRequest {
                display_name: "no kind".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        admin
            .create_principal(proto::CreatePrincipalRequest {
                kind: PrincipalKind::User as i32,
                display_name: "x".repeat(201),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        app.operator_admin()
            .create_account(proto::CreateAccountRequest {
                display_name: String::new(),
            })
            .await,
        Code::InvalidArgument,
    );
    let unchanged = tokens
        .get_token(proto::GetTokenRequest {
            id: token.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(unchanged.etag, token.etag);
}

// Refused before any storage is read: one backend is enough.
#[tokio::test]
async fn oversized_messages_are_rejected_by_the_size_limit() {
    let app = TestApp::spawn_with(|settings| settings.max_message_bytes = 64 * 1024).await;
    let tenant = app.create_tenant("Acme", &[]).await;
    let huge = proto::CreateTokenRequest {
        description: "x".repeat(128 * 1024),
        ..named("huge")
    };
    let status = assert_code(
        app.tokens(&tenant.admin_token).create_token(huge).await,
        Code::ResourceExhausted,
    );
    assert!(status.message().contains("too large"), "{status:?}");
    let huge_verify = proto::VerifyTokenRequest {
        token: "t".repeat(100 * 1024),
        required_scopes: vec![],
        min_revision: 0,
        client_address: String::new(),
    };
    let result = app
        .tokens(&tenant.admin_token)
        .verify_token(huge_verify)
        .await;
    assert_code(result, Code::ResourceExhausted);
    // The server is fine afterwards.
    assert!(app.verify(&tenant.admin_token, &[]).await.valid);
}

/// `tka_` + 31 × `a` + `é` + 5 × `a`: the right length in bytes, with a two-byte character
/// across the boundary between body and checksum. It once panicked the parser.
fn straddling_token() -> String {
    format!("tka_{}é{}", "a".repeat(31), "a".repeat(5))
}

// Refused before any storage is read: one backend is enough.
#[tokio::test]
async fn non_ascii_tokens_are_malformed_everywhere() {
    let app = TestApp::spawn().await;
    let presented = straddling_token();
    let answer = app.verify(&presented, &[]).await;
    assert_eq!(
        crate::helpers::code_of(&answer),
        proto::VerificationCode::Malformed
    );
    assert!(!answer.valid);
    // As a credential: refused as unauthenticated, in either header.
    for credential in [
        crate::helpers::Credential::Bearer(presented.clone()),
        crate::helpers::Credential::ApiKey(presented.clone()),
    ] {
        assert_code(
            app.tokens_with(credential)
                .list_tokens(proto::ListTokensRequest::default())
                .await,
            Code::Unauthenticated,
        );
    }
    // The client library, which a backend calls with any string, answers MALFORMED locally.
    let verifier = token_authority::client::CachingVerifier::new(
        token_authority::client::VerifierConfig::new(app.channel_uri(), &app.bootstrap_token),
    )
    .unwrap();
    for input in [
        presented.clone(),
        format!("Bearer {presented}"),
        "é".repeat(21),
    ] {
        let verdict = verifier.verify(&input, &[]).await.expect("an answer");
        assert_eq!(verdict.code, proto::VerificationCode::Malformed);
    }
    // The server is still there, and nothing of the string reached the log.
    assert!(app.verify(&app.bootstrap_token, &[]).await.valid);
    assert!(!crate::helpers::captured_logs().contains(&presented));
}
