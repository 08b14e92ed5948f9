//! Paging of every listing (tokens, principals, audit events): page sizes, pages fetched one
//! item over the limit, and the signed page tokens that resume them.

use super::{AuthorityError, AuthorityResult, PageTokenCodec};
use crate::domain::{Timestamp, ValidationError};

const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_page_token: String,
}

impl<T> Page<T> {
    /// A page from `items` fetched with a limit of `limit + 1`: the extra item, if present,
    /// only tells that another page follows, which resumes after the page's last item.
    pub(super) fn from_overfetch(
        mut items: Vec<T>,
        limit: u32,
        resume_after: impl Fn(&T) -> String,
    ) -> Self {
        let limit = limit as usize;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_page_token = match items.last() {
            Some(last) if more => resume_after(last),
            _ => String::new(),
        };
        Self {
            items,
            next_page_token,
        }
    }
}

/// Resolves a requested page size: 0 means the default, larger than the maximum is capped.
pub(super) fn page_size(requested: i32) -> AuthorityResult<u32> {
    match u32::try_from(requested) {
        Err(_) => Err(AuthorityError::invalid("page_size", "must not be negative")),
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) => Ok(size.min(MAX_PAGE_SIZE)),
    }
}

/// One listing's page tokens: which listing (`tokens`, `principals`, `audit`) and a
/// fingerprint of everything but the position, which must stay the same from page to page.
pub(super) struct Listing<'a> {
    pub codec: &'a PageTokenCodec,
    pub kind: &'static str,
    pub fingerprint: String,
}

impl Listing<'_> {
    /// The position a request's page token resumes after; None for the first page.
    pub fn resume_point(&self, page_token: &str) -> AuthorityResult<Option<String>> {
        if page_token.is_empty() {
            return Ok(None);
        }
        self.codec
            .decode(page_token, self.kind, &self.fingerprint)
            .map(Some)
    }

    /// The page token resuming after `position`.
    pub fn token_after(&self, position: &str) -> String {
        self.codec.encode(self.kind, &self.fingerprint, position)
    }
}

/// The position of an item listed by creation time: `micros:id`.
pub(super) fn time_position(at: Timestamp, id: &impl std::fmt::Display) -> String {
    format!("{}:{id}", at.timestamp_micros())
}

/// Decodes a [`time_position`].
pub(crate) fn decode_time_position<T>(
    position: &str,
    parse_id: impl Fn(&str, &str) -> Result<T, ValidationError>,
) -> AuthorityResult<(Timestamp, T)> {
    let invalid = invalid_page_token;
    let (micros, id) = position.split_once(':').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    let id = parse_id(id, "page_token").map_err(|_| invalid())?;
    Ok((at, id))
}

pub(super) fn invalid_page_token() -> AuthorityError {
    AuthorityError::invalid("page_token", "is not a page token issued for this request")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_says_whether_more_follow() {
        let full = Page::from_overfetch(vec![1, 2, 3], 2, |last| format!("after {last}"));
        assert_eq!(full.items, vec![1, 2]);
        assert_eq!(full.next_page_token, "after 2");
        let last = Page::from_overfetch(vec![1, 2], 2, |last| format!("after {last}"));
        assert_eq!(last.items, vec![1, 2]);
        assert!(last.next_page_token.is_empty());
        let empty = Page::from_overfetch(Vec::<i32>::new(), 2, |_| unreachable!());
        assert!(empty.items.is_empty() && empty.next_page_token.is_empty());
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), 100);
        assert_eq!(page_size(5).unwrap(), 5);
        assert_eq!(page_size(5000).unwrap(), 1000);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn time_positions_round_trip_and_refuse_garbage() {
        let at = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let position = time_position(at, &"tok_x");
        let (back, id) = decode_time_position(&position, |v, _| Ok(v.to_owned())).unwrap();
        assert_eq!((back, id.as_str()), (at, "tok_x"));
        for garbage in ["", ":", "x:y", "99999999999999999999:y", "-1"] {
            assert!(decode_time_position(garbage, |v, _| Ok(v.to_owned())).is_err());
        }
    }
}
