//! The changes to an existing token: update, revoke, disable, enable, delete and reset.
//! Each is checked against the rules, then committed with its audit record and (when it can
//! alter verification answers) its invalidation event in one transaction.

use std::collections::BTreeMap;

use chrono::Duration;

use super::token_requests::TokenUpdate;
use super::token_rules::{extends_life, narrow_scopes, note_escalation, token_invalidation};
use super::{Authority, AuthorityError, AuthorityResult, Caller, Committed};
use crate::domain::{
    AuditAction, InvalidationKind, Permission, ResetError, RevokeReason, StoredState, Timestamp,
    Token, TokenId, TokenSecret, validate_expiry,
};
use crate::store::{Change, SecretChange};

/// What a change to an existing token is, for its audit record and invalidation event.
pub(super) struct TokenChange<'a> {
    /// The audit action, e.g. `token.revoke`.
    pub action: AuditAction,
    /// Set when the change can alter verification answers.
    pub invalidation: Option<InvalidationKind>,
    pub details: BTreeMap<String, String>,
    /// Set by a reset.
    pub secret: Option<&'a SecretChange>,
    /// The audit record names no actor, token or address: the caller is of another account
    /// than the token's and not an operator (a leak report).
    pub conceal_actor: bool,
    /// Set when the change was checked against the account's token policy: the version of
    /// the account it was read at, which the change commits at or not at all.
    pub policy_version: Option<i64>,
}

impl TokenChange<'_> {
    pub fn new(action: AuditAction, invalidation: Option<InvalidationKind>) -> Self {
        Self {
            action,
            invalidation,
            details: BTreeMap::new(),
            secret: None,
            conceal_actor: false,
            policy_version: None,
        }
    }
}

impl Authority {
    pub async fn update_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        update: TokenUpdate,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<Token>> {
        caller.require(Permission::TOKENS_UPDATE)?;
        let (mut token, owner) = self.changeable_token(caller, id, etag).await?;
        token.ensure_not_revoked()?;
        // A changed expiry or scope list must keep the policy; other fields may change on a
        // token that predates it.
        let account = if update.expires_at.is_some() || update.scopes.is_some() {
            Some(self.stored_account(&token.account_id).await?)
        } else {
            None
        };
        let policy = account
            .as_ref()
            .map(|account| account.token_policy.clone())
            .unwrap_or_default();
        let at = self.now();
        let mut fields = Vec::new();
        // Whether the change is visible in verification answers.
        let mut affects_verification = false;
        if let Some(name) = update.name {
            token.name = name;
            fields.push("name");
        }
        if let Some(description) = update.description {
            token.description = description;
            fields.push("description");
        }
        // A longer life is power handed out again: only to a token that keeps every rule
        // (its scopes too) and lies within the caller's networks, as they are after this
        // update (checked below). A shorter one only takes power away.
        let mut extended = false;
        if let Some(expires_at) = update.expires_at {
            if let Some(when) = expires_at {
                validate_expiry(when, at, "expire_time")?;
            }
            policy.check_lifetime(token.created_at, expires_at)?;
            extended = extends_life(token.expires_at, expires_at);
            token.expires_at = expires_at;
            fields.push("expire_time");
            affects_verification = true;
        }
        if let Some(scopes) = update.scopes {
            let disclose = caller.may_read_permissions_of(&owner.id);
            narrow_scopes(&token.scopes, &scopes, &owner.permissions, disclose)?;
            policy.check_scopes(&scopes)?;
            token.scopes = scopes;
            fields.push("scopes");
            affects_verification = true;
        }
        if let Some(labels) = update.labels {
            token.labels = labels;
            fields.push("labels");
            affects_verification = true;
        }
        if let Some(api_version) = update.api_version {
            token.api_version = api_version;
            fields.push("api_version");
            affects_verification = true;
        }
        if let Some(networks) = update.allowed_networks {
            caller.ensure_networks_within(&networks)?;
            token.allowed_networks = networks;
            fields.push("allowed_networks");
            affects_verification = true;
        }
        if fields.is_empty() {
            return Err(AuthorityError::invalid(
                "update_mask",
                "must name at least one field",
            ));
        }
        if extended {
            policy.check_scopes(&token.scopes)?;
            caller.ensure_networks_within(&token.allowed_networks)?;
        }
        let mut details = BTreeMap::new();
        details.insert("fields".to_owned(), fields.join(","));
        let kind = affects_verification.then_some(InvalidationKind::TokenUpdated);
        let change = TokenChange {
            details,
            policy_version: account.map(|account| account.version),
            ..TokenChange::new(AuditAction::TokenUpdate, kind)
        };
        self.commit_token(caller, token, change, at).await
    }

    pub async fn revoke_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        reason: RevokeReason,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<Token>> {
        caller.require(Permission::TOKENS_UPDATE)?;
        let (mut token, _) = self.changeable_token(caller, id, etag).await?;
        let at = self.now();
        let mut details = BTreeMap::new();
        details.insert("reason".to_owned(), reason.as_str().to_owned());
        token.revoke(Some(caller.principal_id().clone()), reason, at)?;
        let change = TokenChange {
            details,
            ..TokenChange::new(
                AuditAction::TokenRevoke,
                Some(InvalidationKind::TokenRevoked),
            )
        };
        self.commit_token(caller, token, change, at).await
    }

    pub async fn disable_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<Token>> {
        self.switch_token(caller, id, etag, false).await
    }

    pub async fn enable_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<Token>> {
        self.switch_token(caller, id, etag, true).await
    }

