//! The shared store for several replicas: PostgreSQL.
//!
//! Every writer that appends an invalidation event holds a transaction-scoped advisory lock
//! from taking its revision until it commits, so revisions become visible in order: a
//! replica reading "events after N" can never skip one that commits later. Each commit that
//! writes an event also sends a NOTIFY; every replica LISTENs and then reads the events table
//! from its last revision, so a lost notification costs at most one poll interval, never an
//! event.

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
type Db = sqlx::Postgres;
/// `strpos(haystack, needle)` on PostgreSQL, `instr` on SQLite: same arguments.
const SUBSTRING_POSITION: &str = "strpos";

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};

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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The NOTIFY channel that announces new invalidation events.
const EVENTS_CHANNEL: &str = "token_authority_events";
/// The advisory lock that orders revisions (an arbitrary constant: "tka" in ASCII).
const REVISION_LOCK: i64 = 0x74_6b_61;

/// The PostgreSQL implementation of [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Ticks whenever another process (or this one) announces new events.
    changes: tokio::sync::watch::Sender<()>,
    /// Keeps the channel open while the store lives: the listener stops once every clone of
    /// the store (and every subscriber) is gone.
    _alive: tokio::sync::watch::Receiver<()>,
}

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a call waits for a connection before failing with UNAVAILABLE.
    pub acquire_timeout: Duration,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and starts listening for other replicas' events.
    pub async fn connect(url: &str, settings: PoolSettings) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(2))
            .acquire_timeout(settings.acquire_timeout)
            .connect(url)
            .await?;
        let (changes, alive) = tokio::sync::watch::channel(());
        tokio::spawn(listen(pool.clone(), changes.clone()));
        Ok(Self {
            pool,
            changes,
            _alive: alive,
        })
    }

    /// Brings the schema up to date. Concurrent replicas are serialised by sqlx's own lock.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

/// Follows NOTIFY on the events channel for as long as the store lives, reconnecting after
/// failures; every notification (and every reconnect, which may have missed some) ticks
/// `changes`.
async fn listen(pool: PgPool, changes: tokio::sync::watch::Sender<()>) {
    loop {
        if changes.is_closed() {
            return;
        }
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen(EVENTS_CHANNEL).await {
                    tracing::warn!(%error, "could not LISTEN for events; retrying");
                } else {
                    changes.send_replace(());
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(_)) => {
                                changes.send_replace(());
                            }
                            // The connection was lost; notifications may have been missed.
                            Ok(None) => changes.send_replace(()),
                            Err(error) => {
                                tracing::warn!(%error, "event listener failed; reconnecting");
                                break;
                            }
                        }
                        if changes.is_closed() {
                            return;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not connect the event listener; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Writes a change's audit record and invalidation event inside `tx`.
async fn record_change(
    tx: &mut Transaction<'_, Postgres>,
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

/// Appends an invalidation event to the outbox; its revision is assigned here. Takes the
/// revision lock (held until the transaction ends) and queues the NOTIFY (sent at commit).
async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    invalidation: &Invalidation,
    occurred_at: Timestamp,
) -> StoreResult<InvalidationEvent> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(REVISION_LOCK)
        .execute(&mut **tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(EVENTS_CHANNEL)
        .execute(&mut **tx)
        .await?;
    let (token_id, principal_id) = match &invalidation.target {
        InvalidationTarget::Token(id) => (Some(id.as_str()), None),
        InvalidationTarget::Principal(id) => (None, Some(id.as_str())),
        InvalidationTarget::Account(_) => (None, None),
    };
    let revision: i64 = sqlx::query_scalar(
        "INSERT INTO invalidation_events (kind, account_id, token_id, principal_id, occurred_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING revision",
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
impl Store for PostgresStore {
    async fn bootstrap(&self, bootstrap: &Bootstrap) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        // Replicas starting together on an empty database: one bootstraps, the others wait
        // here and then find it done.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REVISION_LOCK)
            .execute(&mut *tx)
            .await?;
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
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    async fn setting_or_init(&self, key: &str, initial: &[u8]) -> StoreResult<Vec<u8>> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(initial)
        .execute(&mut *tx)
        .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
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
        sqlx::query_as::<_, AccountRow>("SELECT * FROM accounts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
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
            "UPDATE accounts SET display_name = $1, api_access_enabled = $2, updated_at = $3, version = $4
             WHERE id = $5 AND version = $6",
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
        sqlx::query_as::<_, PrincipalRow>("SELECT * FROM principals WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(Principal::try_from)
            .transpose()
    }

    async fn list_principals(&self, query: &PrincipalQuery) -> StoreResult<Vec<Principal>> {
        let mut sql = QueryBuilder::<Postgres>::new("SELECT * FROM principals WHERE account_id = ");
        sql.push_bind(query.account_id.as_str());
        if let Some((created_at, id)) = &query.after {
            push_after(&mut sql, *created_at, id.as_str());
        }
        sql.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(query.limit));
        sql.build_query_as::<PrincipalRow>()
            .fetch_all(&self.pool)
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
            "UPDATE principals SET display_name = $1, permissions = $2, disabled = $3, updated_at = $4, version = $5
             WHERE id = $6 AND version = $7",
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
        tokens::get(&self.pool, id).await
    }

    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<Vec<Token>> {
        tokens::list(&self.pool, query).await
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
        let deleted = sqlx::query("DELETE FROM tokens WHERE id = $1 AND version = $2")
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
        // Not one snapshot: under READ COMMITTED each statement sees its own. What makes
        // this safe is the order. The revision is read before the rows, so the rows are at
        // least as new as the revision and an answer is never tagged with a revision newer
        // than its data; a change committed in between has a higher revision, whose
        // watermark outdates this entry once the follower applies it.
        let mut tx = self.pool.begin().await?;
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
                "UPDATE tokens SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $1) WHERE id = $2",
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
        let mut sql =
            QueryBuilder::<Postgres>::new("SELECT * FROM audit_events WHERE account_id = ");
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
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(AuditEvent::try_from)
            .collect()
    }

    async fn events_after(&self, after: u64, limit: u32) -> StoreResult<Vec<InvalidationEvent>> {
        // Revisions become visible in order (see the module documentation), so a plain
        // range read never skips one.
        sqlx::query_as::<_, EventRow>(
            "SELECT * FROM invalidation_events WHERE revision > $1 ORDER BY revision LIMIT $2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
             FROM invalidation_events e WHERE e.revision > $1 ORDER BY e.revision LIMIT $2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        replay_page(rows)
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM invalidation_events
             WHERE revision < COALESCE(
                 (SELECT MIN(revision) FROM invalidation_events WHERE occurred_at >= $1),
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
        // One statement: concurrent replicas each get only the rows they marked themselves
        // (the loser of a row lock re-checks the condition and skips the row).
        let due: Vec<(String, String)> = sqlx::query_as(
            "UPDATE token_secrets s SET expiry_announced = TRUE
             FROM tokens t
             WHERE t.id = s.token_id AND NOT s.expiry_announced AND s.expires_at <= $1
             RETURNING s.token_id, t.account_id",
        )
        .bind(to_micros(now))
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
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

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        Some(self.changes.subscribe())
    }
}
