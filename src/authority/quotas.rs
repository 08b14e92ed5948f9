//! Per-account quotas: how many tokens and principals one account may hold. They bound what
//! one tenant can make the others pay for (a listing filter such as `name_contains` scans
//! the account's tokens), and what a stolen `tokens.create` credential can pile up.
//!
//! The count is read before the insert, outside its transaction: two creates racing at the
//! quota's edge can both pass, so an account may exceed its quota by as many creates as run
//! at once. A soft cap is enough for what it bounds.

use super::{Authority, AuthorityError, AuthorityResult};
use crate::domain::AccountId;

impl Authority {
    /// RESOURCE_EXHAUSTED, naming the quota, when `account` holds its quota of tokens.
    pub(super) async fn ensure_token_quota(&self, account: &AccountId) -> AuthorityResult<()> {
        let max = self.config.max_tokens_per_account;
        if max == 0 || self.store.count_tokens(account).await? < max {
            return Ok(());
        }
        Err(AuthorityError::ResourceExhausted(format!(
            "the account holds its quota of {max} tokens (revoked ones count until deleted): delete tokens it no longer needs, or ask an operator to raise --max-tokens-per-account"
        )))
    }

    /// RESOURCE_EXHAUSTED, naming the quota, when `account` holds its quota of principals.
    pub(super) async fn ensure_principal_quota(&self, account: &AccountId) -> AuthorityResult<()> {
        let max = self.config.max_principals_per_account;
        if max == 0 || self.store.count_principals(account).await? < max {
            return Ok(());
        }
        Err(AuthorityError::ResourceExhausted(format!(
            "the account holds its quota of {max} principals: ask an operator to raise --max-principals-per-account"
        )))
    }
}
