//! The answer to a gateway's question "may this request through?", whatever protocol
//! asked it (Envoy's `Check`, HTTP forward-auth), and how it reads in HTTP terms.
//!
//! The order is fixed: the request is read first (a path no rule can read safely, a method
//! override, an identity header spelled with underscores or sent by the client at all:
//! refused without looking at the token), then its route (public routes need no token; a request no route matches is
//! refused), then the credential, then the verification (when it needs the authority,
//! after the client address's allowance of invalid tokens). Refusals say as little as RFC 6750 asks: never the token, never
//! which check failed beyond "invalid token" and "insufficient scope".

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::path::RequestPath;
use super::routes::{Access, Ambiguous, Routes};
use crate::authority::failed_authentications::FailedAuthentications;
use crate::client::{CachingVerifier, Identity, Requirements, Verification, VerifyError};
use crate::proto::VerificationCode;

/// What a gateway saw of a request.
pub struct GatewayRequest<'a> {
    pub method: &'a str,
    /// The request target as the client sent it: path and query, undecoded.
    pub target: &'a str,
    /// The request's headers, for its credential.
    pub headers: &'a HeaderMap,
    /// The client's address, when known.
    pub client: Option<IpAddr>,
}

/// Whatever answers verifications for a gateway: the client library's cache in the edge.
pub trait Verifier: Send + Sync {
    /// The answer if it costs nothing (no call to the authority, no database read).
    fn verify_locally(
        &self,
        token: &str,
        scopes: &[&str],
        client: Option<IpAddr>,
    ) -> Option<Verification>;

    fn verify(
        &self,
        token: &str,
        scopes: &[&str],
        client: Option<IpAddr>,
    ) -> impl Future<Output = Result<Verification, VerifyError>> + Send;
}

impl Verifier for CachingVerifier {
    fn verify_locally(
        &self,
        token: &str,
        scopes: &[&str],
        client: Option<IpAddr>,
    ) -> Option<Verification> {
        let requirements = Requirements {
            client_address: client,
            ..Requirements::scopes(scopes)
        };
        CachingVerifier::verify_locally(self, token, &requirements)
    }

    async fn verify(
        &self,
        token: &str,
        scopes: &[&str],
        client: Option<IpAddr>,
    ) -> Result<Verification, VerifyError> {
        let requirements = Requirements {
            client_address: client,
            ..Requirements::scopes(scopes)
        };
        self.verify_with(token, &requirements).await
    }
}

/// The decision on one request.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The route's name; `-` when no route applies.
    pub route: String,
    pub outcome: Outcome,
}

/// Let through (with the identity, unless the route is public) or refused, and why.
#[derive(Debug, Clone)]
pub enum Outcome {
    Allow(Option<Arc<Identity>>),
    Refuse(Refusal),
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The path cannot be read one way (see [`RequestPath`]).
    Path,
    /// Services could read the request differently from the rules: its path's case changes
    /// its route, it carries a method or path override, or an identity header spelled with
    /// underscores (which CGI-style services read as the real one).
    Ambiguous,
    /// No route matches and there is no default.
    NoRoute,
    /// The client sent an identity header itself.
    ForgedIdentity,
    /// No credential was presented.
    NoCredential,
    /// The credential headers are ambiguous or malformed, or the token is not valid.
    InvalidToken,
    /// The token lacks a scope the route needs, or is used from a network it may not be.
    InsufficientScope,
    /// No answer can be trusted now (the authority is unreachable past the staleness
    /// bound, or refuses this edge).
    Unavailable,
    /// The client's address presented more invalid tokens than its allowance: refused for
    /// a second without a look-up.
    TooManyInvalidTokens,
}

/// The headers that carry the verified identity upstream. Whatever a client sent under
/// these names is removed before the request goes on.
pub const IDENTITY_HEADERS: [&str; 5] = [
    "x-token-id",
    "x-account-id",
    "x-principal-id",
    "x-token-scopes",
    "x-token-api-version",
];

