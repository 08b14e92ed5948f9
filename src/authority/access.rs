//! Access look-ups shared by the use cases: an object the caller may see (others' objects
//! are reported as not found, so that their existence is not revealed), and a token the
//! caller may change (one within its power).

use super::{Authority, AuthorityError, AuthorityResult, Caller, check_etag};
use crate::domain::{PermissionSet, Principal, PrincipalId, Token, TokenId};

impl Authority {
    /// Loads a token the caller may see, or NotFound.
    pub(super) async fn visible_token(
        &self,
        caller: &Caller,
        id: &TokenId,
    ) -> AuthorityResult<Token> {
        let token = self
            .store
            .token(id)
            .await?
            .ok_or(AuthorityError::NotFound("token"))?;
        caller.ensure_access(&token.account_id, "token")?;
        Ok(token)
    }

    /// Loads a principal the caller may see, or NotFound.
    pub(super) async fn visible_principal(
        &self,
        caller: &Caller,
        id: &PrincipalId,
    ) -> AuthorityResult<Principal> {
        let principal = self
            .store
            .principal(id)
            .await?
            .ok_or(AuthorityError::NotFound("principal"))?;
        caller.ensure_access(&principal.account_id, "principal")?;
        Ok(principal)
    }

    /// Loads a token the caller may see and change: one whose permissions (its scopes
    /// within its owner's current permissions) the caller may grant, so that nobody revokes,
    /// disables, revives, extends or deletes a more powerful token. Returns its owner too.
    pub(super) async fn changeable_token(
        &self,
        caller: &Caller,
        id: &TokenId,
        etag: Option<&str>,
    ) -> AuthorityResult<(Token, Principal)> {
        let token = self.visible_token(caller, id).await?;
        check_etag(etag, token.version)?;
        let owner = self.visible_principal(caller, &token.owner_id).await?;
        let held = PermissionSet::effective_scopes(&token.scopes, &owner.permissions);
        let disclose = caller.may_read_permissions_of(&owner.id);
        caller.ensure_may_act_on(&held, "token", disclose)?;
        Ok((token, owner))
    }
}
