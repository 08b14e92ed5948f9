//! The token use cases that issue a secret or read: create, duplicate, get and list. The
//! changes to an existing token (update, revoke, disable, enable, delete, reset) are in
//! `token_changes.rs`.

use std::collections::BTreeMap;

use super::paging::{self, Listing, Page, decode_time_position, time_position};
use super::token_requests::{NewToken, TokenFilter};
use super::token_rules::{copy_name, issued_scopes, note_escalation};
use super::{Authority, AuthorityError, AuthorityResult, Caller, Committed};
use crate::domain::{
    Account, AuditAction, Permission, PermissionSet, Principal, Timestamp, Token, TokenId,
    TokenName, TokenSecret, TokenSpec, validate_expiry,
};
use crate::store::{Change, TokenQuery};

impl Authority {
    /// The scopes of a new secret for `owner`, handed to `caller`, derived from `scopes`:
    /// the owner must be enabled in an account with API access, and what the secret can do
    /// must lie within what the caller may grant (see [`issued_scopes`]). With them, the
    /// owner's account, whose token policy the token issued must keep (and whose version
    /// the change then commits at, see [`Store::insert_token`](crate::store::Store)).
    pub(super) async fn issuable_scopes(
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
        let at = self.now();
        let expires_at = request.expiry.resolve(at)?;
        let spec = TokenSpec {
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
        };
        let issued = self
            .issue(
                caller,
                &owner,
                &account,
                spec,
                at,
                AuditAction::TokenCreate,
                BTreeMap::new(),
            )
            .await?;
        tracing::info!(token_id = %issued.value.0.id, owner_id = %owner.id, "token created");
        Ok(issued)
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
                now: self.now(),
                after,
                limit: limit + 1,
            })
            .await?;
        Ok(Page::from_overfetch(tokens, limit, |last| {
            listing.token_after(&time_position(last.created_at, &last.id))
        }))
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
        let at = self.now();
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
        let spec = TokenSpec {
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
        };
        let details = BTreeMap::from([("source_token_id".to_owned(), original.id.to_string())]);
        let issued = self
            .issue(
                caller,
                &owner,
                &account,
                spec,
                at,
                AuditAction::TokenDuplicate,
                details,
            )
            .await?;
        tracing::info!(token_id = %issued.value.0.id, source_token_id = %original.id, "token duplicated");
        Ok(issued)
    }

    /// Issues a new token from `spec` with a new secret (create and duplicate): it must keep
    /// the account's token policy, and is committed with its audit record (`action`, with
    /// `details` and any escalation noted) at the account's version it was checked at.
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of one issuance, named"
    )]
    async fn issue(
        &self,
        caller: &Caller,
        owner: &Principal,
        account: &Account,
        spec: TokenSpec,
        at: Timestamp,
        action: AuditAction,
        details: BTreeMap<String, String>,
    ) -> AuthorityResult<Committed<(Token, TokenSecret)>> {
        let secret = TokenSecret::generate();
        let token = Token::issue(spec, secret.display_hint(), at);
        account.token_policy.check_token(&token)?;
        let mut audit = Self::audit(caller, action, token.id.as_str(), &token.account_id, at);
        audit.details = details;
        note_escalation(caller, owner, &token.scopes, &mut audit.details);
        let change = Change {
            audit,
            invalidation: None,
        };
        let event = self
            .store
            .insert_token(&token, &secret.hash(), account.version, &change)
            .await?;
        let revision = self.apply_committed(event).await;
        Ok(Committed {
            value: (token, secret),
            revision,
        })
    }
}
