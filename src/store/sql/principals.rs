//! The SQL of principals (users and service accounts).

use std::marker::PhantomData;

use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Transaction, Type,
};

use super::push_after;
use crate::domain::{AccountId, Principal, PrincipalId};
use crate::store::Dialect;
use crate::store::rows::{PrincipalRow, encode_permissions};
use crate::store::time::to_micros;
use crate::store::{PrincipalQuery, StoreResult};

/// The statements of principals, for database `DB`.
pub(super) struct Principals<DB>(PhantomData<DB>);

impl<DB: Dialect> Principals<DB>
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
        principal: &Principal,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO principals (id, account_id, kind, display_name, permissions, disabled, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(principal.id.as_str())
        .bind(principal.account_id.as_str())
        .bind(principal.kind.as_str())
        .bind(principal.display_name.as_str())
        .bind(encode_permissions(&principal.permissions))
        .bind(principal.disabled)
        .bind(to_micros(principal.created_at))
        .bind(to_micros(principal.updated_at))
        .bind(principal.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// How many principals `account_id` has.
    pub(super) async fn count(pool: &Pool<DB>, account_id: &AccountId) -> StoreResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM principals WHERE account_id = $1")
                .bind(account_id.as_str())
                .fetch_one(pool)
                .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub(super) async fn get(pool: &Pool<DB>, id: &PrincipalId) -> StoreResult<Option<Principal>> {
        sqlx::query_as::<_, PrincipalRow>("SELECT * FROM principals WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
            .map(Principal::try_from)
            .transpose()
    }

    pub(super) async fn list(
        pool: &Pool<DB>,
        query: &PrincipalQuery,
    ) -> StoreResult<Vec<Principal>> {
        let mut sql = QueryBuilder::<DB>::new("SELECT * FROM principals WHERE account_id = ");
        sql.push_bind(query.account_id.as_str());
        if let Some((created_at, id)) = &query.after {
            push_after(&mut sql, *created_at, id.as_str());
        }
        sql.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(query.limit));
        DB::fetch_all::<PrincipalRow, _>(sql, pool)
            .await?
            .into_iter()
            .map(Principal::try_from)
            .collect()
    }

    /// Writes every mutable column if the stored version is `expected_version`; returns
    /// whether a row matched.
    pub(super) async fn update(
        tx: &mut Transaction<'_, DB>,
        principal: &Principal,
        expected_version: i64,
    ) -> StoreResult<bool> {
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
        .execute(&mut **tx)
        .await?;
        Ok(DB::rows_affected(&updated) == 1)
    }
}
