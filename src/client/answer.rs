//! Verification answers as the client library hands them out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

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
}

impl Identity {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The answer to `verify(token, required_scopes)`.
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

    pub(super) fn malformed() -> Self {
        Self {
            code: VerificationCode::Malformed,
            missing_scopes: Vec::new(),
            revision: 0,
            identity: None,
        }
    }
}

/// A token's answer independent of any required scopes: what the cache keeps.
#[derive(Debug)]
pub(super) struct Answer {
    pub code: VerificationCode,
    pub revision: u64,
    /// The objects the answer depends on (unknown for NOT_FOUND).
    pub token_id: Option<crate::domain::TokenId>,
    pub owner_id: Option<crate::domain::PrincipalId>,
    pub account_id: Option<crate::domain::AccountId>,
    /// Set when valid.
    pub identity: Option<Arc<Identity>>,
}

impl Answer {
    /// An answer from VerifyToken called without required scopes.
    pub fn from_response(response: proto::VerifyTokenResponse) -> Self {
        let code = response.code();
        let non_empty = |s: &String| !s.is_empty();
        let owner = response.owner.clone().unwrap_or_default();
        let token_id = Some(response.token_id.clone()).filter(non_empty);
        let account_id = Some(response.account_id.clone()).filter(non_empty);
        let owner_id = Some(owner.id.clone()).filter(non_empty);
        let identity = (code == VerificationCode::Valid).then(|| {
            Arc::new(Identity {
                token_id: response.token_id.clone(),
                account_id: response.account_id.clone(),
                owner_id: owner.id.clone(),
                owner_kind: owner.kind(),
                owner_name: owner.display_name.clone(),
                scopes: response.effective_scopes.clone(),
                expire_time: response
                    .expire_time
                    .and_then(|t| SystemTime::try_from(t).ok()),
                api_version: response.api_version.clone(),
                labels: response.labels.clone(),
            })
        });
        Self {
            code,
            revision: response.revision,
            token_id: token_id.map(crate::domain::TokenId::from_trusted),
            owner_id: owner_id.map(crate::domain::PrincipalId::from_trusted),
            account_id: account_id.map(crate::domain::AccountId::from_trusted),
            identity,
        }
    }

    /// The answer for `required` scopes.
    pub fn for_scopes(&self, required: &[&str]) -> Verification {
        let mut code = self.code;
        let mut missing_scopes = Vec::new();
        if let Some(identity) = &self.identity {
            missing_scopes = required
                .iter()
                .filter(|scope| !identity.has_scope(scope))
                .map(|scope| (*scope).to_owned())
                .collect();
            if !missing_scopes.is_empty() {
                code = VerificationCode::InsufficientScopes;
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
        Answer::from_response(proto::VerifyTokenResponse {
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
        })
    }

    #[test]
    fn required_scopes_are_checked_locally() {
        let answer = valid(&["orders.read"]);
        assert!(answer.for_scopes(&["orders.read"]).is_valid());
        let refused = answer.for_scopes(&["orders.read", "orders.write"]);
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
        assert_eq!(answer.for_scopes(&[]).code, VerificationCode::Revoked);
    }
}
