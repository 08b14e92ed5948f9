//! Fuzz targets: every parser that request bytes or command-line text can reach, each as a
//! function of raw bytes that fails only by panicking. `benches/fuzz.rs`, a stable harness
//! (no nightly toolchain needed), runs them over millions of random and mutated inputs; the
//! proptests below run a bounded number in `cargo test`. Not part of the API.

use chrono::Duration;

use crate::authority::{PageTokenCodec, decode_time_position};
use crate::client::TrustedProxies;
use crate::domain::{
    AccountId, AllowedNetworks, ApiVersion, Description, DisplayName, Labels, PermissionSet,
    PrincipalId, RevokeReason, TokenId, TokenName, TokenSecret, now, validate_expiry,
};
use crate::grpc::convert;

/// One parser (or a family of parsers fed the same input).
pub struct Target {
    pub name: &'static str,
    /// Valid or nearly valid inputs for mutation to start from.
    pub seeds: &'static [&'static str],
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "presented_token",
        seeds: &[
            "tka_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH",
            "tka_",
            "tka_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaé",
        ],
        run: presented_token,
    },
    Target {
        name: "credential_headers",
        seeds: &["Bearer tka_abc", "bearer  x", "Basic x", "Bearer"],
        run: credential_headers,
    },
    Target {
        name: "ids",
        seeds: &["tok_0123456789abcdef0123456789", "prn_x", "acc_"],
        run: ids,
    },
    Target {
        name: "page_token",
        seeds: &[
            "1700000000000000:tok_0123456789abcdef0123456789",
            "-1:x",
            ":",
        ],
        run: page_token,
    },
    Target {
        name: "names",
        seeds: &["ci deploy", " x ", "a\u{0}b"],
        run: names,
    },
    Target {
        name: "labels",
        seeds: &["team\npayments\nenv\nprod", "Team\nx", "a.b-c_d\n"],
        run: labels,
    },
    Target {
        name: "scopes",
        seeds: &["tokens.read,orders.write", "a..b", "orders:read:x"],
        run: scopes,
    },
    Target {
        name: "timestamps_durations",
        seeds: &[
            "\u{7f}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\0\0\0\0",
            "00000000",
        ],
        run: timestamps_durations,
    },
    Target {
        name: "field_mask",
        seeds: &["name,scopes", "labels", ",,"],
        run: field_mask,
    },
    Target {
        name: "enums",
        seeds: &["\u{1}\0\0\0", "\u{ff}\u{ff}\u{ff}\u{7f}"],
        run: enums,
    },
    Target {
        name: "tokenctl_expiry",
        seeds: &[
            "30d",
            "999999999999y",
            "2027-01-01T00:00:00Z",
            "never",
            "1year 2days",
        ],
        run: tokenctl_expiry,
    },
    Target {
        name: "networks",
        seeds: &[
            "10.0.0.0/8\n2001:db8::/32\n192.0.2.7",
            "10.1.2.3/8",
            "::ffff:10.0.0.0/104",
            "1.2.3.4/33",
        ],
        run: networks,
    },
    Target {
        name: "forwarded_for",
        seeds: &[
            "10.9.9.9, 198.51.100.7",
            "[2001:db8::7]:443",
            "198.51.100.7, ",
            "unknown",
        ],
        run: forwarded_for,
    },
    Target {
        name: "gateway_path",
        seeds: &[
            "/v1/orders/7?x=1",
            "/public/%2e%2e/admin",
            "/a/..;/b//c./%2F",
            "/%252e%25",
            "/orders.v1.OrdersService/Get",
        ],
        run: gateway_path,
    },
    Target {
        name: "gateway_rules",
        seeds: &[
            "[[route]]\npath = \"/a/**\"\nscopes = [\"x.read\"]\n",
            "[[route]]\nmethods = [\"GET\"]\npath = \"/*/b\"\npublic = true\n[default]\npublic = true\n",
        ],
        run: gateway_rules,
    },
];

/// Rules every gateway_path input is matched against.
const FUZZ_RULES: &str = "[[route]]\npath = \"/public/**\"\npublic = true\n\
    [[route]]\nmethods = [\"GET\"]\npath = \"/v1/*/items/**\"\nscopes = [\"orders.read\"]\n";

/// Input as text, the way a gRPC string field or a command line would deliver it (lossy:
/// protobuf strings are UTF-8, so invalid bytes never arrive as such).
fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

fn presented_token(input: &[u8]) {
    let text = text(input);
    let _ = TokenSecret::hash_presented(&text);
    let _ = TokenSecret::parse(&text);
}

fn credential_headers(input: &[u8]) {
    let text = text(input);
    let _ = crate::credential::presented_token([Some(text.as_str())], None);
    let _ = crate::credential::presented_token(None, [Some(text.as_str())]);
    if let Ok(value) = http::HeaderValue::from_bytes(input) {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", value.clone());
        headers.insert("x-api-key", value);
        let _ = crate::credential::from_headers(&headers);
    }
}

/// Allowlists (one entry per line) and client addresses, checked against each other.
fn networks(input: &[u8]) {
    let text = text(input);
    let entries: Vec<&str> = text.lines().collect();
    let parsed = AllowedNetworks::parse(&entries, "allowed_networks");
    for entry in &entries {
        if let Ok(Some(address)) = convert::opt_ip_address(entry, "client_address")
            && let Ok(list) = &parsed
        {
            let _ = list.permits(Some(address));
        }
    }
}

