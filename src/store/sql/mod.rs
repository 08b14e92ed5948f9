//! The store's SQL, written once for every database and compiled once, generic over it.
//!
//! One file per table holds that table's statements, as the associated functions of a
//! struct named for the table and never built (`Tokens::insert(&mut tx, …)`; the database
//! is inferred from the transaction or pool passed in). A struct rather than free functions
//! so that the where-clause below is written once per file, on its `impl` block. `store.rs` implements
//! [`Store`](crate::store::Store) for every [`Backend`](crate::store::Backend) on top of
//! them, with the transaction of each change. Where the databases differ, the SQL asks the
//! database's [`Dialect`]. Statements use `$N` placeholders, which sqlx binds on SQLite as
//! well as on PostgreSQL, and only SQL both databases accept.
//!
//! **The where-clause.** Each table's `impl` block, and the `Store` implementation, repeat
//! one where-clause word for word: it tells the compiler that the database runs statements
//! and binds and reads the column types the store uses. Rust does not carry such bounds
//! from a trait to the code that uses it (rust-lang/rust#20671), so they cannot be written
//! once on `Dialect`. `Sqlite` and `Postgres` meet them; a type the store starts binding
//! or reading goes into every copy. (The two helpers below name only what they use.) One
//! thing generic code cannot do is run a `QueryBuilder`'s query: [`Dialect::fetch_all`]
//! says why and does it.
//!
//! Adding a column: a migration for each database (`migrations/sqlite/`,
//! `migrations/postgres/`), the row type and its decoding (`store/rows.rs`, and
//! `SnapshotRow` if verification needs it), then the table's file here. Mind that
//! - `QueryBuilder::push_bind` writes each database's own placeholder, so text given to
//!   `push` never holds a `$N`;
//! - SQLite binds NULL to a `$N` beyond the values bound where PostgreSQL fails, so a
//!   miscounted placeholder shows up in the PostgreSQL half of the test suite only;
//! - booleans are INTEGER columns on SQLite: write `TRUE`, `FALSE`, or compare the column;
//! - a column of a type the store does not bind or read yet needs its bounds in every copy
//!   of the where-clause: `Encode` to bind it, `Decode` to read it, and to bind it as an
//!   `Option` a line for `Option<T>` too (sqlx implements that per driver, while reading an
//!   `Option<T>` needs only `T`'s bound).

mod accounts;
mod audit;
mod events;
mod principals;
mod settings;
mod store;
mod tokens;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Transaction, Type};

use crate::domain::Timestamp;
use crate::store::time::to_micros;
use crate::store::{Dialect, StoreError};

/// Keyset pagination over (created_at, id): rows strictly after the given position.
fn push_after<DB>(sql: &mut QueryBuilder<'_, DB>, created_at: Timestamp, id: &str)
where
    DB: Dialect,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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
async fn conflict_or_missing<DB>(
    tx: &mut Transaction<'_, DB>,
    table: &'static str,
    what: &'static str,
    id: &str,
) -> StoreError
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
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
