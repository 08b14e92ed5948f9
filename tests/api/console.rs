//! The console's listener (`--console-addr`): the embedded page with its security headers,
//! gRPC-Web to the same services under the same rules, and nothing for another origin or a
//! host name the console is not served as. The page itself is driven in a real browser by
//! `console/tests` (Playwright), which `scripts/test` runs.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use token_authority::configuration::OptionalAddr;
use token_authority::console::assets::{ASSETS, SECURITY_HEADERS};

use crate::helpers::TestApp;

async fn app_with_console() -> (TestApp, SocketAddr) {
    let app = TestApp::spawn_with(|settings| {
        settings.console_addr = OptionalAddr::At("127.0.0.1:0".parse().expect("address"));
        settings.console_hosts = vec!["console.example.com".into()];
    })
    .await;
    let console = app.console_addr.expect("the console listens");
    (app, console)
}

/// One HTTP/1.1 exchange: the status line's code, the headers (lower-case names) and the
/// body's bytes.
async fn exchange(
    addr: SocketAddr,
    head: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("{head} HTTP/1.1\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).await.expect("send");
    stream.write_all(body).await.expect("send body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A gRPC-Web call of `method` with an empty request message, as the page makes it.
async fn grpc_web(
    console: SocketAddr,
    method: &str,
    extra: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let mut headers = vec![
        ("host", "127.0.0.1"),
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
    ];
    headers.extend_from_slice(extra);
    // An uncompressed frame of zero bytes: the empty message.
    let (status, headers, body) = exchange(
        console,
        &format!("POST /tokenauthority.v1.{method}"),
        &headers,
        &[0, 0, 0, 0, 0],
    )
    .await;
    // The body is chunked frames; the trailers frame (flag 0x80) holds grpc-status as text.
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_page_is_served_with_its_security_headers() {
    let (_app, console) = app_with_console().await;
    for asset in ASSETS {
        let path = asset.path;
        let (status, headers, body) = exchange(
            console,
            &format!("GET {path}"),
            &[("host", "localhost")],
            &[],
        )
        .await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), [asset.content_type]);
        assert_eq!(body, asset.body, "{path}");
        assert!(!body.is_empty());
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(header(&headers, name), [value], "{path}: {name}");
        }
        // No CORS: no other origin's script may read an answer.
        assert!(header(&headers, "access-control-allow-origin").is_empty());
    }
    let csp = SECURITY_HEADERS[0].1;
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    // Anything else: 404, with the same headers.
    let (status, headers, _) =
        exchange(console, "GET /favicon.ico", &[("host", "localhost")], &[]).await;
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "x-content-type-options"), ["nosniff"]);
    let (_, _, page) = exchange(console, "GET /", &[("host", "localhost")], &[]).await;
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains(r#"<script type="module" src="/app.js">"#));
    assert!(!page.contains("<script>"), "no inline script");
}

#[tokio::test]
async fn grpc_web_reaches_the_services_under_their_rules() {
    let (app, console) = app_with_console().await;
    let auth = format!("Bearer {}", app.bootstrap_token);
    let (status, headers, body) = grpc_web(
        console,
        "TokenService/GetCaller",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(header(&headers, "content-type")[0].starts_with("application/grpc-web"));
    assert!(body.contains("grpc-status:0"), "{body}");
    // The page's origin may call; the credential is still required.
    let (_, headers, body) = grpc_web(
        console,
        "TokenService/ListTokens",
        &[("origin", "http://127.0.0.1")],
    )
    .await;
    // A refusal comes trailers-only: its status in the headers.
    assert_eq!(
        header(&headers, "grpc-status"),
        ["16"],
        "UNAUTHENTICATED: {body}"
    );
}

#[tokio::test]
async fn only_the_two_services_answer_on_the_console() {
    let (app, console) = app_with_console().await;
    let auth = format!("Bearer {}", app.bootstrap_token);
    // The gRPC port's other services (health, reflection, Envoy's Check) are not the page's:
    // the console's listener answers them as any unknown path, whoever calls.
    for path in [
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/envoy.service.auth.v3.Authorization/Check",
        "/tokenauthority.v1.NoSuchService/Call",
    ] {
        let (status, _, body) = exchange(
            console,
            &format!("POST {path}"),
            &[
                ("host", "127.0.0.1"),
                ("content-type", "application/grpc-web+proto"),
                ("x-grpc-web", "1"),
                ("authorization", &auth),
            ],
            &[0, 0, 0, 0, 0],
        )
        .await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("grpc-status"), "{path}: {body}");
    }
}

#[tokio::test]
async fn another_origin_or_host_gets_nothing() {
    let (app, console) = app_with_console().await;
    let auth = format!("Bearer {}", app.bootstrap_token);
    // Another site's page calling with a stolen-in-memory credential, or a rebound name.
    for extra in [
        vec![
            ("origin", "http://evil.example"),
            ("authorization", auth.as_str()),
        ],
        vec![("origin", "null"), ("authorization", auth.as_str())],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("authorization", auth.as_str()),
        ],
    ] {
        let (status, _, body) = grpc_web(console, "TokenService/GetCaller", &extra).await;
        assert_eq!(status, 403, "{extra:?}: {body}");
        assert!(!body.contains("grpc-status:0"));
    }
    for host in [
        "evil.example",
        "evil.example:50080",
        "127.0.0.1.evil.example",
    ] {
        let (status, headers, _) = exchange(console, "GET /", &[("host", host)], &[]).await;
        assert_eq!(status, 403, "{host}");
        assert_eq!(header(&headers, "x-frame-options"), ["DENY"]);
    }
    // The names the operator listed, and a link from another site, are fine.
    let (status, _, _) = exchange(
        console,
        "GET /",
        &[("host", "console.example.com:443")],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let navigation = [
        ("host", "127.0.0.1"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "navigate"),
    ];
    assert_eq!(exchange(console, "GET /", &navigation, &[]).await.0, 200);
    // A preflight from another origin is not answered with any permission.
    let (_, headers, _) = exchange(
        console,
        "OPTIONS /tokenauthority.v1.TokenService/GetCaller",
        &[
            ("host", "127.0.0.1"),
            ("origin", "http://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        &[],
    )
    .await;
    assert!(header(&headers, "access-control-allow-origin").is_empty());
}