    /// Disables or enables a token; switching it to the state it is in changes nothing.
    async fn switch_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        etag: Option<&str>,
        enable: bool,
    ) -> AuthorityResult<Committed<Token>> {
        caller.require(Permission::TOKENS_UPDATE)?;
        let (mut token, _) = self.changeable_token(caller, id, etag).await?;
        // Enabling makes a secret usable again: the same rules as issuing one (the caller's
        // networks, the account's token policy).
        let policy_version = if enable && token.state == StoredState::Disabled {
            caller.ensure_networks_within(&token.allowed_networks)?;
            let account = self.stored_account(&token.account_id).await?;
            account.token_policy.check_token(&token)?;
            Some(account.version)
        } else {
            None
        };
        let changed = if enable {
            token.enable()?
        } else {
            token.disable()?
        };
        if !changed {
            return Ok(Committed {
                value: token,
                revision: self.revision(),
            });
        }
        let change = if enable {
            TokenChange {
                policy_version,
                ..TokenChange::new(
                    AuditAction::TokenEnable,
                    Some(InvalidationKind::TokenEnabled),
                )
            }
        } else {
            TokenChange::new(
                AuditAction::TokenDisable,
                Some(InvalidationKind::TokenDisabled),
            )
        };
        self.commit_token(caller, token, change, self.now()).await
    }

    pub async fn delete_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<()>> {
        caller.require(Permission::TOKENS_DELETE)?;
        let (token, _) = self.changeable_token(caller, id, etag).await?;
        let at = self.now();
        let mut audit = Self::audit(
            caller,
            AuditAction::TokenDelete,
            token.id.as_str(),
            &token.account_id,
            at,
        );
        audit
            .details
            .insert("name".to_owned(), token.name.as_str().to_owned());
        audit
            .details
            .insert("owner_id".to_owned(), token.owner_id.to_string());
        let change = Change {
            audit,
            invalidation: Some(token_invalidation(&token, InvalidationKind::TokenDeleted)),
        };
        let event = self
            .store
            .delete_token(&token.id, token.version, &change)
            .await?;
        let revision = self.apply_committed(event).await;
        self.forget_quota_refusal(&token.account_id);
        tracing::info!(token_id = %token.id, "token deleted");
        Ok(Committed {
            value: (),
            revision,
        })
    }

    pub async fn reset_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        grace_period: Duration,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<(Token, TokenSecret)>> {
        caller.require(Permission::TOKENS_UPDATE)?;
        let (mut token, owner) = self.changeable_token(caller, id, etag).await?;
        // The new secret goes to the caller: the same issuance rules as create and duplicate.
        caller.ensure_networks_within(&token.allowed_networks)?;
        let (scopes, account) = self
            .issuable_scopes(caller, &owner, token.scopes.clone())
            .await?;
        let mut details = BTreeMap::new();
        note_escalation(caller, &owner, &scopes, &mut details);
        if scopes != token.scopes {
            details.insert("scopes_pinned".to_owned(), scopes.to_strings().join(","));
            token.scopes = scopes;
        }
        let at = self.now();
        let max_grace = Duration::from_std(self.config.max_grace_period).unwrap_or(Duration::MAX);
        let grace_end =
            token
                .reset_grace_end(grace_period, max_grace, at)
                .map_err(|e| match e {
                    ResetError::Transition(t) => AuthorityError::from(t),
                    ResetError::Invalid(v) => AuthorityError::Invalid(v),
                })?;
        // A new secret for a token that breaks the policy would defeat the policy's point.
        account.token_policy.check_token(&token)?;
        account.token_policy.check_reset_grace(grace_period)?;
        let secret = TokenSecret::generate();
        token.display_hint = secret.display_hint();
        token.previous_secret_expires_at = grace_end;
        details.insert(
            "grace_period_seconds".to_owned(),
            grace_period.num_seconds().to_string(),
        );
        let secret_change = SecretChange {
            new_hash: secret.hash(),
            previous_expires_at: grace_end,
        };
        let change = TokenChange {
            details,
            secret: Some(&secret_change),
            policy_version: Some(account.version),
            ..TokenChange::new(AuditAction::TokenReset, Some(InvalidationKind::TokenReset))
        };
        let committed = self.commit_token(caller, token, change, at).await?;
        Ok(committed.map(|token| (token, secret)))
    }

    /// Commits a changed token (version bumped) with its audit record and, when the change
    /// can alter verification answers, its invalidation event, then applies the event to
    /// the cache.
    pub(super) async fn commit_token(
        &self,
        caller: &Caller,
        mut token: Token,
        change: TokenChange<'_>,
        at: Timestamp,
    ) -> AuthorityResult<Committed<Token>> {
        let expected_version = token.version;
        token.version += 1;
        token.updated_at = at;
        let action = change.action;
        let mut audit = Self::audit(caller, action, token.id.as_str(), &token.account_id, at);
        audit.details = change.details;
        if change.conceal_actor {
            audit.actor_id = None;
            audit.actor_token_id = None;
            audit.peer_address = None;
        }
        let secret = change.secret;
        let policy_version = change.policy_version;
        let change = Change {
            audit,
            invalidation: change
                .invalidation
                .map(|kind| token_invalidation(&token, kind)),
        };
        let event = self
            .store
            .update_token(&token, expected_version, secret, policy_version, &change)
            .await?;
        let revision = self.apply_committed(event).await;
        tracing::info!(token_id = %token.id, action = action.as_str(), "token changed");
        Ok(Committed {
            value: token,
            revision,
        })
    }
}
