//! Where a caller's credential comes from: `authorization: Bearer <token>` or
//! `x-api-key: <token>`. Shared by the server and the client library's layer, so both read
//! credentials by the same rules.
//!
//! A request must present one credential unambiguously: a header sent twice, or both headers
//! with different tokens, is refused. Otherwise a service behind a layer that reads one value
//! could act on another that nobody verified.

/// Why a request's credential headers are refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the {0} header is not valid text")]
    NotText(&'static str),
    #[error("the authorization header must use the Bearer scheme")]
    NotBearer,
    #[error("the {0} header is sent more than once: send one credential")]
    Repeated(&'static str),
    #[error("the authorization and x-api-key headers carry different tokens: send one credential")]
    Conflicting,
}

/// The one value of a header, if any: `None`: absent; `Some(None)`: present but not text.
fn single<'a>(
    values: impl IntoIterator<Item = Option<&'a str>>,
    name: &'static str,
) -> Result<Option<Option<&'a str>>, CredentialError> {
    let mut values = values.into_iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(CredentialError::Repeated(name));
    }
    Ok(first)
}

/// The presented token, if any, from the raw values of each header (each value `None` when
/// it is not valid text).
pub fn presented_token<'a>(
    authorization: impl IntoIterator<Item = Option<&'a str>>,
    api_key: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<Option<&'a str>, CredentialError> {
    let bearer = match single(authorization, "authorization")? {
        Some(value) => {
            let value = value
                .ok_or(CredentialError::NotText("authorization"))?
                .trim();
            let (scheme, token) = value
                .split_once(char::is_whitespace)
                .ok_or(CredentialError::NotBearer)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(CredentialError::NotBearer);
            }
            Some(token.trim())
        }
        None => None,
    };
    let key = match single(api_key, "x-api-key")? {
        Some(value) => Some(value.ok_or(CredentialError::NotText("x-api-key"))?.trim()),
        None => None,
    };
    match (bearer, key) {
        (Some(bearer), Some(key)) if bearer != key => Err(CredentialError::Conflicting),
        (Some(token), _) | (None, Some(token)) => Ok(Some(token)),
        (None, None) => Ok(None),
    }
}

/// The headers a credential is read from, for whoever removes them before passing a
/// request on.
pub const HEADERS: [&str; 2] = ["authorization", "x-api-key"];

/// [`presented_token`] over an HTTP header map (tonic metadata wraps one).
pub fn from_headers(headers: &http::HeaderMap) -> Result<Option<&str>, CredentialError> {
    let values = |name| {
        headers
            .get_all(name)
            .into_iter()
            .map(|value: &http::HeaderValue| value.to_str().ok())
    };
    presented_token(values("authorization"), values("x-api-key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: Option<&str>) -> Vec<Option<&str>> {
        vec![value]
    }

    #[test]
    fn bearer_and_api_key_are_read() {
        assert_eq!(
            presented_token(one(Some("Bearer abc")), None),
            Ok(Some("abc"))
        );
        assert_eq!(
            presented_token(one(Some("bearer  abc ")), None),
            Ok(Some("abc"))
        );
        assert_eq!(presented_token(None, one(Some(" abc"))), Ok(Some("abc")));
        // The same token in both: one credential.
        assert_eq!(
            presented_token(one(Some("Bearer a")), one(Some("a"))),
            Ok(Some("a"))
        );
        assert_eq!(presented_token(None, None), Ok(None));
    }

    // Issue 21: the first authorization value won silently, over x-api-key too, so a
    // service reading the other header (or the last value) acted on an unverified token.
    #[test]
    fn ambiguous_credentials_are_refused() {
        assert_eq!(
            presented_token(one(Some("Bearer a")), one(Some("b"))),
            Err(CredentialError::Conflicting)
        );
        assert_eq!(
            presented_token(vec![Some("Bearer a"), Some("Bearer a")], None),
            Err(CredentialError::Repeated("authorization"))
        );
        assert_eq!(
            presented_token(None, vec![Some("a"), Some("b")]),
            Err(CredentialError::Repeated("x-api-key"))
        );
        let mut headers = http::HeaderMap::new();
        headers.append("authorization", http::HeaderValue::from_static("Bearer a"));
        headers.append("authorization", http::HeaderValue::from_static("Bearer b"));
        assert_eq!(
            from_headers(&headers),
            Err(CredentialError::Repeated("authorization"))
        );
    }

    #[test]
    fn other_schemes_and_binary_values_are_refused() {
        assert_eq!(
            presented_token(one(Some("Basic abc")), None),
            Err(CredentialError::NotBearer)
        );
        assert_eq!(
            presented_token(one(Some("abc")), None),
            Err(CredentialError::NotBearer)
        );
        assert_eq!(
            presented_token(one(None), None),
            Err(CredentialError::NotText("authorization"))
        );
        assert_eq!(
            presented_token(None, one(None)),
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
