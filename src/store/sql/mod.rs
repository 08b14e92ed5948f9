//! The store's SQL, written once for every database and compiled once per database.
//!
//! A backend module includes this directory as its own `sql` module (`#[path]`) after
//! naming its store type `ThisBackend`, which implements [`Backend`](crate::store::Backend)
//! (see `store/backend.rs` for why the SQL is not generic instead). One file per table
//! holds that table's statements; `store.rs` implements [`Store`](crate::store::Store) on
//! top of them, with the transaction of each change. Statements use `$N` placeholders,
//! which sqlx binds on SQLite as well as on PostgreSQL, and only SQL both databases accept.
//!
//! Adding a column: a migration for each database (`migrations/sqlite/`,
//! `migrations/postgres/`), the row type and its decoding (`store/rows.rs`, and
//! `SnapshotRow` if verification needs it), then the table's file here. Mind that
//! - `QueryBuilder::push_bind` writes each backend's own placeholder, so text given to
//!   `push` never holds a `$N`;
//! - SQLite binds NULL to a `$N` beyond the values bound where PostgreSQL fails, so a
//!   miscounted placeholder shows up in the PostgreSQL half of the test suite only;
//! - booleans are INTEGER columns on SQLite: write `TRUE`, `FALSE`, or compare the column.

mod accounts;
mod audit;
mod events;
mod principals;
mod settings;
mod store;
mod tokens;

use sqlx::{QueryBuilder, Transaction};

use super::ThisBackend;
use crate::domain::Timestamp;
use crate::store::time::to_micros;
use crate::store::{Backend, StoreError};

/// The database this copy of the SQL is compiled for.
type Db = <ThisBackend as Backend>::Db;

/// Keyset pagination over (created_at, id): rows strictly after the given position.
fn push_after(sql: &mut QueryBuilder<'_, Db>, created_at: Timestamp, id: &str) {
    let created_at = to_micros(created_at);
    sql.push(" AND (created_at > ")
        .push_bind(created_at)
        .push(" OR (created_at = ")
        .push_bind(created_at)
        .push(" AND id > ")
        .push_bind(id.to_owned())
        .push("))");
}

/// After an update matched no row: tells a concurrent change from a missing object.
async fn conflict_or_missing(
    tx: &mut Transaction<'_, Db>,
    table: &'static str,
    what: &'static str,
    id: &str,
) -> StoreError {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE id = $1");
    match sqlx::query_scalar::<_, i64>(&sql)
        .bind(id)
        .fetch_one(&mut **tx)
        .await
    {
        Ok(0) => StoreError::NotFound(what),
        Ok(_) => StoreError::Conflict(what),
        Err(e) => e.into(),
    }
}
