//! The SQL of the invalidation-event outbox: appending (with its revision), following,
//! replaying, pruning, and announcing the secrets whose grace period ended; and
//! [`Events::commit`], the end of every change, which writes its audit record and its
//! event and commits them with the change's rows.

use std::marker::PhantomData;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use super::audit::Audit;
use crate::domain::{
    AccountId, Invalidation, InvalidationEvent, InvalidationKind, InvalidationTarget, Timestamp,
    TokenId,
};
use crate::store::rows::EventRow;
use crate::store::time::to_micros;
use crate::store::{Change, Dialect, ReplayPage, StoreError, StoreResult};

/// The statements of the invalidation-event outbox, for database `DB`.
pub(super) struct Events<DB>(PhantomData<DB>);

impl<DB: Dialect> Events<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q, 'r> String: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> i64: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> bool: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
{
    /// Records `change` in `tx` and commits: the end of every mutating operation.
    pub(super) async fn commit(
        mut tx: Transaction<'_, DB>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let event = Self::record_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Writes a change's audit record and invalidation event inside `tx`.
    async fn record_change(
        tx: &mut Transaction<'_, DB>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        Audit::insert(tx, &change.audit).await?;
        match &change.invalidation {
            Some(invalidation) => Self::insert(tx, invalidation, change.audit.occurred_at)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// Appends an invalidation event; its revision is assigned here, after the backend's
    /// revision lock (see [`Dialect::lock_revisions`]).
    async fn insert(
        tx: &mut Transaction<'_, DB>,
        invalidation: &Invalidation,
        occurred_at: Timestamp,
    ) -> StoreResult<InvalidationEvent> {
        DB::lock_revisions(tx).await?;
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

    /// The revision of the newest event (0 when there is none).
    pub(super) async fn revision<'c, E>(executor: E) -> StoreResult<u64>
    where
        E: Executor<'c, Database = DB>,
    {
        let revision: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM invalidation_events")
                .fetch_one(executor)
                .await?;
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    /// Events after `after`, in revision order. A plain range read never skips an event that
    /// commits later with a lower revision, because revisions become visible in order (the
    /// rule [`Dialect::lock_revisions`] keeps).
    pub(super) async fn after(
        pool: &Pool<DB>,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<InvalidationEvent>> {
        sqlx::query_as::<_, EventRow>(
            "SELECT * FROM invalidation_events WHERE revision > $1 ORDER BY revision LIMIT $2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(InvalidationEvent::try_from)
        .collect()
    }

    /// A page of a watcher's replay: the events after `after` (of `accounts` only, when given,
    /// through the index by account), then the oldest revision retained. In that order: a
    /// prune between the two reads shows as an oldest revision past the page's start (the
    /// watcher resets, perhaps needlessly), never as events silently missing.
    pub(super) async fn replay(
        pool: &Pool<DB>,
        after: u64,
        limit: u32,
        accounts: Option<&[AccountId]>,
    ) -> StoreResult<ReplayPage> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::from(limit);
        let mut sql = sqlx::QueryBuilder::<DB>::new("");
        match accounts {
            None => {
                sql.push("SELECT * FROM invalidation_events WHERE revision > ")
                    .push_bind(after);
            }
            // Each account's next events by the index on (account_id, revision), an ordered
            // range scan that stops at the limit, then merged.
            Some(accounts) => {
                sql.push("SELECT * FROM (");
                for (i, account) in accounts.iter().enumerate() {
                    if i > 0 {
                        sql.push(" UNION ALL ");
                    }
                    sql.push(
                        "SELECT * FROM (SELECT * FROM invalidation_events WHERE account_id = ",
                    )
                    .push_bind(account.as_str())
                    .push(" AND revision > ")
                    .push_bind(after)
                    .push(" ORDER BY revision LIMIT ")
                    .push_bind(limit)
                    .push(") AS a");
                    sql.push(i.to_string());
                }
                sql.push(") AS accounts");
            }
        }
        sql.push(" ORDER BY revision LIMIT ").push_bind(limit);
        let events = DB::fetch_all::<EventRow, _>(sql, pool)
            .await?
            .into_iter()
            .map(InvalidationEvent::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT MIN(revision) FROM invalidation_events")
                .fetch_one(pool)
                .await?;
        Ok(ReplayPage {
            events,
            oldest_retained: oldest.and_then(|oldest| u64::try_from(oldest).ok()),
        })
    }

    /// Deletes the contiguous prefix of revisions that occurred before `before`, never the
    /// newest event; returns how many went.
    pub(super) async fn prune(tx: &mut Transaction<'_, DB>, before: Timestamp) -> StoreResult<u64> {
        let deleted = sqlx::query(
            "DELETE FROM invalidation_events
             WHERE revision < COALESCE(
                 (SELECT MIN(revision) FROM invalidation_events WHERE occurred_at >= $1),
                 (SELECT MAX(revision) FROM invalidation_events))",
        )
        .bind(to_micros(before))
        .execute(&mut **tx)
        .await?;
        Ok(DB::rows_affected(&deleted))
    }

    /// Marks the secrets whose grace period ended at or before `now` as announced and
    /// appends one `TokenSecretExpired` event for each.
    pub(super) async fn announce_expired_secrets(
        tx: &mut Transaction<'_, DB>,
        now: Timestamp,
    ) -> StoreResult<Vec<InvalidationEvent>> {
        // One statement: concurrent writers each get only the rows they marked themselves
        // (on PostgreSQL the loser of a row lock re-checks the condition and skips the row).
        let sql = format!(
            "UPDATE token_secrets SET expiry_announced = TRUE
             WHERE {} AND expires_at <= $1
             RETURNING token_id,
               (SELECT account_id FROM tokens WHERE tokens.id = token_secrets.token_id) AS account_id",
            DB::NOT_ANNOUNCED
        );
        let due: Vec<(String, String)> = sqlx::query_as(&sql)
            .bind(to_micros(now))
            .fetch_all(&mut **tx)
            .await?;
        let mut events = Vec::with_capacity(due.len());
        for (token_id, account_id) in due {
            let invalidation = Invalidation {
                kind: InvalidationKind::TokenSecretExpired,
                target: InvalidationTarget::Token(TokenId::from_trusted(token_id)),
                account_id: AccountId::from_trusted(account_id),
            };
            events.push(Self::insert(tx, &invalidation, now).await?);
        }
        Ok(events)
    }
}
