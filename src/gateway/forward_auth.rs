//! HTTP forward-auth, the convention of nginx `auth_request`, Caddy `forward_auth` and
//! Traefik `forwardAuth`: the gateway sends each request's headers (never its body) to
//! `/forward-auth`, with the original method and target in `X-Original-Method` and
//! `X-Original-URI` (nginx) or `X-Forwarded-Method` and `X-Forwarded-Uri` (Caddy,
//! Traefik), and lets the request through on a 2xx answer, copying the identity headers of
//! that answer onto it.
//!
//! The gateway passes the client's own headers along, so a client could send the other
//! convention's headers itself: a request carrying both conventions, or either header
//! twice, is refused rather than guessed at. The same listener answers `/healthz` (alive)
//! and `/ready` (the cache's stream is live, so answers can be trusted) to requests that
//! name no original request.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::decision::{Decision, GatewayRequest, Outcome, Refusal, decide, identity_headers};
use super::metrics::record;
use super::routes::Routes;
use crate::authority::failed_authentications::FailedAuthentications;
use crate::client::{CachingVerifier, TrustedProxies};
use crate::connections::{ConnectionLimits, GuardedListener};

/// The largest request head read: a forward-auth request carries the client's headers.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What the endpoint answers with.
#[derive(Clone)]
pub struct ForwardAuth {
    pub routes: Arc<Routes>,
    pub verifier: CachingVerifier,
    /// Whose `X-Forwarded-For` is believed: the gateway's address.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Each client address's allowance of invalid tokens.
    pub(crate) failures: Arc<FailedAuthentications>,
}

/// Which headers name the original request.
const CONVENTIONS: [(&str, &str); 2] = [
    ("x-original-method", "x-original-uri"),
    ("x-forwarded-method", "x-forwarded-uri"),
];

impl ForwardAuth {
    /// Serves forward-auth on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener, limits: ConnectionLimits) {
        let first_request_timeout = limits.first_request_timeout;
        let listener = GuardedListener::new(listener, "forward_auth", limits);
        loop {
            let stream = listener.accept().await;
            let endpoint = self.clone();
            tokio::spawn(async move {
                let info = tonic::transport::server::Connected::connect_info(&stream);
                let peer = info.remote_addr().ip();
                let service = hyper::service::service_fn(move |request| {
                    crate::connections::mark_request(&info);
                    let endpoint = endpoint.clone();
                    async move { Ok::<_, Infallible>(endpoint.answer(&request, peer).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(first_request_timeout)
                    .max_buf_size(MAX_REQUEST_BYTES)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "forward-auth connection ended with an error");
                }
            });
        }
    }

    /// The answer to one request to the endpoint.
    pub async fn answer<B>(&self, request: &Request<B>, peer: IpAddr) -> Response<Full<Bytes>> {
        // A request naming an original request is a gateway's question whatever its path,
        // so that a gateway configured without `/forward-auth` (a Caddy `forward_auth`
        // without `uri`) can never get a health check's 200 for a client's `/ready`.
        let question = CONVENTIONS
            .iter()
            .flat_map(|(method, target)| [method, target])
            .any(|name| request.headers().contains_key(*name));
        match request.uri().path() {
            _ if question => {}
            "/forward-auth" => {}
            "/healthz" => return text(StatusCode::OK, "alive"),
            "/ready" if self.verifier.is_fresh() => return text(StatusCode::OK, "ready"),
            "/ready" => return text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
            _ => {
                return text(
                    StatusCode::NOT_FOUND,
                    "forward-auth is served at /forward-auth",
                );
            }
        }
        let started = Instant::now();
        let headers = request.headers();
        let decision = match original_request(headers) {
            Some((method, target)) => {
                let client = self.trusted_proxies.client_address(Some(peer), headers);
                let gateway_request = GatewayRequest {
                    method,
                    target,
                    headers,
                    client,
                };
                decide(
                    &self.routes,
                    &self.verifier,
                    &self.failures,
                    &gateway_request,
                )
                .await
            }
            None => Decision {
                route: "-".to_owned(),
                outcome: Outcome::Refuse(Refusal::Path),
            },
        };
        record(&decision, started.elapsed());
        respond(&decision)
    }
}

/// The original method and target, from exactly one convention, each header once.
fn original_request(headers: &HeaderMap) -> Option<(&str, &str)> {
    let mut found = None;
    for (method, target) in CONVENTIONS {
        let method = single(headers, method);
        let target = single(headers, target);
        match (method, target) {
            (None, None) => {}
            (Some(Ok(method)), Some(Ok(target))) if found.is_none() => {
                found = Some((method, target));
            }
            _ => return None,
        }
    }
    found
}

/// A header's one value: None when absent, an error when repeated or not text.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<Result<&'a str, ()>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(()));
    }
    Some(first.to_str().map_err(|_| ()))
}

fn respond(decision: &Decision) -> Response<Full<Bytes>> {
    match &decision.outcome {
        Outcome::Allow(identity) => {
            let mut response = text(StatusCode::OK, "allowed");
            for (name, value) in identity_headers(identity.as_deref()) {
                response.headers_mut().insert(name, value);
            }
            response
        }
        Outcome::Refuse(refusal) => {
            let mut response = text(refusal.status(), refusal.body());
            if let Some(challenge) = refusal.challenge() {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            if *refusal == Refusal::TooManyInvalidTokens {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_original_request_comes_from_exactly_one_convention() {
        let nginx = headers(&[("x-original-method", "GET"), ("x-original-uri", "/a")]);
        assert_eq!(original_request(&nginx), Some(("GET", "/a")));
        let caddy = headers(&[("x-forwarded-method", "POST"), ("x-forwarded-uri", "/b")]);
        assert_eq!(original_request(&caddy), Some(("POST", "/b")));
        for refused in [
            // Both conventions: one of them is the client's own.
            headers(&[
                ("x-original-method", "GET"),
                ("x-original-uri", "/admin"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/public"),
            ]),
            // A header twice.
            headers(&[
                ("x-original-method", "GET"),
                ("x-original-uri", "/admin"),
                ("x-original-uri", "/public"),
            ]),
            // Half a convention, or none.
            headers(&[("x-original-uri", "/a")]),
            headers(&[("x-forwarded-method", "GET")]),
            headers(&[]),
        ] {
            assert_eq!(original_request(&refused), None, "{refused:?}");
        }
    }
}
