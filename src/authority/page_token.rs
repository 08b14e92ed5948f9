//! Opaque page tokens that a caller cannot forge or alter.
//!
//! A page token is `base64url(payload ‖ HMAC-SHA256(key, payload)[..16])`, where the payload
//! names the listing, a fingerprint of its filters, and the position to resume after. The key
//! is a server-wide secret kept in the store, so tokens survive restarts and work on every
//! replica. A token altered in any way, or reused with other filters, is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AuthorityError;

const TAG_LEN: usize = 16;

/// Signs and checks page tokens with one key.
#[derive(Clone)]
pub struct PageTokenCodec {
    key: [u8; 32],
}

impl PageTokenCodec {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// A token resuming `listing` (filtered as `filters` describes) after `position`.
    pub fn encode(&self, listing: &str, filters: &str, position: &str) -> String {
        let payload = format!("{listing}|{}|{position}", fingerprint(filters));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut bytes = payload.into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position a token resumes after; refuses a token that was altered, minted by
    /// another server, or issued for another listing or other filters.
    pub fn decode(
        &self,
        token: &str,
        listing: &str,
        filters: &str,
    ) -> Result<String, AuthorityError> {
        let invalid =
            || AuthorityError::invalid("page_token", "is not a page token issued for this request");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() <= TAG_LEN {
            return Err(invalid());
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_truncated_left(tag).map_err(|_| invalid())?;
        let payload = std::str::from_utf8(payload).map_err(|_| invalid())?;
        let mut parts = payload.splitn(3, '|');
        let (Some(kind), Some(print), Some(position)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if kind != listing {
            return Err(invalid());
        }
        if print != fingerprint(filters) {
            return Err(AuthorityError::invalid(
                "page_token",
                "was issued for different filters",
            ));
        }
        Ok(position.to_owned())
    }
}

fn fingerprint(filters: &str) -> String {
    let digest = Sha256::digest(filters.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> PageTokenCodec {
        PageTokenCodec::new([7; 32])
    }

    #[test]
    fn round_trips() {
        let token = codec().encode("tokens", "owner=x", "123:tok_abc");
        assert_eq!(
            codec().decode(&token, "tokens", "owner=x").unwrap(),
            "123:tok_abc"
        );
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let token = codec().encode("tokens", "", "123:tok_abc");
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            let mut tampered = raw.clone();
            tampered[i] ^= 1;
            let tampered = URL_SAFE_NO_PAD.encode(tampered);
            assert!(codec().decode(&tampered, "tokens", "").is_err(), "byte {i}");
        }
    }

    #[test]
    fn garbage_other_keys_listings_and_filters_are_refused() {
        let token = codec().encode("tokens", "a", "1");
        assert!(codec().decode("not base64 !", "tokens", "a").is_err());
        assert!(codec().decode("", "tokens", "a").is_err());
        assert!(
            PageTokenCodec::new([8; 32])
                .decode(&token, "tokens", "a")
                .is_err()
        );
        assert!(codec().decode(&token, "principals", "a").is_err());
        assert!(codec().decode(&token, "tokens", "b").is_err());
    }
}
