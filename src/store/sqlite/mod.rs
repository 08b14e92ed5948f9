//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so write transactions queue in
//! process instead of failing with SQLITE_BUSY; reads use a separate pool and see a
//! consistent snapshot per transaction.

#[path = "../sql/records.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "the shared SQL is compiled once per backend, on purpose"
)]
mod records;
#[path = "../sql/tokens.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "the shared SQL is compiled once per backend, on purpose"
)]
mod tokens;

/// The database of the SQL shared with the other backend (see `store/sql/`).
type Db = sqlx::Sqlite;
/// `strpos(haystack, needle)` on PostgreSQL, `instr` on SQLite: same arguments.
const SUBSTRING_POSITION: &str = "instr";

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};

use super::rows::{
    AccountRow, AuditRow, EventRow, PrincipalRow, ReplayRow, encode_permissions, replay_page,
};
use super::time::to_micros;
use super::{
    AuditQuery, Bootstrap, BulkRevoke, Change, PrincipalQuery, ReplayPage, SecretChange, Store,
    StoreError, StoreResult, TokenQuery,
};
use crate::domain::{
    Account, AccountId, AuditEvent, Invalidation, InvalidationEvent, InvalidationKind,
    InvalidationTarget, Principal, PrincipalId, SecretHash, Timestamp, Token, TokenId,
    VerificationSnapshot,
};
use records::{conflict_or_missing, insert_account, insert_audit, insert_principal, push_after};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    /// Exactly one connection: SQLite has one writer at a time anyway.
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite:path`).
    pub async fn connect(url: &str, read_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Database)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses no committed transaction on a process crash, only on
            // power loss, at a fraction of FULL's fsyncs.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(read_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }

    /// Brings the schema up to date.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin().await?)
    }
}

/// Writes a change's audit record and invalidation event inside `tx`.
async fn record_change(
    tx: &mut Transaction<'_, Sqlite>,
    change: &Change,
) -> StoreResult<Option<InvalidationEvent>> {
    insert_audit(tx, &change.audit).await?;
    match &change.invalidation {
        Some(invalidation) => insert_event(tx, invalidation, change.audit.occurred_at)
            .await
            .map(Some),
        None => Ok(None),
    }
}

/// Appends an invalidation event to the outbox; its revision is assigned here.
async fn insert_event(
    tx: &mut Transaction<'_, Sqlite>,
    invalidation: &Invalidation,
    occurred_at: Timestamp,
) -> StoreResult<InvalidationEvent> {
    let (token_id, principal_id) = match &invalidation.target {
        InvalidationTarget::Token(id) => (Some(id.as_str()), None),
        InvalidationTarget::Principal(id) => (None, Some(id.as_str())),
        InvalidationTarget::Account(_) => (None, None),
    };
    let revision: i64 = sqlx::query_scalar(
        "INSERT INTO invalidation_events (kind, account_id, token_id, principal_id, occurred_at)
         VALUES (?, ?, ?, ?, ?) RETURNING revision",
    )
    .bind(invalidation.kind.as_str())
    .bind(invalidation.account_id.as_str())
    .bind(token_id)
    .bind(principal_id)
    .bind(to_micros(occurred_at))
    .fetch_one(&mut **tx)
    .await?;
    Ok(InvalidationEvent {
        revision: u64::try_from(revision)
            .map_err(|_| StoreError::Corrupt("negative revision".into()))?,
        invalidation: invalidation.clone(),
        occurred_at,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn bootstrap(&self, bootstrap: &Bootstrap) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&mut *tx)
            .await?;
        if accounts > 0 {
            return Ok(false);
        }
        insert_account(&mut tx, &bootstrap.account).await?;
        insert_principal(&mut tx, &bootstrap.owner).await?;
        tokens::insert(&mut tx, &bootstrap.token, &bootstrap.secret).await?;
        for audit in &bootstrap.audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn revision(&self) -> StoreResult<u64> {
        let revision: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM invalidation_events")
                .fetch_one(&self.reader)
                .await?;
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    async fn setting_or_init(&self, key: &str, initial: &[u8]) -> StoreResult<Vec<u8>> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(initial)
            .execute(&mut *tx)
            .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(value)
    }

    async fn insert_account(
        &self,
        account: &Account,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = self.begin_write().await?;
        insert_account(&mut tx, account).await?;
        let event = record_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        sqlx::query_as::<_, AccountRow>("SELECT * FROM accounts WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?
            .map(Account::try_from)
            .transpose()
    }

    async fn update_account(
        &self,
        account: &Account,
        expected_version: i64,
        revoke_tokens: Option<&BulkRevoke>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE accounts SET display_name = ?, api_access_enabled = ?, updated_at = ?, version = ?
             WHERE id = ? AND version = ?",
        )
        .bind(account.display_name.as_str())
        .bind(account.api_access_enabled)
        .bind(to_micros(account.updated_at))
        .bind(account.version)
        .bind(account.id.as_str())
        .bind(expected_version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(
                conflict_or_missing(&mut tx, "accounts", "account", account.id.as_str()).await,
            );
        }
        if let Some(revoke) = revoke_tokens {
            tokens::revoke_all_of_account(&mut tx, &account.id, revoke).await?;
        }
        let event = record_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn insert_principal(
        &self,
        principal: &Principal,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = self.begin_write().await?;
        insert_principal(&mut tx, principal).await?;
        let event = record_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn principal(&self, id: &PrincipalId) -> StoreResult<Option<Principal>> {
        sqlx::query_as::<_, PrincipalRow>("SELECT * FROM principals WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?
            .map(Principal::try_from)
            .transpose()
    }

    async fn list_principals(&self, query: &PrincipalQuery) -> StoreResult<Vec<Principal>> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT * FROM principals WHERE account_id = ");
        sql.push_bind(query.account_id.as_str());
        if let Some((created_at, id)) = &query.after {
            push_after(&mut sql, *created_at, id.as_str());
        }
        sql.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(query.limit));
        sql.build_query_as::<PrincipalRow>()
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(Principal::try_from)
            .collect()
    }

    async fn update_principal(
        &self,
        principal: &Principal,
        expected_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE principals SET display_name = ?, permissions = ?, disabled = ?, updated_at = ?, version = ?
             WHERE id = ? AND version = ?",
        )
        .bind(principal.display_name.as_str())
        .bind(encode_permissions(&principal.permissions))
        .bind(principal.disabled)
        .bind(to_micros(principal.updated_at))
        .bind(principal.version)
        .bind(principal.id.as_str())
        .bind(expected_version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(conflict_or_missing(
                &mut tx,
                "principals",
                "principal",
                principal.id.as_str(),
            )
            .await);
        }
        let event = record_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn insert_token(
        &self,
        token: &Token,
        secret: &SecretHash,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = self.begin_write().await?;
        tokens::insert(&mut tx, token, secret).await?;
        let event = record_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn token(&self, id: &TokenId) -> StoreResult<Option<Token>> {
        tokens::get(&self.reader, id).await
    }

    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<Vec<Token>> {
        tokens::list(&self.reader, query).await
    }

    async fn update_token(
        &self,
        token: &Token,
        expected_version: i64,
        secret: Option<&SecretChange>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = self.begin_write().await?;
        if !tokens::update(&mut tx, token, expected_version).await? {
            return Err(conflict_or_missing(&mut tx, "tokens", "token", token.id.as_str()).await);
        }
        if let Some(secret) = secret {
            tokens::replace_secret(&mut tx, &token.id, secret).await?;
        }
        let event = record_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn delete_token(
        &self,
        id: &TokenId,
        expected_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM tokens WHERE id = ? AND version = ?")
            .bind(id.as_str())
            .bind(expected_version)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(conflict_or_missing(&mut tx, "tokens", "token", id.as_str()).await);
        }
        let event = record_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn verification_snapshot(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(VerificationSnapshot, u64)>> {
        // One read transaction: the revision and the rows come from the same snapshot, so
        // an answer is never tagged with a revision newer than the data it was computed from.
        let mut tx = self.reader.begin().await?;
        let revision: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM invalidation_events")
                .fetch_one(&mut *tx)
                .await?;
        let snapshot = tokens::snapshot(&mut tx, hash).await?;
        tx.commit().await?;
        Ok(snapshot.map(|s| (s, u64::try_from(revision).unwrap_or(0))))
    }

    async fn record_last_use(&self, uses: &[(TokenId, Timestamp)]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for (id, at) in uses {
            sqlx::query(
                "UPDATE tokens SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
            )
            .bind(to_micros(*at))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT * FROM audit_events WHERE account_id = ");
        sql.push_bind(query.account_id.as_str());
        if let Some(target_id) = &query.target_id {
            sql.push(" AND target_id = ").push_bind(target_id.as_str());
        }
        if let Some(actor_id) = &query.actor_id {
            sql.push(" AND actor_id = ").push_bind(actor_id.as_str());
        }
        if let Some(action) = &query.action {
            sql.push(" AND action = ").push_bind(action.as_str());
        }
        if let Some(after) = query.occurred_at_or_after {
            sql.push(" AND occurred_at >= ").push_bind(to_micros(after));
        }
        if let Some(before) = query.occurred_before {
            sql.push(" AND occurred_at < ").push_bind(to_micros(before));
        }
        if let Some(before_id) = query.before_id {
            sql.push(" AND id < ").push_bind(before_id);
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        sql.build_query_as::<AuditRow>()
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(AuditEvent::try_from)
            .collect()
    }

    async fn events_after(&self, after: u64, limit: u32) -> StoreResult<Vec<InvalidationEvent>> {
        // SQLite has one writer and assigns revisions inside it, so revisions commit in order
        // and a plain range read never skips one.
        sqlx::query_as::<_, EventRow>(
            "SELECT * FROM invalidation_events WHERE revision > ? ORDER BY revision LIMIT ?",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(InvalidationEvent::try_from)
        .collect()
    }

    async fn replay_events(&self, after: u64, limit: u32) -> StoreResult<ReplayPage> {
        // One statement, so one snapshot: the oldest revision belongs to the same state of
        // the table as the events read.
        let rows = sqlx::query_as::<_, ReplayRow>(
            "SELECT e.*, (SELECT MIN(revision) FROM invalidation_events) AS oldest
             FROM invalidation_events e WHERE e.revision > ? ORDER BY e.revision LIMIT ?",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        replay_page(rows)
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM invalidation_events
             WHERE revision < COALESCE(
                 (SELECT MIN(revision) FROM invalidation_events WHERE occurred_at >= ?),
                 (SELECT MAX(revision) FROM invalidation_events))",
        )
        .bind(to_micros(before))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }

    async fn announce_expired_secrets(
        &self,
        now: Timestamp,
    ) -> StoreResult<Vec<InvalidationEvent>> {
        let mut tx = self.begin_write().await?;
        let due: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.token_id, t.account_id FROM token_secrets s JOIN tokens t ON t.id = s.token_id
             WHERE s.expiry_announced = 0 AND s.expires_at <= ?",
        )
        .bind(to_micros(now))
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query("UPDATE token_secrets SET expiry_announced = 1 WHERE expiry_announced = 0 AND expires_at <= ?")
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
        let mut events = Vec::with_capacity(due.len());
        for (token_id, account_id) in due {
            let invalidation = Invalidation {
                kind: InvalidationKind::TokenSecretExpired,
                target: InvalidationTarget::Token(TokenId::from_trusted(token_id)),
                account_id: AccountId::from_trusted(account_id),
            };
            events.push(insert_event(&mut tx, &invalidation, now).await?);
        }
        tx.commit().await?;
        Ok(events)
    }
}
