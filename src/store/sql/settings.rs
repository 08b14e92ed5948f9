//! The SQL of server-wide settings (such as the page-token signing key).

use std::marker::PhantomData;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use crate::store::Dialect;
use crate::store::StoreResult;

/// The statements of server-wide settings, for database `DB`.
pub(super) struct Settings<DB>(PhantomData<DB>);

impl<DB: Dialect> Settings<DB>
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
    /// The stored value of `key`, inserting `initial` first if there is none.
    pub(super) async fn get_or_insert(
        tx: &mut Transaction<'_, DB>,
        key: &str,
        initial: &[u8],
    ) -> StoreResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(initial)
        .execute(&mut **tx)
        .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&mut **tx)
            .await?;
        Ok(value)
    }
}
