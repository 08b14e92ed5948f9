//! Verification answers as the client library hands them out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::domain::AllowedNetworks;
use crate::proto::{self, PrincipalKind, VerificationCode};

/// Who a valid token speaks for, shared by every answer for that token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub token_id: String,
    pub account_id: String,
    pub owner_id: String,
    pub owner_kind: PrincipalKind,
    pub owner_name: String,
    /// The token's effective scopes when it was verified.
    pub scopes: Vec<String>,
    /// None: never expires.
    pub expire_time: Option<SystemTime>,
    pub api_version: String,
    pub labels: HashMap<String, String>,
    /// The networks the token may be used from, in CIDR notation; empty: anywhere.
    pub allowed_networks: Vec<String>,
}

impl Identity {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The answer to a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub code: VerificationCode,
    /// With INSUFFICIENT_SCOPES: the required scopes the token lacks.
    pub missing_scopes: Vec<String>,
    /// The revision of the authority's state the answer holds at.
    pub revision: u64,
    /// Set when valid.
    pub identity: Option<Arc<Identity>>,
}

impl Verification {
    pub fn is_valid(&self) -> bool {
        self.code == VerificationCode::Valid
    }

    /// What a VerifyToken response says, taken as it is: the authority has judged the
    /// scopes and the address it was asked about. For code that calls VerifyToken itself
    /// (the authority's own gateway `Check`) rather than through a verifier.
    pub fn from_response(response: proto::VerifyTokenResponse) -> Self {
        let code = response.code();
        let missing_scopes = response.missing_scopes.clone();
        let revision = response.revision;
        let identity = match code {
            VerificationCode::Valid => Answer::from_response(response).identity,
            _ => None,
        };
        Self {
            code,
            missing_scopes,
            revision,
            identity,
        }
    }

    pub(super) fn malformed() -> Self {
        Self {
            code: VerificationCode::Malformed,
            missing_scopes: Vec::new(),
            revision: 0,
            identity: None,
        }
    }
}

/// A token's answer independent of any required scopes and client address: what the cache
/// keeps.
#[derive(Debug)]
pub(super) struct Answer {
    /// VALID for a token that is good but perhaps for the client's address (the server's
    /// ADDRESS_NOT_ALLOWED is about one address; `networks` answers for every other).
    pub code: VerificationCode,
    /// Where a good token may be used from; None: the authority's list did not parse, so
    /// nowhere (fail closed).
    networks: Option<AllowedNetworks>,
    pub revision: u64,
    /// The objects the answer depends on (unknown for NOT_FOUND).
    pub token_id: Option<crate::domain::TokenId>,
    pub owner_id: Option<crate::domain::PrincipalId>,
    pub account_id: Option<crate::domain::AccountId>,
    /// Set when valid.
    pub identity: Option<Arc<Identity>>,
    /// How long the token stays valid from when the authority answered, by the authority's
    /// clock (`expire_time - verify_time`); None: it never expires.
    pub lifetime: Option<Duration>,
    /// When the authority answered, by its clock (None: an authority too old to say).
    pub answered_at: Option<SystemTime>,
    /// Which history of the database `revision` counts in (empty: an authority too old to
    /// say).
    pub history: String,
}

impl Answer {
    /// An answer from VerifyToken called without required scopes.
    pub fn from_response(response: proto::VerifyTokenResponse) -> Self {
        // ADDRESS_NOT_ALLOWED comes after every check of the token's state: the token is good
        // but for the address asked about, and its identity and allowlist are in the answer.
        let code = match response.code() {
            VerificationCode::AddressNotAllowed => VerificationCode::Valid,
            code => code,
        };
        let networks = AllowedNetworks::parse(&response.allowed_networks, "allowed_networks").ok();
        let non_empty = |s: &String| !s.is_empty();
        let owner = response.owner.clone().unwrap_or_default();
        let token_id = Some(response.token_id.clone()).filter(non_empty);
        let account_id = Some(response.account_id.clone()).filter(non_empty);
        let owner_id = Some(owner.id.clone()).filter(non_empty);
        let expire_time = response
            .expire_time
            .and_then(|t| SystemTime::try_from(t).ok());
        // By the authority's own clock when it says when it answered; an authority that
        // does not (older than this library) leaves the local clock to judge.
        let answered_at = response
            .verify_time
            .and_then(|t| SystemTime::try_from(t).ok());
        let answered = answered_at.unwrap_or_else(SystemTime::now);
        let lifetime = expire_time.map(|at| at.duration_since(answered).unwrap_or(Duration::ZERO));
        let identity = (code == VerificationCode::Valid).then(|| {
            Arc::new(Identity {
                token_id: response.token_id.clone(),
                account_id: response.account_id.clone(),
                owner_id: owner.id.clone(),
                owner_kind: owner.kind(),
                owner_name: owner.display_name.clone(),
                scopes: response.effective_scopes.clone(),
                expire_time,
                api_version: response.api_version.clone(),
                labels: response.labels.clone(),
                allowed_networks: response.allowed_networks.clone(),
            })
        });
        Self {
            code,
            networks,
            revision: response.revision,
            token_id: token_id.map(crate::domain::TokenId::from_trusted),
            owner_id: owner_id.map(crate::domain::PrincipalId::from_trusted),
            account_id: account_id.map(crate::domain::AccountId::from_trusted),
            identity,
            lifetime,
            answered_at,
            history: response.history,
        }
    }

