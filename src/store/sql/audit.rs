//! The SQL of the audit trail: append and filtered listing, newest first.

use std::marker::PhantomData;

use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Transaction, Type,
};

use crate::domain::{AuditEvent, AuditRecord, PrincipalId, TokenId};
use crate::store::Dialect;
use crate::store::rows::{AuditRow, encode_details};
use crate::store::time::to_micros;
use crate::store::{AuditQuery, StoreResult};

/// The statements of the audit trail, for database `DB`.
pub(super) struct Audit<DB>(PhantomData<DB>);

impl<DB: Dialect> Audit<DB>
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
    pub(super) async fn insert(
        tx: &mut Transaction<'_, DB>,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_events
               (account_id, actor_id, actor_token_id, action, target_type, target_id, peer_address, details, occurred_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(audit.account_id.as_str())
        .bind(audit.actor_id.as_ref().map(PrincipalId::as_str))
        .bind(audit.actor_token_id.as_ref().map(TokenId::as_str))
        .bind(audit.action.as_str())
        .bind(audit.action.target_type())
        .bind(&audit.target_id)
        .bind(audit.peer_address.as_deref())
        .bind(encode_details(&audit.details))
        .bind(to_micros(audit.occurred_at))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(super) async fn list(pool: &Pool<DB>, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let mut sql = QueryBuilder::<DB>::new("SELECT * FROM audit_events WHERE account_id = ");
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
        DB::fetch_all::<AuditRow, _>(sql, pool)
            .await?
            .into_iter()
            .map(AuditEvent::try_from)
            .collect()
    }
}
