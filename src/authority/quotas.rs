//! Per-account quotas: how many tokens and principals one account may hold. They bound what
//! one tenant can make the others pay for (a listing filter such as `name_contains` scans
//! the account's tokens), and what a stolen `tokens.create` credential can pile up.
//!
//! The count is read before the insert, outside its transaction: two creates racing at the
//! quota's edge can both pass, so an account may exceed its quota by as many creates as run
//! at once. A soft cap is enough for what it bounds. An account found at a quota is
//! remembered for [`AT_QUOTA_MEMORY`], so that creates sent in a loop against a full
//! account do not each count its objects again (a delete here forgets it at once; other
//! replicas within that second).

use std::time::Duration;

use super::{Authority, AuthorityError, AuthorityResult};
use crate::domain::AccountId;

/// How long an account found at a quota is refused without counting again.
pub(super) const AT_QUOTA_MEMORY: Duration = Duration::from_secs(1);

/// What kind of object a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Quota {
    Tokens,
    Principals,
}

/// Accounts recently found at a quota.
pub(super) fn at_quota_memory() -> moka::sync::Cache<(AccountId, Quota), ()> {
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(AT_QUOTA_MEMORY)
        .build()
}

impl Authority {
    /// RESOURCE_EXHAUSTED, naming the quota, when `account` holds its quota of tokens.
    pub(super) async fn ensure_token_quota(&self, account: &AccountId) -> AuthorityResult<()> {
        self.ensure_quota(account, Quota::Tokens).await
    }

    /// A token of `account` was deleted: room again, here at once.
    pub(super) fn forget_quota_refusal(&self, account: &AccountId) {
        self.at_quota.invalidate(&(account.clone(), Quota::Tokens));
    }

    /// RESOURCE_EXHAUSTED, naming the quota, when `account` holds its quota of principals.
    pub(super) async fn ensure_principal_quota(&self, account: &AccountId) -> AuthorityResult<()> {
        self.ensure_quota(account, Quota::Principals).await
    }

    /// RESOURCE_EXHAUSTED when `account` holds its `quota`: remembered, or counted now.
    async fn ensure_quota(&self, account: &AccountId, quota: Quota) -> AuthorityResult<()> {
        let max = match quota {
            Quota::Tokens => self.config.max_tokens_per_account,
            Quota::Principals => self.config.max_principals_per_account,
        };
        if max == 0 {
            return Ok(());
        }
        let key = (account.clone(), quota);
        // Remembered only when a count found the account full, so that the memory lapses
        // AT_QUOTA_MEMORY after that count: refusals do not keep it alive.
        if !self.at_quota.contains_key(&key) {
            let held = match quota {
                Quota::Tokens => self.store.count_tokens(account).await?,
                Quota::Principals => self.store.count_principals(account).await?,
            };
            if held < max {
                return Ok(());
            }
            self.at_quota.insert(key, ());
        }
        Err(AuthorityError::ResourceExhausted(match quota {
            Quota::Tokens => format!(
                "the account holds its quota of {max} tokens (revoked ones count until deleted): delete tokens it no longer needs, or ask an operator to raise --max-tokens-per-account"
            ),
            Quota::Principals => format!(
                "the account holds its quota of {max} principals: ask an operator to raise --max-principals-per-account"
            ),
        }))
    }
}
