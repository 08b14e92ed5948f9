//! The SQL of server-wide settings (such as the page-token signing key).

use sqlx::Transaction;

use super::Db;
use crate::store::StoreResult;

/// The stored value of `key`, inserting `initial` first if there is none.
pub(super) async fn get_or_insert(
    tx: &mut Transaction<'_, Db>,
    key: &str,
    initial: &[u8],
) -> StoreResult<Vec<u8>> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
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