/// Decides on `request` by `routes`, asking `verifier` about its token. A client address
/// past its allowance of invalid tokens (`failures`) is refused before its token is looked
/// at, so that forged tokens cannot fill the verifier's calls to the authority.
pub(crate) async fn decide(
    routes: &Routes,
    verifier: &impl Verifier,
    failures: &FailedAuthentications,
    request: &GatewayRequest<'_>,
) -> Decision {
    let refuse = |route: &str, refusal| Decision {
        route: route.to_owned(),
        outcome: Outcome::Refuse(refusal),
    };
    let Ok(path) = RequestPath::parse(request.target) else {
        return refuse("-", Refusal::Path);
    };
    if ambiguous_headers(request.headers) || method_override_in_query(request.target) {
        return refuse("-", Refusal::Ambiguous);
    }
    if forged_identity(request.headers) {
        return refuse("-", Refusal::ForgedIdentity);
    }
    let route = match routes.route(request.method, &path) {
        Ok(Some(route)) => route,
        Ok(None) => return refuse("-", Refusal::NoRoute),
        Err(Ambiguous) => return refuse("-", Refusal::Ambiguous),
    };
    let scopes = match &route.access {
        Access::Public => {
            return Decision {
                route: route.name.clone(),
                outcome: Outcome::Allow(None),
            };
        }
        Access::Scopes(scopes) => scopes,
    };
    let token = match crate::credential::from_headers(request.headers) {
        Ok(Some(token)) => token,
        Ok(None) => return refuse(&route.name, Refusal::NoCredential),
        Err(_) => return refuse(&route.name, Refusal::InvalidToken),
    };
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    // Answers from memory cost nothing and are neither counted nor refused (as the
    // server's own limit): a client whose token is cached keeps working beside an attacker
    // on the same address. Only what needs the authority spends the address's allowance.
    // Clients whose address is unknown (a gateway listening on a Unix socket) share one
    // allowance: unknown must not mean unlimited.
    let allowance_of = Some(request.client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    let (answer, remote) = match verifier.verify_locally(token, &scopes, request.client) {
        Some(verification) => (Ok(verification), false),
        None if failures.refusal(allowance_of, None).is_some() => {
            return refuse(&route.name, Refusal::TooManyInvalidTokens);
        }
        None => (verifier.verify(token, &scopes, request.client).await, true),
    };
    let refusal = match answer {
        Ok(verification) => match (verification.code, verification.identity) {
            (VerificationCode::Valid, Some(identity)) => {
                return Decision {
                    route: route.name.clone(),
                    outcome: Outcome::Allow(Some(identity)),
                };
            }
            (VerificationCode::InsufficientScopes | VerificationCode::AddressNotAllowed, _) => {
                Refusal::InsufficientScope
            }
            _ => {
                if remote {
                    failures.record_failure(allowance_of, None);
                }
                Refusal::InvalidToken
            }
        },
        Err(VerifyError::Unavailable(_)) => Refusal::Unavailable,
        Err(error @ (VerifyError::Refused(_) | VerifyError::Config(_))) => {
            tracing::error!(%error, "the edge cannot verify tokens: check its credential");
            Refusal::Unavailable
        }
    };
    refuse(&route.name, refusal)
}

/// Headers by which frameworks change a request's method or path (a route is chosen by the
/// method and path the gateway saw): method overrides, and the original URL that IIS's
/// rewrite module passes, which Symfony and Zend once read from any client.
const OVERRIDES: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// Whether the headers could make a service read the request otherwise than the rules: a
/// method or path override, or an identity header spelled with underscores (`X_Token_Id`), which
/// CGI, WSGI, Rack and PHP read as the real header and no gateway replaces.
fn ambiguous_headers(headers: &HeaderMap) -> bool {
    headers.keys().any(|name| {
        let name = name.as_str();
        if !name.contains('_') {
            return OVERRIDES.contains(&name);
        }
        // `X_HTTP_Method_Override` is the override to the same services (Rack behind Puma,
        // gunicorn), and Caddy passes it on.
        let dashed = name.replace('_', "-");
        OVERRIDES.contains(&dashed.as_str()) || IDENTITY_HEADERS.contains(&dashed.as_str())
    })
}

/// Whether the client sent an identity header of its own. A gateway replaces them, but one
/// location of a gateway configured otherwise (a `fastcgi_pass`, a location with its own
/// `proxy_set_header`) would pass them on: no legitimate client sends them.
fn forged_identity(headers: &HeaderMap) -> bool {
    IDENTITY_HEADERS.iter().any(|name| {
        headers
            .get_all(*name)
            .iter()
            .any(|value| !value.as_bytes().is_empty())
    })
}

/// Whether the query holds `_method`, by which some frameworks (Symfony, Laravel) change a
/// request's method, as PHP names its parameters: `+` and escapes decoded, leading spaces
/// dropped, a space or a dot read as `_` (`?.method=`, `?+_method=`), and `_method[…]` and
/// `_method%00…` naming the same parameter.
fn method_override_in_query(target: &str) -> bool {
    let Some((_, query)) = target.split_once('?') else {
        return false;
    };
    // Most queries hold neither an escape nor the word: nothing to decode.
    let spelled = |word: &[u8]| {
        query
            .as_bytes()
            .windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word))
    };
    if !query.contains('%') && !spelled(b"method") {
        return false;
    }
    // `;` separates pairs too where PHP's arg_separator.input says so.
    query.split(['&', ';']).any(|pair| {
        let key = pair.split('=').next().unwrap_or_default().replace('+', " ");
        let key = percent_encoding::percent_decode_str(&key).decode_utf8_lossy();
        // PHP ends a name at a NUL (`_method%00x`) and at the `[` of an array.
        let name = key.split(['\0', '[']).next().unwrap_or_default();
        name.trim_start_matches(' ')
            .replace([' ', '.'], "_")
            .eq_ignore_ascii_case("_method")
    })
}

