//! The token format: `tka_<body><checksum>`.
//!
//! * `body` is 32 base62 characters from the OS CSPRNG (≈190 bits).
//! * `checksum` is the CRC32 of `tka_<body>`, in 6 fixed-width base62 characters, so that a
//!   typo or a random string is rejected without touching storage, and secret scanners can
//!   recognise our tokens.
//!
//! Only the SHA-256 of the whole token is ever stored. The plaintext lives in a
//! [`TokenSecret`], whose `Debug` is redacted so that it cannot slip into a log line.

use std::fmt;

use sha2::{Digest, Sha256};

use super::random::{base62_fixed, is_base62, random_base62};

/// The prefix of every token this service issues (`tka` for "token authority").
pub const TOKEN_PREFIX: &str = "tka_";
const BODY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + BODY_LEN + CHECKSUM_LEN;

/// Why a string is not a token of ours. Deliberately carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the token is empty")]
    Empty,
    #[error("the token does not have the expected prefix")]
    WrongPrefix,
    #[error("the token does not have the expected length")]
    WrongLength,
    #[error("the token contains characters that are not allowed")]
    InvalidCharacters,
    #[error("the token's checksum does not match")]
    BadChecksum,
}

/// A well-formed plaintext token. Construct it by [`TokenSecret::generate`] or
/// [`TokenSecret::parse`]; both guarantee the format above.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// A new random token.
    pub fn generate() -> Self {
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        token.push_str(&random_base62(BODY_LEN));
        // Base62 digits: ASCII, so always UTF-8.
        token.extend(checksum(&token).map(char::from));
        Self(token)
    }

    /// Accepts the token bare, as `Bearer <token>` (any case of `Bearer`), and with
    /// surrounding whitespace. Checks shape and checksum only; no storage is involved.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        canonical(input).map(|token| Self(token.to_owned()))
    }

    /// The hash of a presented token, checked as [`TokenSecret::parse`] does, without
    /// copying the secret: the verification hot path.
    pub fn hash_presented(input: &str) -> Result<SecretHash, ParseError> {
        canonical(input).map(hash)
    }

    /// Whether a well-formed token appears anywhere in `text`, whatever surrounds it (a
    /// URL's `%3Dtka_…`, `key_tka_…`, trailing characters), as it is or percent-decoded any
    /// number of times (`tka%5F…`, `tka%255F…`): for free text that is stored, which must
    /// never hold a secret.
    pub fn appears_in(text: &str) -> bool {
        // Decoded again and again until nothing changes: `tka%255F…` is `tka%5F…` once
        // decoded, and `tka_…` twice. Each round that changes anything shortens the text, so
        // this ends within `text.len() / 2` rounds.
        let mut text = std::borrow::Cow::Borrowed(text);
        loop {
            if appears_verbatim(&text) {
                return true;
            }
            if !text.contains('%') {
                return false;
            }
            let decoded = percent_encoding::percent_decode_str(&text)
                .decode_utf8_lossy()
                .into_owned();
            if decoded == *text {
                return false;
            }
            text = std::borrow::Cow::Owned(decoded);
        }
    }

    /// The plaintext. Call it only to hand the secret to its owner, once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The only form of the secret that is stored.
    pub fn hash(&self) -> SecretHash {
        hash(&self.0)
    }

    /// A non-secret hint to recognise the token by: the prefix and the last 4 characters.
    pub fn display_hint(&self) -> String {
        // Every TokenSecret is ASCII (generated or parsed), so the last four bytes are the
        // last four characters; `get` keeps this total anyway.
        let tail = self.0.get(self.0.len().saturating_sub(4)..).unwrap_or("");
        format!("{TOKEN_PREFIX}…{tail}")
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSecret({})", self.display_hint())
    }
}

/// SHA-256 of a whole token: how tokens are looked up and compared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

