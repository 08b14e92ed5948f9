//! Persistence: the [`Store`] trait the authority needs, implemented once in SQL generic
//! over the database (`sql/`); each database (`sqlite/`, `postgres/`) supplies only what
//! really differs (the `Dialect` and `Backend` traits in `backend.rs`).
//!
//! The store knows SQL and nothing of the rules. Each mutating method commits the change,
//! its audit record and (when the change can alter a verification answer) its invalidation
//! event in a single transaction: the events table is the outbox that caches and watchers
//! follow, so an acknowledged change can never be missing from it.

mod backend;
mod error;
mod open;
pub mod postgres;
mod rows;
mod schema;
mod sql;
pub mod sqlite;
mod time;

use async_trait::async_trait;

use crate::domain::{
    Account, AccountId, AuditEvent, AuditRecord, Invalidation, InvalidationEvent, Principal,
    PrincipalId, SecretHash, Timestamp, Token, TokenId, TokenPolicy, TokenState,
    VerificationSnapshot,
};

pub(crate) use backend::{Backend, Dialect};
pub use error::StoreError;
pub use open::{OpenOptions, open};

/// The setting that holds which history of the database revisions count in: a backup's copy
/// drops it, so that a restored database starts a history of its own at its next start (see
/// `Checkpoint.history` in the proto).
pub const HISTORY_SETTING: &str = "history_id";

pub type StoreResult<T> = Result<T, StoreError>;

/// A change as the store commits it: always audited, sometimes an invalidation.
#[derive(Debug, Clone)]
pub struct Change {
    pub audit: AuditRecord,
    pub invalidation: Option<Invalidation>,
}

/// How a token's secrets change in an update (a reset).
#[derive(Debug, Clone)]
pub struct SecretChange {
    /// The new current secret.
    pub new_hash: SecretHash,
    /// Until when the secret being replaced keeps working; None: it stops now. Secrets older
    /// than the one being replaced stop now in every case.
    pub previous_expires_at: Option<Timestamp>,
}

/// When API access is switched off, every token of the account that is not yet revoked is
/// revoked with this actor and reason, so that switching access back on revives nothing.
#[derive(Debug, Clone)]
pub struct BulkRevoke {
    pub by: PrincipalId,
    pub reason: String,
    pub at: Timestamp,
}

/// Filters and position of a token listing. Ordered by (create time, id), oldest first.
#[derive(Debug, Clone)]
pub struct TokenQuery {
    pub account_id: AccountId,
    pub owner_id: Option<PrincipalId>,
    pub name_contains: Option<String>,
    pub state: Option<TokenState>,
    pub created_at_or_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    /// Last used before this time, or never used.
    pub last_used_before: Option<Timestamp>,
    /// Expiring (or expired) before this time; never-expiring tokens do not match.
    pub expires_before: Option<Timestamp>,
    /// Only tokens that break this policy's lifetime or scope rule (none when it has
    /// neither).
    pub breaking: Option<TokenPolicy>,
    /// The instant EXPIRED is judged against.
    pub now: Timestamp,
    /// Start after this (create time, id).
    pub after: Option<(Timestamp, TokenId)>,
    pub limit: u32,
}

/// Position of a principal listing. Ordered by (create time, id).
#[derive(Debug, Clone)]
pub struct PrincipalQuery {
    pub account_id: AccountId,
    pub after: Option<(Timestamp, PrincipalId)>,
    pub limit: u32,
}

/// Filters and position of an audit listing. Newest first.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub account_id: AccountId,
    pub target_id: Option<String>,
    pub actor_id: Option<PrincipalId>,
    pub action: Option<String>,
    pub occurred_at_or_after: Option<Timestamp>,
    pub occurred_before: Option<Timestamp>,
    /// Start below this audit event id.
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// What the first start of a service writes: the operator account, its owner and a token.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub account: Account,
    pub owner: Principal,
    pub token: Token,
    pub secret: SecretHash,
    pub audit: Vec<AuditRecord>,
}

/// One page of a watcher's replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayPage {
    /// The events after the requested revision, in revision order.
    pub events: Vec<InvalidationEvent>,
    /// The oldest revision retained, read after the events; None when none is.
    pub oldest_retained: Option<u64>,
}

/// How busy one connection pool is, for the metrics.
pub use crate::metrics::PoolUsage;

