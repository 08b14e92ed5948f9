//! The path a gateway's request is matched by: the request target as the gateway saw it
//! (`/v1/orders/7?x=1`, or a gRPC `/orders.v1.Orders/Get`), decoded into its segments.
//!
//! The danger is a path that the rules read one way and the service behind reads another.
//! Services disagree about dot segments (`/admin/../public` is `/public` to some and an
//! `/admin` route to others), `;parameters`, trailing dots and spaces, repeated slashes,
//! escaped separators and double encoding, so a path that holds any of these is refused
//! outright rather than read one way: whichever reading the rules chose, some service would
//! read it another way and meet a different rule. So is a character that some services fold
//! or normalise to ASCII: a letter whose case is ASCII (`ı`, `ſ`, `K`, `ẞ`), or one whose NFKC
//! form holds ASCII (fullwidth `ａ` and `．`, the ligature `ﬁ`, `²`). Accented letters (`ā`,
//! `é`) are names of their own: a legacy service that reads paths in a Windows ANSI code page
//! (best-fit: `ā` as `a`) is not protected from them. What is left differs between
//! services only in case and in escapes of ordinary characters: escapes are decoded (services that do
//! not decode them read a name no rule of theirs is written for), and case is read both
//! ways by the rules ([`Routes::route`](super::Routes::route) refuses a path whose two
//! readings meet different rules). The upstream receives the target unchanged.

use std::fmt;

/// Why a request target is refused before any rule is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target is not a path starting with /")]
    NotAPath,
    #[error("the request target holds a # (a fragment is never sent)")]
    Fragment,
    #[error("the path holds an escape that is not two hexadecimal digits")]
    BadEscape,
    #[error("the path escapes a separator (%2F or %5C), which services read differently")]
    EscapedSeparator,
    #[error("the path is encoded twice (%25 followed by an escape)")]
    DoubleEncoded,
    #[error("the path holds a backslash, a control character or invalid UTF-8")]
    BadCharacter,
    #[error(
        "the path holds a character that some services fold or normalise to ASCII (ı, ſ, K, ａ, ﬁ …)"
    )]
    AsciiLookalike,
    #[error("the path has a segment . or .., or one ending in a dot or a space")]
    DotSegment,
    #[error("the path has ;parameters, which services read differently")]
    Parameters,
    #[error("the path has an empty segment (a repeated slash)")]
    EmptySegment,
    #[error("the path is longer than {MAX_TARGET} bytes")]
    TooLong,
}

/// The longest request target read; gateways limit theirs to a few kilobytes as well.
pub const MAX_TARGET: usize = 8 * 1024;

/// A request's path as rules match it: its decoded segments, as they are and in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    segments: Vec<String>,
    folded: Vec<String>,
    /// Whether the path ends in `/` after its last segment (`/files/`): some services read
    /// that as `/files`, others as the root of a `/files/` subtree.
    trailing_slash: bool,
}

impl RequestPath {
    /// Reads a request target: a path, perhaps followed by `?query`, in the raw form of the
    /// request line.
    pub fn parse(target: &str) -> Result<Self, PathError> {
        if target.len() > MAX_TARGET {
            return Err(PathError::TooLong);
        }
        if target.contains('#') {
            return Err(PathError::Fragment);
        }
        let path = target
            .split('?')
            .next()
            .filter(|path| path.starts_with('/'))
            .ok_or(PathError::NotAPath)?;
        let raw: Vec<&str> = path.split('/').skip(1).collect();
        let last = raw.len().saturating_sub(1);
        let mut segments = Vec::with_capacity(raw.len());
        let mut trailing_slash = false;
        for (i, raw) in raw.into_iter().enumerate() {
            let segment = decode_segment(raw)?;
            if segment.is_empty() {
                // A trailing slash ends the path; a repeated one is refused.
                if i == last {
                    trailing_slash = i > 0;
                    continue;
                }
                return Err(PathError::EmptySegment);
            }
            if segment.contains(';') {
                return Err(PathError::Parameters);
            }
            // `.`, `..`, and what some file systems and frameworks trim to them or to
            // another name (`...`, `admin.`, `admin `).
            if segment.ends_with(['.', ' ']) {
                return Err(PathError::DotSegment);
            }
            // `adm\u{131}n` is not `admin` to the rules' lower case, but is to Java's
            // equalsIgnoreCase and Go's EqualFold; `ａdmin` is to a service that normalises
            // NFKC.
            if segment.chars().any(folds_to_ascii) {
                return Err(PathError::AsciiLookalike);
            }
            segments.push(segment);
        }
        let folded = segments.iter().map(|s| s.to_lowercase()).collect();
        Ok(Self {
            segments,
            folded,
            trailing_slash,
        })
    }

