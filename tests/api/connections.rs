//! What idle or slow clients can hold: a connection that sends no request in time is
//! closed (silent, stopped after the HTTP/2 preface, or stalled in its TLS handshake), the
//! connection caps close what is past them, and well-behaved clients are served meanwhile,
//! on the gRPC port and the metrics endpoint alike.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tonic::transport::Channel;

use token_authority::proto;
use token_authority::proto::admin_service_client::AdminServiceClient;

use crate::helpers::{Credential, TestApp, captured_logs};

/// The HTTP/2 client preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A TCP connection to `addr` from the loopback address `source` (127.0.0.x).
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("a loopback source address");
    socket.connect(addr).await.expect("the listener accepts")
}

/// How long until the server closes `stream` (reads end or fail), at most `bound`; None if
/// it is still open then. What the server sends meanwhile (its own preface) is skipped.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + bound).into(), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A call that needs a fresh connection (and a valid credential), on a channel of its own.
async fn fresh_call(app: &TestApp) -> Result<(), tonic::Status> {
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    AdminServiceClient::with_interceptor(channel, Credential::Bearer(app.bootstrap_token.clone()))
        .get_account(proto::GetAccountRequest::default())
        .await
        .map(|_| ())
}

// Regression (issue 20): a connection that never sent a byte, or only the HTTP/2 preface,
// was held for ever.
#[tokio::test]
async fn a_connection_without_a_request_is_closed_in_time_and_requests_keep_theirs() {
    let timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(|settings| settings.first_request_timeout = timeout).await;
    // The harness's connection sends its first request at once.
    let mut admin = app.admin(&app.bootstrap_token);
    admin
        .get_account(proto::GetAccountRequest::default())
        .await
        .unwrap();
    let connected = Instant::now();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut preface_only = TcpStream::connect(app.addr).await.unwrap();
    preface_only.write_all(PREFACE).await.unwrap();
    for stream in [&mut silent, &mut preface_only] {
        closed_within(stream, Duration::from_secs(5))
            .await
            .expect("closed within the bound");
        let closed = connected.elapsed();
        assert!(closed >= timeout - Duration::from_millis(50), "{closed:?}");
    }
    // A client that sent its request keeps its connection past the timeout.
    tokio::time::sleep(timeout * 3).await;
    admin
        .get_account(proto::GetAccountRequest::default())
        .await
        .expect("the same connection still serves");
}

// Regression (issue 20): a TLS handshake that never starts held its connection for ever.
#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let app = TestApp::spawn_with(move |settings| {
        settings.tls_cert = Some(cert);
        settings.tls_key = Some(key);
        settings.first_request_timeout = Duration::from_millis(500);
    })
    .await;
    let mut admin = app.admin(&app.bootstrap_token);
    admin
        .get_account(proto::GetAccountRequest::default())
        .await
        .unwrap();
    let mut stalled = TcpStream::connect(app.addr).await.unwrap();
    // The first bytes of a ClientHello record, and then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    closed_within(&mut stalled, Duration::from_secs(5))
        .await
        .expect("closed within the bound");
    // The harness's own TLS channel is still served.
    admin
        .get_account(proto::GetAccountRequest::default())
        .await
        .unwrap();
}

// Regression (issue 20): nothing capped the connections, so idle ones reached the file
// limit and then nobody could connect.
#[tokio::test]
async fn connections_past_the_cap_are_closed_and_the_server_recovers() {
    let app = TestApp::spawn_with(|settings| {
        settings.max_connections = 6;
        settings.max_connections_per_address = 0;
        settings.first_request_timeout = Duration::from_secs(1);
    })
    .await;
    // The harness holds one connection (and sends its first request in time) ...
    app.admin(&app.bootstrap_token)
        .get_account(proto::GetAccountRequest::default())
        .await
        .unwrap();
    // ... five idle ones fill the cap.
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // Let the server accept them all before the next one arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut past = TcpStream::connect(app.addr).await.unwrap();
    let closed = closed_within(&mut past, Duration::from_millis(500))
        .await
        .expect("closed at once, not at the first-request timeout");
    assert!(closed < Duration::from_millis(500), "{closed:?}");
    assert!(captured_logs().contains("connection cap reached"));
    // The harness's connection is still served ...
    app.admin(&app.bootstrap_token)
        .get_account(proto::GetAccountRequest::default())
        .await
        .unwrap();
    // ... and once the idle ones time out, new clients are too.
    for stream in &mut idle {
        closed_within(stream, Duration::from_secs(5))
            .await
            .expect("idle connections time out");
    }
    fresh_call(&app).await.expect("a new client is served");
}

// Regression (issue 20): one client address could take every connection.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let app = TestApp::spawn_with(|settings| {
        settings.max_connections_per_address = 3;
        settings.first_request_timeout = Duration::from_secs(10);
    })
    .await;
    app.admin(&app.bootstrap_token)
        .get_account(proto::GetAccountRequest::default())
        .await
        .unwrap();
    // The harness holds one connection from 127.0.0.1; two idle ones fill its share.
    let _idle = [
        connect_from([127, 0, 0, 1], app.addr).await,
        connect_from([127, 0, 0, 1], app.addr).await,
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut past = connect_from([127, 0, 0, 1], app.addr).await;
    assert!(
        closed_within(&mut past, Duration::from_secs(2))
            .await
            .is_some(),
        "the address's fourth connection is closed"
    );
    // Another address still gets in.
    let mut other = connect_from([127, 0, 0, 2], app.addr).await;
    assert_eq!(
        closed_within(&mut other, Duration::from_millis(500)).await,
        None,
        "another address is accepted"
    );
}

// Regression (issue 20): 16 idle connections blocked every scrape for 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_block_scrapes() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("metrics.db").display());
    let (child, _, metrics_addr) =
        crate::helpers::serve_with_metrics(&database_url, &["--first-request-timeout", "1s"]);
    let metrics: SocketAddr = metrics_addr.parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(connect_from([127, 0, 0, 1], metrics).await);
    }
    // A scraper elsewhere is answered at once.
    let mut scrape = connect_from([127, 0, 0, 2], metrics).await;
    let started = Instant::now();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), scrape.read_to_string(&mut answer))
        .await
        .expect("answered in time")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("token_authority_connections_open"),
        "exported"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The idle ones are closed: those past the address's cap at once, the rest in time.
    for stream in &mut idle {
        closed_within(stream, Duration::from_secs(5))
            .await
            .expect("closed");
    }
    crate::helpers::terminate(child);
}
