//! The account token policy use case: setting the limits an account's tokens must keep
//! (reading it is reading the account). The token use cases (`tokens.rs`) enforce the
//! policy; setting one changes no token, and `ListTokens` finds those that break it.

use std::collections::BTreeMap;

use super::{Authority, AuthorityError, AuthorityResult, Caller, Committed, check_etag};
use crate::domain::{Account, AccountId, AuditAction, Permission, TokenPolicy};
use crate::store::Change;

/// How often an unconditional SetTokenPolicy retries after losing to a concurrent change of
/// the account (its API access): the policy replaces the old one whole, so the retry cannot
/// undo what the other change did.
const SET_ATTEMPTS: usize = 3;

impl Authority {
    /// Replaces the account's policy. Requires `accounts.manage`; another account's only for
    /// operators. A policy only restricts what tokens may be issued, so setting one needs no
    /// power over the account's principals.
    pub async fn set_token_policy(
        &self,
        caller: &Caller,
        account: Option<AccountId>,
        policy: TokenPolicy,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<Account>> {
        caller.require(Permission::ACCOUNTS_MANAGE)?;
        let id = caller.target_account(account)?;
        let attempts = if etag.is_some() { 1 } else { SET_ATTEMPTS };
        let mut attempt = 1;
        loop {
            match self.try_set_token_policy(caller, &id, &policy, etag).await {
                Err(AuthorityError::Aborted(_)) if attempt < attempts => attempt += 1,
                result => return result,
            }
        }
    }

    async fn try_set_token_policy(
        &self,
        caller: &Caller,
        id: &AccountId,
        policy: &TokenPolicy,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<Account>> {
        let mut account = self.stored_account(id).await?;
        check_etag(etag, account.version)?;
        if &account.token_policy == policy {
            return Ok(Committed {
                value: account,
                revision: self.revision(),
            });
        }
        let at = self.now();
        let mut audit = Self::audit(
            caller,
            AuditAction::AccountSetTokenPolicy,
            id.as_str(),
            id,
            at,
        );
        describe(&account.token_policy, "previous_", &mut audit.details);
        describe(policy, "", &mut audit.details);
        let expected_version = account.version;
        account.token_policy = policy.clone();
        account.version += 1;
        account.updated_at = at;
        // Verification answers do not depend on the policy: no invalidation event.
        let change = Change {
            audit,
            invalidation: None,
        };
        let event = self
            .store
            .update_account(&account, expected_version, None, &change)
            .await?;
        let revision = self.apply_committed(event).await;
        tracing::info!(account_id = %id, "token policy set");
        Ok(Committed {
            value: account,
            revision,
        })
    }

    /// The policy tokens of `account` must keep.
    pub(super) async fn token_policy(&self, account: &AccountId) -> AuthorityResult<TokenPolicy> {
        Ok(self.stored_account(account).await?.token_policy)
    }
}

/// The rules of `policy` in an audit record's details, each key after `prefix`; an empty
/// value for a rule that is not set.
fn describe(policy: &TokenPolicy, prefix: &str, details: &mut BTreeMap<String, String>) {
    let seconds = |d: Option<chrono::Duration>| d.map(|d| d.num_seconds().to_string());
    let rules = [
        ("max_lifetime_seconds", seconds(policy.max_lifetime())),
        (
            "max_reset_grace_period_seconds",
            seconds(policy.max_reset_grace()),
        ),
        (
            "allowed_scopes",
            Some(policy.allowed_scopes().to_strings().join(",")),
        ),
    ];
    for (rule, value) in rules {
        details.insert(format!("{prefix}{rule}"), value.unwrap_or_default());
    }
}
