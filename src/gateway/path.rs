//! The path a gateway's request is matched by: the request target as the gateway saw it
//! (`/v1/orders/7?x=1`, or a gRPC `/orders.v1.Orders/Get`), reduced to the segments every
//! upstream would agree on.
//!
//! The danger is a path that the rules read one way and the service behind reads another:
//! `/public/../admin`, `/public/%2e%2e/admin`, `/ADMIN`, `/admin.`, `//admin`, `/admin;x`
//! must never match a laxer rule than `/admin`'s. So the matcher reads every such spelling
//! as the route it could reach (dot segments resolved, escapes decoded, repeated slashes
//! merged, case folded, `;parameters` and trailing dots dropped), and refuses what cannot
//! be read one way: an escaped `/` or `\`, a backslash, control characters, a malformed or
//! doubly encoded escape, invalid UTF-8, a segment of only dots and spaces, `..` above the
//! root, or a target that is not a path. Matching the folded form can only make a request meet a stricter rule than the
//! service meant, never a laxer one; the upstream still receives the target unchanged.

use std::fmt;

/// Why a request target is refused before any rule is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target is not a path starting with /")]
    NotAPath,
    #[error("the path holds an escape that is not two hexadecimal digits")]
    BadEscape,
    #[error("the path escapes a separator (%2F or %5C), which services read differently")]
    EscapedSeparator,
    #[error("the path is encoded twice (%25 followed by an escape)")]
    DoubleEncoded,
    #[error("the path holds a backslash, a control character or invalid UTF-8")]
    BadCharacter,
    #[error("the path has a segment of only dots and spaces other than . and ..")]
    DotSegment,
    #[error("the path climbs above the root with ..")]
    AboveRoot,
    #[error("the path is longer than {MAX_TARGET} bytes")]
    TooLong,
}

/// The longest request target read; gateways limit theirs to a few kilobytes as well.
pub const MAX_TARGET: usize = 8 * 1024;

/// A request's path as rules match it: decoded, normalised, lower-case segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    segments: Vec<String>,
}

impl RequestPath {
    /// Reads a request target: a path, perhaps followed by `?query` or `#fragment`, in the
    /// raw form of the request line.
    pub fn parse(target: &str) -> Result<Self, PathError> {
        if target.len() > MAX_TARGET {
            return Err(PathError::TooLong);
        }
        let path = target
            .split(['?', '#'])
            .next()
            .filter(|path| path.starts_with('/'))
            .ok_or(PathError::NotAPath)?;
        let mut segments: Vec<String> = Vec::new();
        for raw in path.split('/') {
            let segment = decode_segment(raw)?;
            // `;parameters` end a segment for servlet containers and some routers.
            let segment = segment.split(';').next().unwrap_or_default();
            // A trailing dot or space is dropped by some file systems and frameworks; a
            // segment of nothing else (`...`, `.. `) is read as `..` by some: refused.
            let segment = match segment {
                "" | "." | ".." => segment,
                _ => match segment.trim_end_matches(['.', ' ']) {
                    "" => return Err(PathError::DotSegment),
                    trimmed => trimmed,
                },
            };
            match segment {
                // Repeated slashes are merged by most servers; `.` is this directory.
                "" | "." => {}
                ".." => {
                    segments.pop().ok_or(PathError::AboveRoot)?;
                }
                _ => segments.push(segment.to_lowercase()),
            }
        }
        Ok(Self { segments })
    }

    /// The segments, in order; none for `/`.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

impl fmt::Display for RequestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.segments {
            write!(f, "/{segment}")?;
        }
        Ok(())
    }
}

