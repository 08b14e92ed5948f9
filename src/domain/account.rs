//! Accounts: the tenants. Nothing crosses an account boundary except the principals of the
//! operator account, the one created at bootstrap.

use super::{AccountId, DisplayName, Timestamp, TokenPolicy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub display_name: DisplayName,
    /// When false, every token of the account fails verification.
    pub api_access_enabled: bool,
    /// The bootstrap account: its principals may act in every account.
    pub operator: bool,
    /// The limits the account's tokens must keep (by default none).
    pub token_policy: TokenPolicy,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Bumped by every change; the basis of etags and of optimistic concurrency.
    pub version: i64,
}
