//! Which requests the console answers: those for a host it is served as, from its own
//! origin.
//!
//! A page of another site can make a browser send requests here (a form, an image, a
//! `fetch` without CORS); what protects the console is that no credential goes with them
//! (the page keeps the pasted token in memory, never in a cookie) and that no answer is
//! readable by that site (no CORS headers). Two things remain, and are refused here:
//!
//! - **DNS rebinding**: another site's name, made to resolve to this listener, would make
//!   the console that site's origin. The `Host` a request names must be an IP address,
//!   `localhost`, or a name the operator listed (`--console-host`).
//! - **Another origin**: a request whose `Origin` (which browsers send with every `fetch`
//!   but a same-origin GET) names another host than its `Host`, or whose `Sec-Fetch-Site`
//!   says `cross-site` for anything but a navigation (a link to the page is welcome).

use std::net::IpAddr;

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, Uri};

/// The host names the console is reached by, besides IP addresses and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request names no host")]
    NoHost,
    #[error("the console is not served under this host name (see --console-host)")]
    UnknownHost,
    #[error("requests from another origin are refused")]
    OtherOrigin,
}

impl AllowedHosts {
    /// These names (without port; compared without case), besides IP addresses and
    /// `localhost`.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self {
            names: names
                .into_iter()
                .map(|name| name.trim().to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect(),
        }
    }

    /// Whether the request may be answered.
    pub fn check<B>(&self, request: &http::Request<B>) -> Result<(), Refusal> {
        self.check_parts(request.uri(), request.headers())
    }

    fn check_parts(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        // HTTP/1.1 names the host in `Host`, HTTP/2 in the `:authority` of the URI.
        let host = match headers.get(HOST) {
            Some(value) => value.to_str().map_err(|_| Refusal::NoHost)?,
            None => uri.authority().map(|a| a.as_str()).ok_or(Refusal::NoHost)?,
        };
        if !self.serves(host) {
            return Err(Refusal::UnknownHost);
        }
        // A link from another site to the page is a navigation, and welcome; anything else
        // another site makes the browser send is not.
        let fetch_header = |name: &str, value: &[u8]| {
            headers
                .get(name)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value))
        };
        if fetch_header("sec-fetch-site", b"cross-site")
            && !fetch_header("sec-fetch-mode", b"navigate")
        {
            return Err(Refusal::OtherOrigin);
        }
        let mut origins = headers.get_all(ORIGIN).iter();
        match (origins.next(), origins.next()) {
            (None, _) => Ok(()),
            (Some(origin), None) if same_authority(origin.as_bytes(), host) => Ok(()),
            _ => Err(Refusal::OtherOrigin),
        }
    }

    /// Whether `host` (`name` or `name:port`) is one the console is served as.
    fn serves(&self, host: &str) -> bool {
        let name = host_name(host);
        name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
            || self
                .names
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

/// `host` without its port: `[::1]:8080` is `[::1]`, `example.com:8080` is `example.com`.
fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((name, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`.
fn same_authority(origin: &[u8], host: &str) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    ["http://", "https://"].iter().any(|scheme| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(hosts: &AllowedHosts, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let mut request =
            http::Request::builder().uri("/tokenauthority.v1.TokenService/ListTokens");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        hosts.check(&request.body(()).expect("request"))
    }

    #[test]
    fn hosts_are_ip_addresses_localhost_or_listed_names() {
        let hosts = AllowedHosts::new(["Console.Example.com".to_owned()]);
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "[::1]",
            "10.1.2.3:443",
            "localhost:8080",
            "LOCALHOST",
            "console.example.com",
            "console.example.com:8443",
        ] {
            assert_eq!(check(&hosts, &[("host", host)]), Ok(()), "{host}");
        }
        for host in [
            "evil.example:8080",
            "console.example.com.evil.example",
            "127.0.0.1.nip.io:8080",
            "localhost.evil.example",
            "",
        ] {
            assert_eq!(
                check(&hosts, &[("host", host)]),
                Err(Refusal::UnknownHost),
                "{host}"
            );
        }
        assert_eq!(check(&hosts, &[]), Err(Refusal::NoHost));
    }

    #[test]
    fn only_the_hosts_own_origin_is_answered() {
        let hosts = AllowedHosts::default();
        let host = ("host", "127.0.0.1:8080");
        for origin in ["http://127.0.0.1:8080", "https://127.0.0.1:8080"] {
            assert_eq!(
                check(&hosts, &[host, ("origin", origin)]),
                Ok(()),
                "{origin}"
            );
        }
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "null",
            "http://127.0.0.1:8080.evil.example",
        ] {
            assert_eq!(
                check(&hosts, &[host, ("origin", origin)]),
                Err(Refusal::OtherOrigin),
                "{origin}"
            );
        }
        assert_eq!(
            check(&hosts, &[host, ("sec-fetch-site", "cross-site")]),
            Err(Refusal::OtherOrigin)
        );
        assert_eq!(
            check(&hosts, &[host, ("sec-fetch-site", "same-origin")]),
            Ok(())
        );
        // A link from another site opens the page.
        assert_eq!(
            check(
                &hosts,
                &[
                    host,
                    ("sec-fetch-site", "cross-site"),
                    ("sec-fetch-mode", "navigate")
                ]
            ),
            Ok(())
        );
    }
}
