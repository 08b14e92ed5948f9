//! Client-address allowlists: the networks a token may be used from.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::ValidationError;

/// The most networks one token may list.
pub const MAX_ALLOWED_NETWORKS: usize = 64;

/// The IPv4 and IPv6 networks a token may be used from, sorted and without duplicates;
/// empty: from anywhere.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// Parses a list a caller sent (`field` names it, and the entry, in errors). Each entry is
    /// a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (one host).
    pub fn parse<S: AsRef<str>>(values: &[S], field: &str) -> Result<Self, ValidationError> {
        if values.len() > MAX_ALLOWED_NETWORKS {
            return Err(ValidationError::new(
                field,
                format!("at most {MAX_ALLOWED_NETWORKS} entries"),
            ));
        }
        let mut networks = values
            .iter()
            .enumerate()
            .map(|(i, value)| parse_network(value.as_ref(), &format!("{field}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        networks.sort();
        networks.dedup();
        Ok(Self(networks))
    }

    /// Whether nothing is listed (the token may be used from anywhere).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a token with this allowlist may be used by a client at `address`: always when
    /// the list is empty; otherwise only from a listed network, and never from an unknown
    /// address. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) counts as its IPv4 address.
    pub fn permits(&self, address: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(address) = address else {
            return false;
        };
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    /// Whether every address this list permits, `outer` permits too: always when `outer` is
    /// empty (anywhere); otherwise this list must be non-empty and each of its networks lie
    /// inside one of `outer`'s.
    pub fn is_within(&self, outer: &AllowedNetworks) -> bool {
        if outer.0.is_empty() {
            return true;
        }
        !self.0.is_empty()
            && self
                .0
                .iter()
                .all(|network| outer.0.iter().any(|o| o.contains(network)))
    }

    /// The networks in CIDR notation, e.g. `10.0.0.0/8`.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Debug for AllowedNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

fn parse_network(value: &str, field: &str) -> Result<IpNet, ValidationError> {
    let value = value.trim();
    let network = match value.parse::<IpNet>() {
        Ok(network) => network,
        Err(_) => value.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            // The value is not quoted back: what was typed there may be anything, a secret
            // pasted in the wrong field included.
            ValidationError::new(
                field,
                "is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32, nor an IP address",
            )
        })?,
    };
    if network.trunc() != network {
        return Err(ValidationError::new(
            field,
            format!(
                "{value} has bits set past its prefix length: did you mean {}?",
                network.trunc()
            ),
        ));
    }
    let ipv4_mapped = match network {
        IpNet::V6(v6) => v6.addr().to_ipv4_mapped().is_some(),
        IpNet::V4(_) => false,
    };
    if ipv4_mapped {
        return Err(ValidationError::new(
            field,
            format!("{value} is an IPv4-mapped IPv6 network: write it as IPv4"),
        ));
    }
    Ok(network)
}

/// The group a client address belongs to, for limits per client: an IPv4 address itself
/// (an IPv4-mapped IPv6 one as IPv4), an IPv6 address its /64, the smallest network a
/// single subscriber is usually given, so that one host cannot spread over 2^64 addresses
/// to escape a limit.
pub fn address_group(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_groups_are_ipv4_addresses_and_ipv6_slash_64s() {
        let group = |text: &str| address_group(text.parse().unwrap()).to_string();
        assert_eq!(group("192.0.2.7"), "192.0.2.7");
        assert_eq!(group("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(group("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(group("2001:db8:1:2:ffff::1"), "2001:db8:1:2::");
        assert_ne!(group("2001:db8:1:3::1"), group("2001:db8:1:2::1"));
    }

    fn networks(values: &[&str]) -> AllowedNetworks {
        AllowedNetworks::parse(values, "allowed_networks").unwrap()
    }

    #[test]
    fn a_list_lies_within_another_only_network_by_network() {
        let outer = networks(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(networks(&["10.1.0.0/16", "2001:db8:1::/48"]).is_within(&outer));
        assert!(networks(&["10.0.0.0/8"]).is_within(&outer));
        assert!(!networks(&["10.0.0.0/7"]).is_within(&outer));
        assert!(!networks(&["10.1.0.0/16", "192.0.2.1"]).is_within(&outer));
        assert!(!AllowedNetworks::default().is_within(&outer), "anywhere");
        assert!(AllowedNetworks::default().is_within(&AllowedNetworks::default()));
        assert!(outer.is_within(&AllowedNetworks::default()));
    }

    fn ip(value: &str) -> Option<IpAddr> {
        Some(value.parse().unwrap())
    }

    #[test]
    fn cidrs_and_bare_addresses_parse_into_a_sorted_set() {
        let parsed = networks(&["2001:db8::/32", "10.0.0.0/8", " 192.0.2.7 ", "10.0.0.0/8"]);
        assert_eq!(
            parsed.to_strings(),
            ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
        );
    }

    #[test]
    fn an_empty_list_permits_everyone_even_without_an_address() {
        let open = AllowedNetworks::default();
        assert!(open.permits(None));
        assert!(open.permits(ip("203.0.113.9")));
    }

    #[test]
    fn a_list_permits_only_addresses_inside_it() {
        let list = networks(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(list.permits(ip("10.200.3.4")));
        assert!(list.permits(ip("2001:db8:1::7")));
        assert!(
            list.permits(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!list.permits(ip("11.0.0.1")));
        assert!(!list.permits(ip("2001:db9::1")));
        assert!(!list.permits(None), "no address, no entry");
    }

    #[test]
    fn malformed_entries_are_refused_naming_the_entry() {
        for (bad, hint) in [
            ("10.0.0.0/33", "not a CIDR"),
            ("10.0.0/8", "not a CIDR"),
            ("example.com", "not a CIDR"),
            ("", "not a CIDR"),
            ("10.1.2.3/8", "did you mean 10.0.0.0/8"),
            ("::ffff:10.0.0.0/104", "IPv4-mapped"),
        ] {
            let error =
                AllowedNetworks::parse(&["10.0.0.0/8", bad], "allowed_networks").expect_err(bad);
            assert_eq!(error.field, "allowed_networks[1]", "{bad}");
            assert!(error.to_string().contains(hint), "{bad}: {error}");
        }
    }

    /// Whether `address` lies in `network/prefix`, by the definition: the top `prefix` bits
    /// agree.
    fn inside(network: u128, prefix: u32, address: u128, width: u32) -> bool {
        let shift = width - prefix;
        shift >= width || (network >> shift) == (address >> shift)
    }

    proptest::proptest! {
        #[test]
        fn membership_is_the_top_bits_agreeing(
            v4 in proptest::prelude::any::<bool>(),
            network in proptest::prelude::any::<u128>(),
            prefix in 0u32..=128,
            address in proptest::prelude::any::<u128>(),
            near in proptest::prelude::any::<bool>(),
        ) {
            let (width, network, address) = if v4 {
                (32, network & 0xffff_ffff, address & 0xffff_ffff)
            } else {
                (128, network, address)
            };
            let prefix = prefix % (width + 1);
            // Half the cases an address close to the network, so that both answers occur.
            let address = if near { network ^ (address & 0xff) } else { address };
            let shift = width - prefix;
            let network = if shift >= width { 0 } else { (network >> shift) << shift };
            let (text, ip): (String, IpAddr) = if v4 {
                let n = std::net::Ipv4Addr::from(u32::try_from(network).unwrap());
                (format!("{n}/{prefix}"), std::net::Ipv4Addr::from(u32::try_from(address).unwrap()).into())
            } else {
                let n = std::net::Ipv6Addr::from(network);
                (format!("{n}/{prefix}"), std::net::Ipv6Addr::from(address).into())
            };
            // IPv4-mapped addresses are matched as IPv4 (a unit test above): not this model's.
            proptest::prop_assume!(ip.to_canonical() == ip);
            match AllowedNetworks::parse(&[text.as_str()], "n") {
                Ok(list) => proptest::prop_assert_eq!(
                    list.permits(Some(ip)),
                    inside(network, prefix, address, width)
                ),
                // Only IPv4-mapped IPv6 networks are refused.
                Err(error) => proptest::prop_assert!(error.to_string().contains("IPv4-mapped"), "{text}: {error}"),
            }
        }
    }

    #[test]
    fn too_many_entries_are_refused() {
        let many: Vec<String> = (0..=MAX_ALLOWED_NETWORKS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert!(AllowedNetworks::parse(&many, "allowed_networks").is_err());
        assert!(AllowedNetworks::parse(&many[1..], "allowed_networks").is_ok());
    }
}