impl Refusal {
    /// The HTTP status a gateway answers the client with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NoCredential | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::Path
            | Self::Ambiguous
            | Self::ForgedIdentity
            | Self::NoRoute
            | Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyInvalidTokens => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 section 3), if the status takes one. A
    /// request without any credential gets the bare challenge, as the RFC asks.
    pub fn challenge(self) -> Option<&'static str> {
        match self {
            Self::NoCredential => Some("Bearer"),
            Self::InvalidToken => Some(r#"Bearer error="invalid_token""#),
            Self::InsufficientScope => Some(r#"Bearer error="insufficient_scope""#),
            Self::Path
            | Self::Ambiguous
            | Self::ForgedIdentity
            | Self::NoRoute
            | Self::Unavailable
            | Self::TooManyInvalidTokens => None,
        }
    }

    /// The metrics label of the result.
    pub fn label(self) -> &'static str {
        match self {
            Self::Path => "bad_path",
            Self::Ambiguous => "ambiguous",
            Self::ForgedIdentity => "forged_identity",
            Self::NoRoute => "no_route",
            Self::NoCredential => "no_credential",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::Unavailable => "unavailable",
            Self::TooManyInvalidTokens => "too_many_invalid_tokens",
        }
    }

    /// The short body of the refusal: the status's own words, nothing about the token.
    pub fn body(self) -> &'static str {
        self.status().canonical_reason().unwrap_or("refused")
    }
}

/// The identity headers for the request going upstream: every one of
/// [`IDENTITY_HEADERS`], empty where the identity has no value for it (a public route has
/// none at all; an api version that cannot be a header value is left empty too). Always
/// all of them: a gateway that copies headers from the answer by name (Caddy 2.6) would
/// otherwise set a missing one to its own placeholder text.
pub fn identity_headers(identity: Option<&Identity>) -> Vec<(HeaderName, HeaderValue)> {
    let values = match identity {
        Some(identity) => [
            identity.token_id.clone(),
            identity.account_id.clone(),
            identity.owner_id.clone(),
            identity.scopes.join(" "),
            identity.api_version.clone(),
        ],
        None => Default::default(),
    };
    IDENTITY_HEADERS
        .iter()
        .zip(values)
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Security review of issue 23: PHP reads `.method` and ` _method` as `_method`.
    #[test]
    fn method_overrides_are_found_in_any_spelling_php_reads() {
        for target in [
            "/x?_method=DELETE",
            "/x?_METHOD=DELETE",
            "/x?.method=DELETE",
            "/x?%2Emethod=DELETE",
            "/x?+_method=DELETE",
            "/x?%20%20_method=DELETE",
            "/x?a=1&_method[]=DELETE",
            "/x?_method%00=DELETE",
            "/x?_method%00x=DELETE",
            "/x?a=1;_method=DELETE",
            "/x?%5Fmethod=DELETE",
            "/x?_method",
        ] {
            assert!(method_override_in_query(target), "{target}");
        }
        for target in [
            "/x",
            "/x?method=DELETE",
            "/x?_methods=1",
            "/x?a_method=1",
            "/x?",
        ] {
            assert!(!method_override_in_query(target), "{target}");
        }
    }

    #[test]
    fn overrides_and_identity_headers_are_found_with_underscores() {
        for name in [
            "x-http-method-override",
            "x_http_method_override",
            "x_method-override",
            "x-original-url",
            "X_Rewrite_URL",
            "x_token_id",
            "x-token_scopes",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                http::HeaderValue::from_static("DELETE"),
            );
            assert!(ambiguous_headers(&headers), "{name}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("x_request_id", http::HeaderValue::from_static("1"));
        assert!(!ambiguous_headers(&headers));
    }
}