/// Feeds a map's hasher the first 8 bytes only: they are already uniformly distributed (a
/// SHA-256 output), and every cache lookup of the verification path hashes the key. Maps
/// keyed by it keep their keyed hasher (SipHash), so that presenting chosen tokens cannot
/// predict, and so crowd, a bucket; equal hashes still hash equally.
impl std::hash::Hash for SecretHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
    }
}

impl SecretHash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but there is no reason to print all of it either.
        write!(
            f,
            "SecretHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Whether a well-formed token appears in `text` as it is.
fn appears_verbatim(text: &str) -> bool {
    text.match_indices(TOKEN_PREFIX).any(|(start, _)| {
        start
            .checked_add(TOKEN_LEN)
            .and_then(|end| text.get(start..end))
            .is_some_and(|window| canonical(window).is_ok())
    })
}

/// The token inside `input` (without `Bearer` and whitespace), if it is well formed.
fn canonical(input: &str) -> Result<&str, ParseError> {
    let mut candidate = input.trim();
    if let Some(rest) = after_bearer(candidate) {
        candidate = rest.trim_start();
    }
    if candidate.is_empty() || candidate.eq_ignore_ascii_case("bearer") {
        return Err(ParseError::Empty);
    }
    if !candidate.starts_with(TOKEN_PREFIX) {
        return Err(ParseError::WrongPrefix);
    }
    if candidate.len() != TOKEN_LEN {
        return Err(ParseError::WrongLength);
    }
    // The length is in bytes: a multi-byte character may straddle the checksum boundary,
    // so split only where the string allows it (no byte-index slicing on input).
    let (signed, sum) = candidate
        .split_at_checked(TOKEN_LEN - CHECKSUM_LEN)
        .ok_or(ParseError::InvalidCharacters)?;
    let body = signed
        .get(TOKEN_PREFIX.len()..)
        .ok_or(ParseError::InvalidCharacters)?;
    if !is_base62(body) || !is_base62(sum) {
        return Err(ParseError::InvalidCharacters);
    }
    if checksum(signed) != sum.as_bytes() {
        return Err(ParseError::BadChecksum);
    }
    Ok(candidate)
}

/// What follows `Bearer` (any case) and a whitespace character at the start of `text`, if
/// it starts so. Compared in place: this runs for every presented token.
fn after_bearer(text: &str) -> Option<&str> {
    const SCHEME: &str = "bearer";
    let (scheme, rest) = text.split_at_checked(SCHEME.len())?;
    (scheme.eq_ignore_ascii_case(SCHEME) && rest.starts_with(char::is_whitespace)).then_some(rest)
}

fn hash(token: &str) -> SecretHash {
    SecretHash(Sha256::digest(token.as_bytes()).into())
}

fn checksum(signed: &str) -> [u8; CHECKSUM_LEN] {
    base62_fixed(u64::from(crc32fast::hash(signed.as_bytes())))
}

#[cfg(test)]
mod tests {

    #[test]
    fn tokens_are_found_inside_any_text() {
        let token = TokenSecret::generate();
        let t = token.expose();
        for text in [
            t.to_owned(),
            format!("https://example.com/search?q=key%3D{t}"),
            format!("key_{t}"),
            format!("{t}abc"),
            format!("é{t}é"),
            format!("tka_tka_{t}"),
            format!("https://x/?t={}", t.replacen('_', "%5F", 1)),
            t.bytes().map(|b| format!("%{b:02X}")).collect::<String>(),
            // Encoded twice and three times.
            format!("https://x/?t={}", t.replacen('_', "%255F", 1)),
            format!("https://x/?t={}", t.replacen('_', "%25255F", 1)),
            t.bytes().map(|b| format!("%25{b:02X}")).collect::<String>(),
        ] {
            assert!(TokenSecret::appears_in(&text), "{text}");
        }
        let mut broken = t.to_owned();
        broken.pop();
        for text in ["", "tka_", "tka_short", broken.as_str(), "no token here"] {
            assert!(!TokenSecret::appears_in(text), "{text}");
        }
    }
    use super::*;

    #[test]
    fn generated_tokens_parse() {
        let token = TokenSecret::generate();
        assert_eq!(token.expose().len(), TOKEN_LEN);
        assert_eq!(TokenSecret::parse(token.expose()).unwrap(), token);
    }

    #[test]
    fn bearer_prefix_and_whitespace_are_accepted() {
        let token = TokenSecret::generate();
        let raw = token.expose();
        for input in [
            format!("Bearer {raw}"),
            format!("bearer {raw}"),
            format!("BEARER   {raw}"),
            format!("  {raw}\n"),
            format!("\tBearer {raw} "),
            format!("bEaReR\t{raw}"),
            format!("Bearer\u{3000}{raw}"),
        ] {
            assert_eq!(TokenSecret::parse(&input).unwrap(), token, "{input:?}");
        }
        // Only the scheme, whole, then whitespace, is taken off.
        for input in [
            format!("Bearer{raw}"),
            format!("Bearerx {raw}"),
            format!("Basic {raw}"),
            format!("éBearer {raw}"),
        ] {
            assert!(TokenSecret::parse(&input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn a_single_changed_character_is_caught_by_the_checksum() {
        let token = TokenSecret::generate();
        let raw = token.expose();
        for position in TOKEN_PREFIX.len()..raw.len() {
            let mut bytes = raw.as_bytes().to_vec();
            bytes[position] = if bytes[position] == b'a' { b'b' } else { b'a' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert_eq!(
                TokenSecret::parse(&tampered),
                Err(ParseError::BadChecksum),
                "position {position}"
            );
        }
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        let good = TokenSecret::generate();
        assert_eq!(TokenSecret::parse(""), Err(ParseError::Empty));
        assert_eq!(TokenSecret::parse("Bearer "), Err(ParseError::Empty));
        assert_eq!(TokenSecret::parse("hello"), Err(ParseError::WrongPrefix));
        assert_eq!(
            TokenSecret::parse("tka_short"),
            Err(ParseError::WrongLength)
        );
        let with_symbol = format!("tka_{}", "!".repeat(BODY_LEN + CHECKSUM_LEN));
        assert_eq!(
            TokenSecret::parse(&with_symbol),
            Err(ParseError::InvalidCharacters)
        );
        let multibyte = format!("tka_{}é", "a".repeat(BODY_LEN + CHECKSUM_LEN - 2));
        assert_eq!(
            TokenSecret::parse(&multibyte),
            Err(ParseError::InvalidCharacters)
        );
        assert_eq!(
            TokenSecret::parse(&format!("Basic {}", good.expose())),
            Err(ParseError::WrongPrefix)
        );
    }

    #[test]
    fn a_multibyte_character_at_the_checksum_boundary_is_malformed_not_a_panic() {
        // Regression: 4 + 31 + 2 (é) + 5 bytes = 42, the right length in bytes, with `é`
        // straddling the boundary between body and checksum.
        let straddling = format!("tka_{}é{}", "a".repeat(31), "a".repeat(5));
        assert_eq!(straddling.len(), TOKEN_LEN);
        assert_eq!(
            TokenSecret::parse(&straddling),
            Err(ParseError::InvalidCharacters)
        );
        assert_eq!(
            TokenSecret::hash_presented(&straddling),
            Err(ParseError::InvalidCharacters)
        );
        // And straddling the prefix.
        let in_prefix = format!("tka_é{}", "a".repeat(TOKEN_LEN - 6));
        assert!(TokenSecret::parse(&in_prefix).is_err());
    }

    proptest::proptest! {
        /// No string, however built, makes parsing panic; whatever parses is a canonical
        /// token that parses to itself.
        #[test]
        fn parsing_any_string_never_panics(input in "\\PC*") {
            if let Ok(token) = TokenSecret::parse(&input) {
                proptest::prop_assert_eq!(TokenSecret::parse(token.expose()), Ok(token.clone()));
            }
        }

        /// Near-misses of a real token: every byte position replaced by any character.
        #[test]
        fn mutated_tokens_never_panic(position in 0usize..TOKEN_LEN, replacement in proptest::char::any()) {
            let token = TokenSecret::generate();
            let mut chars: Vec<char> = token.expose().chars().collect();
            if let Some(slot) = chars.get_mut(position) {
                *slot = replacement;
            }
            let mutated: String = chars.into_iter().collect();
            let parsed = TokenSecret::parse(&mutated);
            if mutated != token.expose() {
                proptest::prop_assert!(parsed.is_err());
            }
        }
    }

    /// The expression the README publishes for secret scanners (the line after the
    /// `token-pattern` marker's regex fence).
    fn published_pattern() -> regex::Regex {
        let readme = include_str!("../../README.md");
        let pattern = readme
            .split_once("<!-- token-pattern:")
            .and_then(|(_, rest)| rest.split_once("```regex\n"))
            .and_then(|(_, rest)| rest.lines().next())
            .expect("the README publishes the token pattern");
        regex::Regex::new(pattern).expect("a valid expression")
    }

    #[test]
    fn the_readmes_token_pattern_matches_every_token() {
        let pattern = published_pattern();
        for _ in 0..1000 {
            let token = TokenSecret::generate();
            let token = token.expose();
            let text = format!("export KEY={token}; curl -H 'authorization: Bearer {token}'");
            let found: Vec<&str> = pattern.find_iter(&text).map(|m| m.as_str()).collect();
            assert_eq!(found, [token, token], "{text}");
            // The checksum a scanner can check is the one `parse` checks.
            assert!(TokenSecret::parse(found[0]).is_ok());
        }
        let token = TokenSecret::generate();
        let token = token.expose();
        let near_misses = [
            format!("x{token}"),
            format!("{token}x"),
            token.replacen("tka_", "tkb_", 1),
            token[..token.len() - 1].to_owned(),
            token.replacen('_', "-", 1),
        ];
        for miss in near_misses {
            assert!(!pattern.is_match(&miss), "{miss}");
        }
    }

    #[test]
    fn parse_errors_never_contain_the_input() {
        let token = TokenSecret::generate();
        let mut tampered = token.expose().to_owned();
        // Another last character (one time in 62 it already was '0': the test then failed).
        let last = tampered.pop();
        tampered.push(if last == Some('0') { '1' } else { '0' });
        let err = TokenSecret::parse(&tampered).unwrap_err();
        assert!(!err.to_string().contains(&tampered[4..20]));
    }

    #[test]
    fn debug_output_is_redacted() {
        let token = TokenSecret::generate();
        let printed = format!("{token:?}");
        assert!(!printed.contains(&token.expose()[4..36]));
        assert!(printed.contains(&token.display_hint()));
    }

    #[test]
    fn hash_is_sha256_of_the_whole_token() {
        let token =
            TokenSecret::parse(&format!("Bearer {}", TokenSecret::generate().expose())).unwrap();
        let expected: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
        assert_eq!(token.hash().0, expected);
        assert_ne!(TokenSecret::generate().hash(), token.hash());
    }

    #[test]
    fn hash_presented_agrees_with_parse_then_hash() {
        let token = TokenSecret::generate();
        let presented = format!(" Bearer {} ", token.expose());
        assert_eq!(TokenSecret::hash_presented(&presented), Ok(token.hash()));
        assert_eq!(
            TokenSecret::hash_presented("tka_nope"),
            Err(ParseError::WrongLength)
        );
    }

    #[test]
    fn display_hint_shows_prefix_and_last_four() {
        let token = TokenSecret::generate();
        let hint = token.display_hint();
        assert!(hint.starts_with("tka_…"));
        assert!(hint.ends_with(&token.expose()[TOKEN_LEN - 4..]));
    }
}
