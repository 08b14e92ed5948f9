//! What idle or slow clients can hold on a listener: every listener of the server accepts
//! through a [`GuardedListener`], which
//!
//! - caps the connections open at once (below the process's file limit, so that accepting
//!   never fails for want of a descriptor and the process keeps descriptors for its
//!   database), and per client address (an IPv6 client's /64; at most half the cap), so that
//!   one host cannot take every slot. Past the cap every new connection is closed, health
//!   probes' too: the per-address cap keeps one host from getting there;
//! - closes a connection that has not sent its first request within
//!   `first_request_timeout`: one that never sends a byte, stops after the HTTP/2 preface or
//!   dawdles in its TLS handshake (the deadline is enforced on reads, which every handshake
//!   and request needs). [`FirstRequestLayer`] tells the connection when a request arrives;
//! - counts and warns: `token_authority_connections_open`, `…_connections_closed_total` by
//!   reason, `…_accept_errors_total`, and a warning (at most one per [`WARNING_INTERVAL`])
//!   when a cap or an accept error is hit.
//!
//! After its first request a connection lives at most `--max-connection-age` (then tonic
//! sends GOAWAY and lets calls in flight finish, for an hour at most: watchers resume
//! elsewhere without loss); HTTP/2 keepalive pings drop dead peers sooner.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tower::{Layer, Service};

/// At most one warning per listener and kind this often, however hard it is hit.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// How long accepting pauses after an error (out of descriptors, say): retrying at once would
/// spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// The most connections of a listener by default, whatever the file limit.
const DEFAULT_MAX_CONNECTIONS: usize = 50_000;

/// What a listener lets its clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Connections open at once from one client address; 0: no cap per address.
    pub max_per_address: usize,
    /// The longest a connection may go without its first request.
    pub first_request_timeout: Duration,
}

impl ConnectionLimits {
    /// The default cap: three quarters of the process's soft file limit (the rest is for
    /// database connections, files and the other listener), at most 50,000.
    pub fn default_max_connections() -> usize {
        let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let three_quarters = usize::try_from(files / 4 * 3).unwrap_or(usize::MAX);
        three_quarters.clamp(16, DEFAULT_MAX_CONNECTIONS)
    }
}

/// A listener that accepts only what its [`ConnectionLimits`] allow.
pub struct GuardedListener {
    listener: TcpListener,
    /// `grpc`, `console`, `metrics`, `forward_auth` or `ext_authz`: the `listener` label of the metrics.
    name: &'static str,
    limits: ConnectionLimits,
    shared: Arc<Shared>,
}

/// What the listener and its open connections share.
struct Shared {
    name: &'static str,
    slots: Arc<Semaphore>,
    max_connections: usize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    warned: Mutex<HashMap<&'static str, Instant>>,
}

impl Shared {
    fn record_open(&self) {
        let open = self
            .max_connections
            .saturating_sub(self.slots.available_permits());
        crate::metrics::record_connections_open(self.name, open);
    }

    /// Logs `message` for `kind`, unless it was logged within [`WARNING_INTERVAL`].
    fn warn(&self, kind: &'static str, message: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let due = warned
            .get(kind)
            .is_none_or(|last| now.duration_since(*last) >= WARNING_INTERVAL);
        if due {
            warned.insert(kind, now);
            tracing::warn!(listener = self.name, "{message}");
        }
    }
}

impl GuardedListener {
    pub fn new(listener: TcpListener, name: &'static str, mut limits: ConnectionLimits) -> Self {
        let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        // One address never takes more than half the connections, whatever is configured.
        if limits.max_per_address > 0 {
            limits.max_per_address = limits.max_per_address.min((max_connections / 2).max(1));
        }
        let shared = Arc::new(Shared {
            name,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            per_address: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashMap::new()),
        });
        shared.record_open();
        Self {
            listener,
            name,
            limits,
            shared,
        }
    }

    /// The next connection the limits allow. Connections past a cap are closed at once;
    /// accept errors pause accepting briefly. Never fails.
    pub async fn accept(&self) -> GuardedStream {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    crate::metrics::record_accept_error(self.name);
                    self.shared.warn(
                        "accept_error",
                        &format!("could not accept a connection ({error}); is the file limit reached? pausing accepts briefly"),
                    );
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let Ok(slot) = self.shared.slots.clone().try_acquire_owned() else {
                crate::metrics::record_connection_closed(self.name, "limit");
                self.shared.warn(
                    "limit",
                    &format!(
                        "connection cap reached ({} open): closing new connections until some end",
                        self.shared.max_connections
                    ),
                );
                continue;
            };
            let Some(address) = self.claim_address(crate::domain::address_group(peer.ip())) else {
                crate::metrics::record_connection_closed(self.name, "address_limit");
                self.shared.warn(
                    "address_limit",
                    &format!(
                        "a client address reached the cap of {} connections: closing its new ones",
                        self.limits.max_per_address
                    ),
                );
                continue;
            };
            self.shared.record_open();
            // Requests are small and latency matters more than packet count.
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let activity = Arc::new(Activity::default());
            return GuardedStream {
                inner: stream,
                first_request: Box::pin(tokio::time::sleep(self.limits.first_request_timeout)),
                info: GuardedConnectInfo {
                    remote_addr: peer,
                    local_addr: local,
                    activity,
                },
                _slot: Slot {
                    _permit: slot,
                    address,
                    shared: self.shared.clone(),
                },
                timed_out: false,
            };
        }
    }

    /// Counts a connection of `ip` against its cap; None when it is full.
    fn claim_address(&self, ip: IpAddr) -> Option<Option<IpAddr>> {
        if self.limits.max_per_address == 0 {
            return Some(None);
        }
        let mut per_address = self
            .shared
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let open = per_address.entry(ip).or_insert(0);
        if *open >= self.limits.max_per_address {
            return None;
        }
        *open += 1;
        Some(Some(ip))
    }

    /// The connections as a stream, for tonic's `serve_with_incoming`.
    pub fn into_incoming(
        self,
    ) -> impl futures_util::Stream<Item = io::Result<GuardedStream>> + Send + 'static {
        futures_util::stream::unfold(self, |listener| async move {
            let stream = listener.accept().await;
            Some((Ok(stream), listener))
        })
    }
}