    /// Whether the path ends in `/` after a segment (`/files/`, not `/`).
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The decoded segments, in order; none for `/`.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The same in lower case.
    pub fn folded(&self) -> &[String] {
        &self.folded
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

/// Whether `c` is a non-ASCII character that some reading makes ASCII: its NFKC form, or
/// either case of itself or of that form, or the opposite case of that case (`ẞ` lowers to
/// `ß`, which full case folding and upper-casing read as `ss`). (`é` is none of these: its
/// NFKC form is itself and its cases are `é` and `É`.)
fn folds_to_ascii(c: char) -> bool {
    use unicode_normalization::UnicodeNormalization;
    let cased_ascii = |r: char| {
        r.to_lowercase()
            .any(|l| l.is_ascii() || l.to_uppercase().any(|u| u.is_ascii()))
            || r.to_uppercase()
                .any(|u| u.is_ascii() || u.to_lowercase().any(|l| l.is_ascii()))
    };
    if c.is_ascii() {
        return false;
    }
    cased_ascii(c)
        || std::iter::once(c)
            .nfkc()
            .any(|r| r.is_ascii() || cased_ascii(r))
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
    fn escapes_are_decoded_and_case_kept() {
        assert_eq!(path("/admin/users"), "/admin/users");
        assert_eq!(path("/admin/users/"), "/admin/users");
        assert!(
            RequestPath::parse("/admin/users/")
                .expect("path")
                .trailing_slash()
        );
        assert!(
            !RequestPath::parse("/admin/users")
                .expect("path")
                .trailing_slash()
        );
        assert!(!RequestPath::parse("/").expect("path").trailing_slash());
        assert_eq!(path("/%61dmin/Users"), "/admin/Users");
        assert_eq!(path("/admin/users?x=/public&y=.."), "/admin/users");
        assert_eq!(
            RequestPath::parse("/Admin/USERS").expect("path").folded(),
            ["admin", "users"]
        );
        assert_eq!(path("/"), "/");
        assert_eq!(path("/%25"), "/%");
        assert_eq!(path("/a%20b/c"), "/a b/c");
        // Letters of other scripts, with or without accents, are names like any other.
        assert_eq!(path("/caf%C3%A9/%E6%97%A5%E6%9C%AC"), "/café/日本");
        assert_eq!(path("/Café"), "/Café");
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
            ("/..", PathError::DotSegment),
            ("/admin/../public/x", PathError::DotSegment),
            ("/admin/%2e%2e/public/x", PathError::DotSegment),
            ("/admin/.%2E/public/x", PathError::DotSegment),
            ("/./admin", PathError::DotSegment),
            ("/public/.../admin", PathError::DotSegment),
            ("/public/.. /admin", PathError::DotSegment),
            ("/admin./users", PathError::DotSegment),
            ("/admin%2e/users", PathError::DotSegment),
            ("/admin%20/users", PathError::DotSegment),
            ("/users/public./avatar", PathError::DotSegment),
            ("/admin/..;/public/x", PathError::Parameters),
            ("/admin/..%3B/public/x", PathError::Parameters),
            ("/admin;jsessionid=1/users", PathError::Parameters),
            ("//admin", PathError::EmptySegment),
            ("/public//admin", PathError::EmptySegment),
            ("/public#/../admin", PathError::Fragment),
            ("/adm%C4%B1n/users", PathError::AsciiLookalike),
            ("/%C5%BFecret", PathError::AsciiLookalike),
            ("/%E2%84%AAey", PathError::AsciiLookalike),
            ("/%C4%B0d", PathError::AsciiLookalike),
            // Capital sharp s: lowers to ß, which uppers to SS.
            ("/ma%E1%BA%9Ee", PathError::AsciiLookalike),
            // NFKC: fullwidth a, fullwidth solidus and full stop, the ligature fi, ².
            ("/%EF%BD%81dmin/users", PathError::AsciiLookalike),
            ("/ａdmin/users", PathError::AsciiLookalike),
            (
                "/public/%EF%BC%8F..%EF%BC%8Fadmin",
                PathError::AsciiLookalike,
            ),
            (
                "/public/%EF%BC%8E%EF%BC%8E/admin",
                PathError::AsciiLookalike,
            ),
            ("/%EF%AC%81les", PathError::AsciiLookalike),
            ("/v%C2%B2/admin", PathError::AsciiLookalike),
            ("/public?#", PathError::Fragment),
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

    /// One way a client could send `segment`: characters escaped in either case of hex,
    /// as the choices say.
    fn spell(segment: &str, choices: &[u8]) -> String {
        let mut choice = choices.iter().copied().cycle();
        segment
            .chars()
            .map(|c| match choice.next().unwrap_or_default() % 3 {
                0 => format!("%{:02X}", u32::from(c)),
                1 => format!("%{:02x}", u32::from(c)),
                _ => c.to_string(),
            })
            .collect()
    }

    proptest::proptest! {
        /// However its characters are escaped, a path reads as itself.
        #[test]
        fn every_spelling_of_any_path_reads_as_that_path(
            segments in proptest::collection::vec("[a-zA-Z0-9_-]([a-zA-Z0-9._-]{0,6}[a-zA-Z0-9_-])?", 0..6),
            choices in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            query in "(\\?[a-z=&/.%0-9#]{0,12})?",
        ) {
            let canonical = format!("/{}", segments.join("/"));
            let spelled: Vec<String> = segments
                .iter()
                .enumerate()
                .map(|(i, segment)| spell(segment, choices.get(i..).unwrap_or(&choices)))
                .collect();
            let target = format!("/{}{query}", spelled.join("/"));
            let read = RequestPath::parse(&target);
            if query.contains('#') {
                proptest::prop_assert_eq!(read, Err(PathError::Fragment));
            } else {
                proptest::prop_assert_eq!(
                    read.as_ref().map(ToString::to_string),
                    Ok(canonical.clone()),
                    "{} read from {}", canonical, target
                );
            }
        }

        /// A path with a dot segment, a ;parameter, a trailing dot or a repeated slash,
        /// in any spelling, is refused: never read as some other path.
        #[test]
        fn any_ambiguous_segment_anywhere_is_refused(
            before in proptest::collection::vec("[a-z0-9]{1,5}", 0..4),
            after in proptest::collection::vec("[a-z0-9]{1,5}", 0..4),
            trick in proptest::sample::select(vec![
                ".", "..", "%2e", "%2E%2e", ".%2e", "..;", "..%3b", "a;b", "x.", "x%2e", "x ",
                "x%20", "...", "", ". ",
            ]),
        ) {
            let mut segments = before.clone();
            segments.push(trick.to_owned());
            segments.extend(after.clone());
            let target = format!("/{}", segments.join("/"));
            // A trailing slash is the one empty segment allowed.
            if !(trick.is_empty() && after.is_empty()) {
                proptest::prop_assert!(RequestPath::parse(&target).is_err(), "{}", target);
            }
        }

        #[test]
        fn no_input_panics_the_reader(target in "\\PC{0,64}") {
            let _ = RequestPath::parse(&target);
        }
    }
}