/// One segment's text, percent-decoded, refusing what services could read differently.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'%' {
            decoded.push(byte);
            continue;
        }
        let value = match rest {
            [high, low, tail @ ..] => {
                rest = tail;
                hex(*high)
                    .zip(hex(*low))
                    .map(|(high, low)| high * 16 + low)
                    .ok_or(PathError::BadEscape)?
            }
            _ => return Err(PathError::BadEscape),
        };
        match value {
            b'/' | b'\\' => return Err(PathError::EscapedSeparator),
            // `%25` then an escape: a service that decodes twice reads a different path.
            b'%' if matches!(rest, [high, low, ..] if hex(*high).is_some() && hex(*low).is_some()) =>
            {
                return Err(PathError::DoubleEncoded);
            }
            _ => decoded.push(value),
        }
    }
    let text = String::from_utf8(decoded).map_err(|_| PathError::BadCharacter)?;
    if text.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(PathError::BadCharacter);
    }
    Ok(text)
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(target: &str) -> String {
        RequestPath::parse(target).expect("a path").to_string()
    }

    #[test]
    fn every_spelling_of_a_route_reads_as_that_route() {
        for target in [
            "/admin/users",
            "/ADMIN/Users",
            "/admin//users",
            "//admin/users/",
            "/admin/./users",
            "/public/../admin/users",
            "/public/%2e%2e/admin/users",
            "/public/%2E%2E/admin/users",
            "/public/.%2e/admin/users",
            "/%61dmin/users",
            "/admin./users",
            "/admin%2e/users",
            "/admin;jsessionid=1/users",
            "/admin /users",
            "/admin/users?x=/public",
            "/admin/users#/public",
        ] {
            assert_eq!(path(target), "/admin/users", "{target}");
        }
    }

    #[test]
    fn what_services_read_differently_is_refused() {
        for (target, error) in [
            ("/public%2F..%2Fadmin", PathError::EscapedSeparator),
            ("/public%2f..%2fadmin", PathError::EscapedSeparator),
            ("/public%5C..%5Cadmin", PathError::EscapedSeparator),
            ("/public\\..\\admin", PathError::BadCharacter),
            ("/admin%00", PathError::BadCharacter),
            ("/admin%0a", PathError::BadCharacter),
            ("/%ff", PathError::BadCharacter),
            ("/%2", PathError::BadEscape),
            ("/%zz", PathError::BadEscape),
            ("/%252e%252e/admin", PathError::DoubleEncoded),
            ("/public/.../admin", PathError::DotSegment),
            ("/public/.. /admin", PathError::DotSegment),
            ("/public/%2e%2e%20/admin", PathError::DotSegment),
            ("/..", PathError::AboveRoot),
            ("/a/../../admin", PathError::AboveRoot),
            ("admin", PathError::NotAPath),
            ("http://host/admin", PathError::NotAPath),
            ("*", PathError::NotAPath),
            ("", PathError::NotAPath),
        ] {
            assert_eq!(RequestPath::parse(target), Err(error), "{target}");
        }
        let long = format!("/{}", "a".repeat(MAX_TARGET));
        assert_eq!(RequestPath::parse(&long), Err(PathError::TooLong));
    }

    /// One way a service could be sent `segment`: case changed, characters escaped, a
    /// trailing dot or space, `;parameters`, a detour through another segment and back, a
    /// `.` segment, a doubled slash, as the choices say.
    fn spell(segment: &str, choices: &[u8]) -> String {
        let mut choice = choices.iter().copied().cycle();
        let mut next = move || choice.next().unwrap_or_default();
        let mut spelled = String::new();
        match next() % 4 {
            0 => spelled.push_str("./"),
            1 => spelled.push_str("detour/../"),
            2 => spelled.push('/'),
            _ => {}
        }
        for c in segment.chars() {
            match next() % 4 {
                0 => spelled.push_str(&format!("%{:02X}", u32::from(c))),
                1 => spelled.push_str(&format!("%{:02x}", u32::from(c))),
                2 => spelled.push(c.to_ascii_uppercase()),
                _ => spelled.push(c),
            }
        }
        match next() % 5 {
            0 => spelled.push('.'),
            1 => spelled.push_str("%2e"),
            2 => spelled.push_str("%20"),
            3 => spelled.push_str(";jsessionid=x"),
            _ => {}
        }
        spelled
    }

    proptest::proptest! {
        /// The property the rules rest on: however a path is spelled, it reads as that
        /// path, so it meets the rule written for it and no other.
        #[test]
        fn every_spelling_of_any_path_reads_as_that_path(
            segments in proptest::collection::vec("[a-z0-9_-]([a-z0-9._-]{0,6}[a-z0-9_-])?", 0..6),
            choices in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            query in "(\\?[a-z=&/.%0-9]{0,12})?",
        ) {
            let canonical = format!("/{}", segments.join("/"));
            let spelled: Vec<String> = segments
                .iter()
                .enumerate()
                .map(|(i, segment)| spell(segment, choices.get(i..).unwrap_or(&choices)))
                .collect();
            let target = format!("/{}{query}", spelled.join("/"));
            let read = RequestPath::parse(&target);
            proptest::prop_assert_eq!(
                read.as_ref().map(ToString::to_string),
                Ok(canonical.clone()),
                "{} read from {}", canonical, target
            );
        }

        #[test]
        fn no_input_panics_the_reader(target in "\\PC{0,64}") {
            let _ = RequestPath::parse(&target);
        }
    }

    #[test]
    fn grpc_paths_keep_their_dots_and_lose_their_case() {
        assert_eq!(
            path("/orders.v1.OrdersService/GetOrder"),
            "/orders.v1.ordersservice/getorder"
        );
        assert_eq!(path("/"), "/");
        assert_eq!(path("/%25"), "/%");
    }
}
