//! What a database supplies to the store: everything else, SQL included, is shared.
//!
//! The store's SQL (`store/sql/`) is written once, generic over the database, and each
//! backend module gives it two things: its database's [`Dialect`] (the few spellings and
//! statements where SQLite and PostgreSQL differ) and a [`Backend`] (its pools and change
//! feed). Besides that, a backend module only connects (its pools, PostgreSQL's listener)
//! and runs its own migrations, which stay per database (`migrations/`). The SQL is generic
//! rather than written against `sqlx::Any`, which would give up `PgListener`, SQLite's
//! connect options and the drivers' own types, and convert every row it reads.

use std::future::Future;

use sqlx::{Executor, FromRow, Pool, QueryBuilder, Transaction};

use super::StoreResult;

/// How one database spells what the shared SQL needs and SQL does not standardise, and what
/// sqlx's generic API does not offer. It is implemented for the sqlx database types
/// themselves (`Sqlite`, `Postgres`), so it can hold nothing of one store's state: a second
/// store on the same database type could not differ here.
pub(crate) trait Dialect: sqlx::Database {
    /// The SQL function giving the position of a substring, `(haystack, needle)`, 1-based,
    /// 0 when absent: `instr` on SQLite, `strpos` on PostgreSQL.
    const SUBSTRING_POSITION: &'static str;

    /// A table of the text elements of a JSON array held in a TEXT value, as the SQL before
    /// and after that value: one row per element, in a column named `value`. `json_each`
    /// on SQLite, `json_array_elements_text` on PostgreSQL (which needs the text cast).
    const JSON_TEXT_ELEMENTS: (&'static str, &'static str);

    /// The statement that opens a write transaction. SQLite's is `BEGIN IMMEDIATE`: it takes
    /// the write lock at once, waiting out another process's (the busy timeout); a deferred
    /// transaction that read first would fail at its first write instead, without waiting.
    const BEGIN_WRITE: &'static str;

    /// What a `SELECT` appends to keep the rows it read from changing until the transaction
    /// ends: ` FOR SHARE` on PostgreSQL; nothing on SQLite, whose writes are serialised.
    const LOCK_FOR_SHARE: &'static str;

    /// The condition "this secret's grace-period end is not yet announced", spelled exactly
    /// as the partial index `token_secrets_pending_expiry` spells it: SQLite uses a partial
    /// index only for a query that repeats its condition word for word.
    const NOT_ANNOUNCED: &'static str;

    /// How many rows a statement changed (each driver's result type has this method, but
    /// `sqlx::Database` names no trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Runs a query assembled with a [`QueryBuilder`] on `executor` (a pool, or a
    /// transaction's connection) and reads all its rows. The shared SQL cannot run one
    /// itself: running borrows the builder for as long as the values bound in it, which only
    /// a database's own argument type (covariant in that lifetime) lets end before the
    /// builder is dropped; generic code gets "`sql` does not live long enough". A builder
    /// query that must run otherwise (one row, no rows) needs a method of its own here.
    fn fetch_all<'e, O, E>(
        query: QueryBuilder<'_, Self>,
        executor: E,
    ) -> impl Future<Output = Result<Vec<O>, sqlx::Error>> + Send
    where
        O: for<'r> FromRow<'r, Self::Row> + Send + Unpin,
        E: Executor<'e, Database = Self>;

    /// Called inside a write transaction before it appends an invalidation event, and
    /// before a first start writes the bootstrap records. It has three duties:
    ///
    /// - **Revisions become visible in revision order.** A follower reads "events after N"
    ///   and moves its position to the highest revision it saw; if revision N+2 could commit
    ///   while N+1 was still open, the follower would skip N+1 for good. A database whose
    ///   writers can run concurrently must therefore hold a lock from taking a revision
    ///   until commit; one with a single writer needs nothing.
    /// - **One first start.** Processes starting together on an empty database must not
    ///   each bootstrap: the same lock serialises them, and the later ones find it done.
    /// - **Announce the commit** to the other processes' change feeds, if the database has
    ///   one (PostgreSQL queues its NOTIFY here; it is sent at commit, and a bootstrap's is
    ///   harmless).
    fn lock_revisions(
        tx: &mut Transaction<'_, Self>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// A store's connections to its database: what the shared [`Store`](super::Store)
/// implementation in `store/sql/store.rs` runs its SQL on.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The database the shared SQL runs on.
    type Db: Dialect;

    /// Connections that write.
    fn writer(&self) -> &Pool<Self::Db>;

    /// Connections that only read (the writer pool itself where reads need no separate
    /// pool).
    fn reader(&self) -> &Pool<Self::Db>;

    /// Ticks when other processes may have committed events; None when no other process
    /// writes to this database.
    fn change_feed(&self) -> Option<tokio::sync::watch::Receiver<()>>;
}