/// X-Forwarded-For as a trusted proxy delivers it (every hop is read).
fn forwarded_for(input: &[u8]) {
    let Ok(value) = http::HeaderValue::from_bytes(input) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.append("x-forwarded-for", value);
    let everyone = TrustedProxies::parse(&["0.0.0.0/0", "::/0"]).unwrap_or_default();
    let _ = everyone.client_address(Some(std::net::Ipv4Addr::LOCALHOST.into()), &headers);
}

fn ids(input: &[u8]) {
    let text = text(input);
    let _ = TokenId::parse(&text, "id");
    let _ = PrincipalId::parse(&text, "id");
    let _ = AccountId::parse(&text, "id");
}

fn page_token(input: &[u8]) {
    let codec = PageTokenCodec::new([7; 32]);
    let text = text(input);
    // As a page token a caller sends back ...
    let _ = codec.decode(&text, "tokens", "filters");
    // ... and as the position inside a genuine one (only the server writes those, but the
    // parser must hold anyway).
    let genuine = codec.encode("tokens", "filters", &text);
    if let Ok(position) = codec.decode(&genuine, "tokens", "filters") {
        let _ = decode_time_position(&position, TokenId::parse);
    }
}

fn names(input: &[u8]) {
    let text = text(input);
    let _ = TokenName::parse(&text, "name");
    let _ = DisplayName::parse(&text, "display_name");
    let _ = Description::parse(&text, "description");
    let _ = RevokeReason::parse(&text, "reason");
    let _ = ApiVersion::parse(&text, "api_version");
}

fn labels(input: &[u8]) {
    let text = text(input);
    let parts: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let pairs: Vec<(&String, &String)> = parts
        .chunks(2)
        .filter_map(|pair| Some((pair.first()?, pair.get(1)?)))
        .collect();
    let _ = Labels::parse(pairs, "labels");
}

fn scopes(input: &[u8]) {
    let text = text(input);
    let values: Vec<&str> = text.split(',').collect();
    let _ = PermissionSet::parse(&values, "scopes");
}

/// The first 12 bytes as seconds and nanos, as a protobuf Timestamp or Duration carries them.
fn timestamps_durations(input: &[u8]) {
    let mut seconds = [0u8; 8];
    let mut nanos = [0u8; 4];
    for (slot, byte) in seconds.iter_mut().chain(nanos.iter_mut()).zip(input) {
        *slot = *byte;
    }
    let seconds = i64::from_le_bytes(seconds);
    let nanos = i32::from_le_bytes(nanos);
    let at = now();
    if let Ok(when) = convert::parse_timestamp(&prost_types::Timestamp { seconds, nanos }, "t") {
        let _ = validate_expiry(when, at, "expire_time");
    }
    if let Ok(duration) = convert::parse_duration(&prost_types::Duration { seconds, nanos }, "d") {
        // What the use cases do with a duration: add it to now, checked.
        let _ = at.checked_add_signed(duration);
        let _ = duration > Duration::zero();
    }
}

fn field_mask(input: &[u8]) {
    let text = text(input);
    let mask = prost_types::FieldMask {
        paths: text.split(',').map(str::to_owned).collect(),
    };
    let _ = convert::mask_paths(Some(&mask), &["name", "scopes", "labels", "expire_time"]);
}

fn enums(input: &[u8]) {
    let mut bytes = [0u8; 4];
    for (slot, byte) in bytes.iter_mut().zip(input) {
        *slot = *byte;
    }
    let value = i32::from_le_bytes(bytes);
    let _ = convert::parse_token_state(value);
    let _ = convert::parse_principal_kind(value);
}

fn tokenctl_expiry(input: &[u8]) {
    let text = text(input);
    if let Ok(Some(crate::proto::create_token_request::Expiry::Ttl(ttl))) =
        crate::tokenctl::expiry::parse(&text)
        && let Ok(ttl) = std::time::Duration::try_from(ttl)
    {
        let _ = crate::tokenctl::expiry::from_now(ttl, "--expires");
    }
}

fn gateway_path(input: &[u8]) {
    let text = text(input);
    if let Ok(path) = crate::gateway::RequestPath::parse(&text)
        && let Ok(routes) = crate::gateway::Routes::parse(FUZZ_RULES)
    {
        let _ = routes.route("GET", &path);
    }
}

fn gateway_rules(input: &[u8]) {
    if let Ok(routes) = crate::gateway::Routes::parse(&text(input))
        && let Ok(path) = crate::gateway::RequestPath::parse("/a/b")
    {
        let _ = routes.route("GET", &path);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn no_target_panics_on_random_bytes(
            target in 0..TARGETS.len(),
            input in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            (TARGETS[target].run)(&input);
        }

        #[test]
        fn no_target_panics_on_random_text(target in 0..TARGETS.len(), input in any::<String>()) {
            (TARGETS[target].run)(input.as_bytes());
        }

        #[test]
        fn no_target_panics_on_mutated_seeds(
            target in 0..TARGETS.len(),
            seed in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            insert in any::<char>(),
            cut in any::<bool>(),
        ) {
            let target = &TARGETS[target];
            let seed = target.seeds[seed.index(target.seeds.len())];
            let mut chars: Vec<char> = seed.chars().collect();
            let at = at.index(chars.len() + 1);
            if cut {
                chars.truncate(at);
            } else {
                chars.insert(at, insert);
            }
            let input: String = chars.into_iter().collect();
            (target.run)(input.as_bytes());
        }
    }

    #[test]
    fn every_target_runs_its_seeds() {
        for target in TARGETS {
            for seed in target.seeds {
                (target.run)(seed.as_bytes());
            }
        }
    }
}
