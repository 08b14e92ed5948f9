//! Where a caller's credential comes from: `authorization: Bearer <token>` or
//! `x-api-key: <token>`. Shared by the server and the client library's layer, so both read
//! credentials by the same rules.

/// Why a request's credential headers are refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the {0} header is not valid text")]
    NotText(&'static str),
    #[error("the authorization header must use the Bearer scheme")]
    NotBearer,
}

/// The presented token, if any, from the raw header values (`None`: header absent;
/// `Some(None)`: present but not valid text). `authorization` wins over `x-api-key`.
pub fn presented_token<'a>(
    authorization: Option<Option<&'a str>>,
    api_key: Option<Option<&'a str>>,
) -> Result<Option<&'a str>, CredentialError> {
    if let Some(value) = authorization {
        let value = value
            .ok_or(CredentialError::NotText("authorization"))?
            .trim();
        let (scheme, token) = value
            .split_once(char::is_whitespace)
            .ok_or(CredentialError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(CredentialError::NotBearer);
        }
        return Ok(Some(token.trim()));
    }
    match api_key {
        Some(value) => Ok(Some(
            value.ok_or(CredentialError::NotText("x-api-key"))?.trim(),
        )),
        None => Ok(None),
    }
}

/// [`presented_token`] over an HTTP header map (tonic metadata wraps one).
pub fn from_headers(headers: &http::HeaderMap) -> Result<Option<&str>, CredentialError> {
    let text = |name| {
        headers
            .get(name)
            .map(|value: &http::HeaderValue| value.to_str().ok())
    };
    presented_token(text("authorization"), text("x-api-key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_api_key_are_read() {
        assert_eq!(
            presented_token(Some(Some("Bearer abc")), None),
            Ok(Some("abc"))
        );
        assert_eq!(
            presented_token(Some(Some("bearer  abc ")), None),
            Ok(Some("abc"))
        );
        assert_eq!(presented_token(None, Some(Some(" abc"))), Ok(Some("abc")));
        assert_eq!(
            presented_token(Some(Some("Bearer a")), Some(Some("b"))),
            Ok(Some("a"))
        );
        assert_eq!(presented_token(None, None), Ok(None));
    }

    #[test]
    fn other_schemes_and_binary_values_are_refused() {
        assert_eq!(
            presented_token(Some(Some("Basic abc")), None),
            Err(CredentialError::NotBearer)
        );
        assert_eq!(
            presented_token(Some(Some("abc")), None),
            Err(CredentialError::NotBearer)
        );
        assert_eq!(
            presented_token(Some(None), None),
            Err(CredentialError::NotText("authorization"))
        );
        assert_eq!(
            presented_token(None, Some(None)),
            Err(CredentialError::NotText("x-api-key"))
        );
    }

    #[test]
    fn header_maps_are_read() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-api-key", http::HeaderValue::from_static("tka_x"));
        assert_eq!(from_headers(&headers), Ok(Some("tka_x")));
    }
}