/// The persistence the authority needs. Implementations must make every mutating method
/// atomic, and must refuse an update whose `expected_version` is no longer current with
/// [`StoreError::Conflict`] (optimistic concurrency).
///
/// Mutating methods return the invalidation event they wrote, with its revision, if the
/// change carried one.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes `bootstrap` if the store holds no account yet; returns whether it did.
    async fn bootstrap(&self, bootstrap: &Bootstrap) -> StoreResult<bool>;

    /// The revision of the newest invalidation event (0 when there is none).
    async fn revision(&self) -> StoreResult<u64>;

    /// A server-wide setting, created with `initial` if absent; returns the stored value.
    /// Concurrent first calls agree on one value.
    async fn setting_or_init(&self, key: &str, initial: &[u8]) -> StoreResult<Vec<u8>>;

    async fn insert_account(
        &self,
        account: &Account,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>>;
    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>>;
    async fn update_account(
        &self,
        account: &Account,
        expected_version: i64,
        revoke_tokens: Option<&BulkRevoke>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>>;

    async fn insert_principal(
        &self,
        principal: &Principal,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>>;
    async fn principal(&self, id: &PrincipalId) -> StoreResult<Option<Principal>>;
    async fn list_principals(&self, query: &PrincipalQuery) -> StoreResult<Vec<Principal>>;
    async fn update_principal(
        &self,
        principal: &Principal,
        expected_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>>;

    /// `policy_version`, here and in [`Store::update_token`]: the version of the token's
    /// account whose token policy the change was checked against. The change commits only
    /// while the account is still at that version (else [`StoreError::Conflict`]), so that no
    /// token slips past a policy set concurrently.
    async fn insert_token(
        &self,
        token: &Token,
        secret: &SecretHash,
        policy_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>>;
    async fn token(&self, id: &TokenId) -> StoreResult<Option<Token>>;
    /// How many tokens an account has, revoked ones included (for its quota).
    async fn count_tokens(&self, account_id: &AccountId) -> StoreResult<u64>;
    /// How many principals an account has (for its quota).
    async fn count_principals(&self, account_id: &AccountId) -> StoreResult<u64>;
    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<Vec<Token>>;
    async fn update_token(
        &self,
        token: &Token,
        expected_version: i64,
        secret: Option<&SecretChange>,
        policy_version: Option<i64>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>>;
    async fn delete_token(
        &self,
        id: &TokenId,
        expected_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>>;

    /// Everything the verification of the secret with this hash depends on, and a revision
    /// read before it: the data is at least as new as the revision, never older (the answer
    /// cached from it is outdated by any event after that revision). None: no such secret.
    async fn verification_snapshot(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(VerificationSnapshot, u64)>>;

    /// The token the secret with this hash was issued for, whether it opens the token now or
    /// was replaced by a reset since; None when no token that still exists ever had it.
    /// Replaced secrets are kept (by hash) as long as their token, so that a leak report of
    /// one still finds the token.
    async fn issued_secret_token(&self, hash: &SecretHash) -> StoreResult<Option<TokenId>>;

    /// Records last-use times in one batch; a time never moves backwards.
    async fn record_last_use(&self, uses: &[(TokenId, Timestamp)]) -> StoreResult<()>;

    /// Appends an audit record that goes with no change of its own (a leak report's record
    /// in the reporter's account).
    async fn record_audit(&self, audit: &AuditRecord) -> StoreResult<()>;

    async fn list_audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;

    /// Committed invalidation events with a revision above `after`, in revision order, at
    /// most `limit`. Never skips an event that commits later with a lower revision.
    async fn events_after(&self, after: u64, limit: u32) -> StoreResult<Vec<InvalidationEvent>>;

    /// Like [`Store::events_after`], for a watcher's replay, of `accounts` only when given
    /// (read through an index, so that a tenant's watcher does not read every tenant's
    /// events); then the revision of the oldest event still retained, so that the watcher
    /// can tell whether pruning took any event it has not seen.
    async fn replay_events(
        &self,
        after: u64,
        limit: u32,
        accounts: Option<&[AccountId]>,
    ) -> StoreResult<ReplayPage>;

    /// Deletes the oldest events that occurred before `before`: only a contiguous prefix of
    /// revisions (an event is kept while any older one is too new to go, since revision
    /// order and clock order can disagree), and never the newest one (it holds the current
    /// revision). Returns how many were deleted.
    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64>;

    /// Announces the secrets whose grace period ended at or before `now`: each gets one
    /// `TokenSecretExpired` event, written in the same transaction that marks it announced,
    /// so that every secret is announced exactly once (by whichever replica gets there first).
    async fn announce_expired_secrets(&self, now: Timestamp)
    -> StoreResult<Vec<InvalidationEvent>>;

    /// Ticks when other processes may have committed events (PostgreSQL's NOTIFY); None when
    /// no other process writes to this store (SQLite).
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        None
    }

    /// How busy each connection pool is right now.
    fn pool_usage(&self) -> Vec<PoolUsage> {
        Vec::new()
    }
}