/// A connection's place under its listener's caps, given back when it closes.
struct Slot {
    _permit: OwnedSemaphorePermit,
    address: Option<IpAddr>,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.address {
            let mut per_address = self
                .shared
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(open) = per_address.get_mut(&ip) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    per_address.remove(&ip);
                }
            }
        }
        // The permit goes back after this body: count it as gone already.
        let open = self
            .shared
            .max_connections
            .saturating_sub(self.shared.slots.available_permits())
            .saturating_sub(1);
        crate::metrics::record_connections_open(self.shared.name, open);
    }
}

/// Whether a connection has had a request.
#[derive(Debug, Default)]
pub struct Activity {
    request_seen: AtomicBool,
}

impl Activity {
    fn mark_request(&self) {
        if !self.request_seen.load(Ordering::Relaxed) {
            self.request_seen.store(true, Ordering::Release);
        }
    }

    fn request_seen(&self) -> bool {
        self.request_seen.load(Ordering::Acquire)
    }
}

/// What a request learns of its connection (tonic puts it in the request's extensions).
#[derive(Debug, Clone)]
pub struct GuardedConnectInfo {
    remote_addr: SocketAddr,
    local_addr: Option<SocketAddr>,
    activity: Arc<Activity>,
}

impl GuardedConnectInfo {
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

/// The client's address of a request that came through a [`GuardedListener`], in the clear
/// or over TLS (tonic wraps the connection's info then).
pub fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    connect_info(extensions).map(GuardedConnectInfo::remote_addr)
}

fn connect_info(extensions: &http::Extensions) -> Option<&GuardedConnectInfo> {
    extensions.get::<GuardedConnectInfo>().or_else(|| {
        extensions
            .get::<tonic::transport::server::TlsConnectInfo<GuardedConnectInfo>>()
            .map(|tls| tls.get_ref())
    })
}

/// A connection accepted by a [`GuardedListener`].
pub struct GuardedStream {
    inner: TcpStream,
    /// Fires when the first request is due; polled on reads until a request is seen.
    first_request: Pin<Box<Sleep>>,
    info: GuardedConnectInfo,
    _slot: Slot,
    timed_out: bool,
}

impl tonic::transport::server::Connected for GuardedStream {
    type ConnectInfo = GuardedConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.info.activity.request_seen() && this.first_request.as_mut().poll(cx).is_ready() {
            if !this.timed_out {
                this.timed_out = true;
                crate::metrics::record_connection_closed(
                    this._slot.shared.name,
                    "first_request_timeout",
                );
                tracing::debug!(
                    listener = this._slot.shared.name,
                    peer = %this.info.remote_addr,
                    "closing a connection that sent no request in time"
                );
            }
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request within the first-request timeout",
            )));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Tells a request's connection that it has had a request, which lifts its first-request
/// deadline. The outermost layer of a server whose listener is a [`GuardedListener`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstRequestLayer;

impl<S> Layer<S> for FirstRequestLayer {
    type Service = FirstRequest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FirstRequest { inner }
    }
}

/// The service of [`FirstRequestLayer`].
#[derive(Debug, Clone)]
pub struct FirstRequest<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for FirstRequest<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(info) = connect_info(request.extensions()) {
            info.activity.mark_request();
        }
        self.inner.call(request)
    }
}

/// Marks the connection of a request as having had one: for a server that is not a tower
/// stack (the metrics endpoint's hyper service).
pub fn mark_request(info: &GuardedConnectInfo) {
    info.activity.mark_request();
}