    /// Roughly how many bytes the answer holds: what the cache weighs it by.
    pub fn weight(&self) -> u32 {
        let ids = 3 * 40;
        let identity = self.identity.as_deref().map_or(0, |identity| {
            let strings = |items: &[String]| items.iter().map(|s| s.len() + 24).sum::<usize>();
            identity.owner_name.len()
                + identity.api_version.len()
                + strings(&identity.scopes)
                + strings(&identity.allowed_networks)
                + identity
                    .labels
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 48)
                    .sum::<usize>()
                + 3 * 40
        });
        u32::try_from(256 + ids + 2 * identity).unwrap_or(u32::MAX)
    }

    /// The answer for `required` scopes, asked by a client at `client` (None: unknown): the
    /// same order of checks as the authority's, the address before the scopes.
    pub fn for_request(&self, required: &[&str], client: Option<IpAddr>) -> Verification {
        let mut code = self.code;
        let mut missing_scopes = Vec::new();
        if let Some(identity) = &self.identity {
            let permitted = self
                .networks
                .as_ref()
                .is_some_and(|networks| networks.permits(client));
            if !permitted {
                code = VerificationCode::AddressNotAllowed;
            } else {
                missing_scopes = required
                    .iter()
                    .filter(|scope| !identity.has_scope(scope))
                    .map(|scope| (*scope).to_owned())
                    .collect();
                if !missing_scopes.is_empty() {
                    code = VerificationCode::InsufficientScopes;
                }
            }
        }
        Verification {
            code,
            identity: (code == VerificationCode::Valid)
                .then(|| self.identity.clone())
                .flatten(),
            missing_scopes,
            revision: self.revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(scopes: &[&str]) -> Answer {
        Answer::from_response(valid_response(scopes))
    }

    fn valid_response(scopes: &[&str]) -> proto::VerifyTokenResponse {
        proto::VerifyTokenResponse {
            valid: true,
            code: VerificationCode::Valid.into(),
            revision: 7,
            token_id: crate::domain::TokenId::generate().to_string(),
            account_id: crate::domain::AccountId::generate().to_string(),
            owner: Some(proto::TokenOwner {
                id: crate::domain::PrincipalId::generate().to_string(),
                kind: PrincipalKind::User.into(),
                display_name: "ann".into(),
            }),
            effective_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn required_scopes_are_checked_locally() {
        let answer = valid(&["orders.read"]);
        assert!(answer.for_request(&["orders.read"], None).is_valid());
        let refused = answer.for_request(&["orders.read", "orders.write"], None);
        assert_eq!(refused.code, VerificationCode::InsufficientScopes);
        assert_eq!(refused.missing_scopes, vec!["orders.write"]);
        assert!(refused.identity.is_none());
        assert_eq!(refused.revision, 7);
    }

    #[test]
    fn invalid_answers_carry_no_identity_but_their_dependencies() {
        let token_id = crate::domain::TokenId::generate().to_string();
        let answer = Answer::from_response(proto::VerifyTokenResponse {
            code: VerificationCode::Revoked.into(),
            token_id: token_id.clone(),
            ..Default::default()
        });
        assert_eq!(
            answer.token_id.as_ref().map(|t| t.to_string()),
            Some(token_id)
        );
        assert!(answer.identity.is_none());
        assert_eq!(
            answer.for_request(&[], None).code,
            VerificationCode::Revoked
        );
    }

    #[test]
    fn an_allowlist_is_checked_locally_for_every_address() {
        // The authority refused one address: the answer is good for the others.
        let answer = Answer::from_response(proto::VerifyTokenResponse {
            code: VerificationCode::AddressNotAllowed.into(),
            allowed_networks: vec!["10.0.0.0/8".into()],
            ..valid_response(&["orders.read"])
        });
        let from = |address: Option<&str>, required: &[&str]| {
            answer
                .for_request(required, address.map(|a| a.parse().unwrap()))
                .code
        };
        assert_eq!(
            from(Some("10.9.9.9"), &["orders.read"]),
            VerificationCode::Valid
        );
        assert_eq!(
            from(Some("192.0.2.1"), &[]),
            VerificationCode::AddressNotAllowed
        );
        assert_eq!(from(None, &[]), VerificationCode::AddressNotAllowed);
        assert_eq!(
            from(Some("10.9.9.9"), &["orders.write"]),
            VerificationCode::InsufficientScopes
        );
        let refused = answer.for_request(&[], None);
        assert!(refused.identity.is_none() && !refused.is_valid());
        // A list that does not parse permits nothing.
        let garbled = Answer::from_response(proto::VerifyTokenResponse {
            allowed_networks: vec!["10.0.0.0/33".into()],
            ..valid_response(&[])
        });
        assert_eq!(
            garbled
                .for_request(&[], Some("10.0.0.1".parse().unwrap()))
                .code,
            VerificationCode::AddressNotAllowed
        );
    }
}
