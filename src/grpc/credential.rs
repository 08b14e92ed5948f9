//! Where a caller's credential comes from: `authorization: Bearer <token>` or
//! `x-api-key: <token>` metadata.

use tonic::Status;
use tonic::metadata::MetadataMap;

/// The presented token, if any. Another authorization scheme, or a header that is not valid
/// text, is refused outright rather than silently ignored.
pub fn credential_from_metadata(metadata: &MetadataMap) -> Result<Option<&str>, Status> {
    if let Some(value) = metadata.get("authorization") {
        let value = value
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not valid text"))?
            .trim();
        let token = value
            .split_once(char::is_whitespace)
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must use the Bearer scheme")
            })?;
        return Ok(Some(token));
    }
    if let Some(value) = metadata.get("x-api-key") {
        let value = value
            .to_str()
            .map_err(|_| Status::unauthenticated("the x-api-key header is not valid text"))?;
        return Ok(Some(value.trim()));
    }
    Ok(None)
}

/// Authenticates the caller of `request` with the authority's verification.
pub(super) async fn authenticate<T>(
    authority: &crate::authority::Authority,
    request: &tonic::Request<T>,
) -> Result<crate::authority::Caller, Status> {
    let credential = credential_from_metadata(request.metadata())?;
    Ok(authority
        .authenticate(credential, request.remote_addr())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(key: &'static str, value: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert(key, value.parse().unwrap());
        map
    }

    #[test]
    fn bearer_and_api_key_are_read() {
        assert_eq!(
            credential_from_metadata(&metadata("authorization", "Bearer abc")).unwrap(),
            Some("abc")
        );
        assert_eq!(
            credential_from_metadata(&metadata("authorization", "bearer  abc ")).unwrap(),
            Some("abc")
        );
        assert_eq!(
            credential_from_metadata(&metadata("x-api-key", " abc")).unwrap(),
            Some("abc")
        );
        assert_eq!(credential_from_metadata(&MetadataMap::new()).unwrap(), None);
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(credential_from_metadata(&metadata("authorization", "Basic abc")).is_err());
        assert!(credential_from_metadata(&metadata("authorization", "abc")).is_err());
    }
}
