//! The address a request came from, for tokens that list the networks they may be used from:
//! the connection's peer, or, when the peer is a proxy the operator trusts, the client that
//! proxy forwarded for (`X-Forwarded-For`, read from the right, past every trusted proxy).
//!
//! A forwarded header is attacker-controlled text: it is believed only as far as a trusted
//! proxy vouches for it, and anything unreadable makes the address unknown, which a token
//! with an allowlist is refused for (fail closed).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::domain::{AllowedNetworks, ValidationError};

/// The networks of the proxies whose `X-Forwarded-For` is believed; empty: none (the peer is
/// the client).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(AllowedNetworks);

impl TrustedProxies {
    /// Proxies at these CIDRs or addresses (e.g. `10.0.4.7`, `10.0.4.8`: the load balancers).
    /// List the proxies' own addresses only, and only proxies that append the client to
    /// `X-Forwarded-For`: any host inside a trusted network can claim any client address.
    /// A trusted proxy that forwards no `X-Forwarded-For` leaves the client unknown.
    pub fn parse<S: AsRef<str>>(networks: &[S]) -> Result<Self, ValidationError> {
        AllowedNetworks::parse(networks, "trusted_proxies").map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        !self.0.is_empty() && self.0.permits(Some(address))
    }

    /// The client's address for a request from `peer` with `headers`: the peer itself unless
    /// it is a trusted proxy; then, walking `X-Forwarded-For` from its end (the entry the
    /// nearest proxy appended), the first address that is not a trusted proxy (the leftmost,
    /// if all are). None when the peer is unknown, when a trusted proxy forwarded no header
    /// (the proxy is not the client, and who is cannot be told), or when an entry that must
    /// be read is not an address.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut current = peer?.to_canonical();
        if !self.trusts(current) {
            return Some(current);
        }
        let mut hops = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            hops.extend(value.to_str().ok()?.split(','));
        }
        if hops.is_empty() {
            return None;
        }
        for hop in hops.iter().rev() {
            current = parse_hop(hop)?.to_canonical();
            if !self.trusts(current) {
                return Some(current);
            }
        }
        Some(current)
    }
}

/// One `X-Forwarded-For` entry: an address, or an address with a port (some proxies add
/// it: `192.0.2.7:41234`, `[2001:db8::7]:41234`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn ip(value: &str) -> IpAddr {
        value.parse().unwrap()
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::parse(&["10.0.0.0/8"]).unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::default();
        let forged = headers(&["10.1.1.1"]);
        assert_eq!(
            none.client_address(Some(ip("203.0.113.5")), &forged),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(none.client_address(None, &forged), None);
    }

    #[test]
    fn an_untrusted_peer_is_the_client_even_with_a_header() {
        assert_eq!(
            proxies().client_address(Some(ip("203.0.113.5")), &headers(&["10.1.1.1"])),
            Some(ip("203.0.113.5"))
        );
    }

    #[test]
    fn a_trusted_proxy_is_believed_up_to_the_first_untrusted_hop() {
        // The client forged a first entry; the proxies appended the real ones after it.
        let chain = headers(&["10.9.9.9, 198.51.100.7", "10.2.2.2"]);
        assert_eq!(
            proxies().client_address(Some(ip("10.1.1.1")), &chain),
            Some(ip("198.51.100.7"))
        );
        // Ports and IPv6 brackets, and IPv4-mapped peers.
        let chain = headers(&["[2001:db8::7]:443"]);
        assert_eq!(
            proxies().client_address(Some(ip("::ffff:10.1.1.1")), &chain),
            Some(ip("2001:db8::7"))
        );
        // Every hop trusted: the leftmost.
        assert_eq!(
            proxies().client_address(Some(ip("10.1.1.1")), &headers(&["10.3.3.3"])),
            Some(ip("10.3.3.3"))
        );
        // Issue 21: no header from a trusted proxy was taken for the proxy itself, which an
        // allowlist naming the proxies' network then admitted. Unknown instead.
        assert_eq!(
            proxies().client_address(Some(ip("10.1.1.1")), &HeaderMap::new()),
            None
        );
    }

    #[test]
    fn an_unreadable_hop_makes_the_address_unknown() {
        for bad in ["not-an-ip", "198.51.100.7, ", "unknown"] {
            assert_eq!(
                proxies().client_address(Some(ip("10.1.1.1")), &headers(&[bad])),
                None,
                "{bad}"
            );
        }
        // Only hops that must be read count: garbage left of the client is ignored.
        assert_eq!(
            proxies().client_address(Some(ip("10.1.1.1")), &headers(&["junk, 198.51.100.7"])),
            Some(ip("198.51.100.7"))
        );
    }
}
