//! The token use cases: create, read, list, update, revoke, disable, enable, delete, reset
//! and duplicate.

use std::collections::BTreeMap;

use chrono::Duration;

use super::paging::{self, Listing, Page, decode_time_position, time_position};
use super::token_requests::{Expiry, NewToken, TokenFilter, TokenUpdate};
use super::token_rules::{
    copy_name, extends_life, issued_scopes, narrow_scopes, note_escalation, token_invalidation,
};
use super::{Authority, AuthorityError, AuthorityResult, Caller, Committed};
use crate::domain::{
    Account, AuditAction, InvalidationKind, MAX_LIFETIME, Permission, PermissionSet, Principal,
    ResetError, RevokeReason, StoredState, Timestamp, Token, TokenId, TokenName, TokenSecret,
    TokenSpec, now, validate_expiry,
};
use crate::store::{Change, SecretChange, TokenQuery};

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
    /// The scopes of a new secret for `owner`, handed to `caller`, derived from `scopes`:
    /// the owner must be enabled in an account with API access, and what the secret can do
    /// must lie within what the caller may grant (see [`issued_scopes`]). With them, the
    /// owner's account, whose token policy the token issued must keep (and whose version
    /// the change then commits at, see [`Store::insert_token`](crate::store::Store)).
    async fn issuable_scopes(
        &self,
        caller: &Caller,
        owner: &Principal,
        scopes: PermissionSet,
    ) -> AuthorityResult<(PermissionSet, Account)> {
        if owner.disabled {
            return Err(AuthorityError::FailedPrecondition(
                "the owner principal is disabled".into(),
            ));
        }
        let account = self.stored_account(&owner.account_id).await?;
        if !account.api_access_enabled {
            return Err(AuthorityError::FailedPrecondition(
                "API access is disabled for the owner's account".into(),
            ));
        }
        let scopes = issued_scopes(caller, owner, scopes)?;
        let granted = PermissionSet::effective_scopes(&scopes, &owner.permissions);
        let disclose = caller.may_read_permissions_of(&owner.id);
        caller.ensure_may_grant(&granted, "the token's scopes", disclose)?;
        Ok((scopes, account))
    }

    pub async fn create_token(
        &self,
        caller: &Caller,
        request: NewToken,
    ) -> AuthorityResult<Committed<(Token, TokenSecret)>> {
        caller.require(Permission::TOKENS_CREATE)?;
        let owner_id = request
            .owner_id
            .unwrap_or_else(|| caller.principal_id().clone());
        let owner = self.visible_principal(caller, &owner_id).await?;
        let lacking = request.scopes.difference(&owner.permissions);
        if !lacking.is_empty() {
            // Which ones, only to a caller who may read the owner's permissions.
            let message = if caller.may_read_permissions_of(&owner.id) {
                format!(
                    "the owner does not have: {}",
                    lacking.to_strings().join(", ")
                )
            } else {
                "the owner does not hold every scope listed (which ones is told only to a caller with `principals.manage`)".to_owned()
            };
            return Err(AuthorityError::invalid("scopes", message));
        }
        caller.ensure_networks_within(&request.allowed_networks)?;
        let (scopes, account) = self.issuable_scopes(caller, &owner, request.scopes).await?;
        self.ensure_token_quota(&owner.account_id).await?;
        let at = now();
        let expires_at = match request.expiry {
            Expiry::Never => None,
            Expiry::At(when) => {
                validate_expiry(when, at, "expire_time")?;
                Some(when)
            }
            Expiry::After(ttl) => {
                let end = (ttl > Duration::zero() && ttl <= MAX_LIFETIME)
                    .then(|| at.checked_add_signed(ttl))
                    .flatten();
                let end = end.ok_or_else(|| {
                    AuthorityError::invalid("ttl", "must be positive and at most 100 years")
                })?;
                Some(end)
            }
        };
        let secret = TokenSecret::generate();
        let token = Token::issue(
            TokenSpec {
                account_id: owner.account_id.clone(),
                owner_id: owner.id.clone(),
                name: request.name,
                description: request.description,
                scopes,
                labels: request.labels,
                api_version: request.api_version,
                allowed_networks: request.allowed_networks,
                expires_at,
                created_by: caller.principal_id().clone(),
            },
            secret.display_hint(),
            at,
        );
        account.token_policy.check_token(&token)?;
        let mut audit = Self::audit(
            caller,
            AuditAction::TokenCreate,
            token.id.as_str(),
            &token.account_id,
            at,
        );
        note_escalation(caller, &owner, &token.scopes, &mut audit.details);
        let change = Change {
            audit,
            invalidation: None,
        };
        let event = self
            .store
            .insert_token(&token, &secret.hash(), account.version, &change)
            .await?;
        let revision = self.apply_committed(event).await;
        tracing::info!(token_id = %token.id, owner_id = %token.owner_id, "token created");
        Ok(Committed {
            value: (token, secret),
            revision,
        })
    }

    pub async fn get_token(&self, caller: &Caller, id: &TokenId) -> AuthorityResult<Token> {
        caller.require(Permission::TOKENS_READ)?;
        self.visible_token(caller, id).await
    }

    pub async fn list_tokens(
        &self,
        caller: &Caller,
        filter: TokenFilter,
        page_size: i32,
        page_token: &str,
    ) -> AuthorityResult<Page<Token>> {
        caller.require(Permission::TOKENS_READ)?;
        let limit = paging::page_size(page_size)?;
        let account_id = caller.target_account(filter.account_id.clone())?;
        let listing = Listing {
            codec: &self.page_tokens,
            kind: "tokens",
            fingerprint: format!("{account_id}|{filter:?}"),
        };
        let after = listing
            .resume_point(page_token)?
            .map(|position| decode_time_position(&position, TokenId::parse))
            .transpose()?;
        let breaking = if filter.violates_token_policy {
            let policy = self.token_policy(&account_id).await?;
            // No lifetime or scope rule: no token can break it, and no scan is needed.
            if !policy.limits_tokens() {
                return Ok(Page {
                    items: Vec::new(),
                    next_page_token: String::new(),
                });
            }
            Some(policy)
        } else {
            None
        };
        let tokens = self
            .store
            .list_tokens(&TokenQuery {
                account_id,
                owner_id: filter.owner_id,
                name_contains: filter.name_contains,
                state: filter.state,
                created_at_or_after: filter.created_at_or_after,
                created_before: filter.created_before,
                last_used_before: filter.last_used_before,
                expires_before: filter.expires_before,
                breaking,
                now: now(),
                after,
                limit: limit + 1,
            })
            .await?;
        Ok(Page::from_overfetch(tokens, limit, |last| {
            listing.token_after(&time_position(last.created_at, &last.id))
        }))
    }

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
        let at = now();
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
        let at = now();
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
        self.commit_token(caller, token, change, now()).await
    }

    pub async fn delete_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<()>> {
        caller.require(Permission::TOKENS_DELETE)?;
        let (token, _) = self.changeable_token(caller, id, etag).await?;
        let at = now();
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
        let at = now();
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

    pub async fn duplicate_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        name: Option<TokenName>,
    ) -> AuthorityResult<Committed<(Token, TokenSecret)>> {
        caller.require(Permission::TOKENS_UPDATE)?;
        let original = self.visible_token(caller, id).await?;
        let owner = self.visible_principal(caller, &original.owner_id).await?;
        caller.ensure_networks_within(&original.allowed_networks)?;
        let (scopes, account) = self
            .issuable_scopes(caller, &owner, original.scopes.clone())
            .await?;
        self.ensure_token_quota(&owner.account_id).await?;
        let name = match name {
            Some(name) => name,
            None => copy_name(&original.name),
        };
        let at = now();
        // The expiry policy is the lifetime, counted again from now.
        let expires_at = match original.lifetime() {
            None => None,
            Some(lifetime) => Some(
                at.checked_add_signed(lifetime)
                    .filter(|end| validate_expiry(*end, at, "expire_time").is_ok())
                    .ok_or_else(|| {
                        AuthorityError::FailedPrecondition(
                            "the token's lifetime, counted from now, is out of range".into(),
                        )
                    })?,
            ),
        };
        let secret = TokenSecret::generate();
        let token = Token::issue(
            TokenSpec {
                account_id: original.account_id.clone(),
                owner_id: original.owner_id.clone(),
                name,
                description: original.description.clone(),
                scopes,
                labels: original.labels.clone(),
                api_version: original.api_version.clone(),
                allowed_networks: original.allowed_networks.clone(),
                expires_at,
                created_by: caller.principal_id().clone(),
            },
            secret.display_hint(),
            at,
        );
        account.token_policy.check_token(&token)?;
        let mut audit = Self::audit(
            caller,
            AuditAction::TokenDuplicate,
            token.id.as_str(),
            &token.account_id,
            at,
        );
        audit
            .details
            .insert("source_token_id".to_owned(), original.id.to_string());
        note_escalation(caller, &owner, &token.scopes, &mut audit.details);
        let change = Change {
            audit,
            invalidation: None,
        };
        let event = self
            .store
            .insert_token(&token, &secret.hash(), account.version, &change)
            .await?;
        let revision = self.apply_committed(event).await;
        tracing::info!(token_id = %token.id, source_token_id = %original.id, "token duplicated");
        Ok(Committed {
            value: (token, secret),
            revision,
        })
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
