//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so write transactions queue in
//! process instead of failing with SQLITE_BUSY; reads use a separate pool and see a
//! consistent snapshot per transaction. That single writer is also why revisions need no
//! lock here: they are assigned and committed one transaction at a time.

pub mod backup;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Executor, FromRow, QueryBuilder, Sqlite, SqlitePool, Transaction};

use super::{Backend, Dialect, StoreError, StoreResult};

/// The migrations. A database may hold migrations newer than this binary's (a rolling
/// upgrade, where a newer replica has migrated, or a rollback): they are additive by rule,
/// so this binary runs against them instead of refusing to start.
static MIGRATOR: sqlx::migrate::Migrator = {
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    migrator.ignore_missing = true;
    migrator
};

/// The SQLite implementation of [`Store`](super::Store).
#[derive(Clone)]
pub struct SqliteStore {
    /// Exactly one connection: SQLite has one writer at a time anyway.
    writer: SqlitePool,
    /// Read-only connections; WAL lets them read while the writer writes.
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
        let pending = super::schema::pending(&mut *self.writer.acquire().await?, &MIGRATOR).await;
        MIGRATOR.run(&self.writer).await?;
        super::schema::log_migrated(pending);
        Ok(())
    }

    /// Refuses a database whose schema is not the one this binary expects (see
    /// `store/schema.rs`); called at every start, after migrating if that was asked for.
    pub async fn check_schema(&self) -> StoreResult<()> {
        super::schema::check(&mut *self.writer.acquire().await?, &MIGRATOR).await
    }
}

impl Dialect for Sqlite {
    const SUBSTRING_POSITION: &'static str = "instr";

    const JSON_TEXT_ELEMENTS: (&'static str, &'static str) = ("json_each(", ")");

    const LOCK_FOR_SHARE: &'static str = "";

    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    /// The column is an INTEGER on SQLite; `0002_event_follow.sql` spells it so.
    const NOT_ANNOUNCED: &'static str = "expiry_announced = 0";

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn fetch_all<'e, O, E>(
        mut query: QueryBuilder<'_, Sqlite>,
        executor: E,
    ) -> Result<Vec<O>, sqlx::Error>
    where
        O: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
        E: Executor<'e, Database = Sqlite>,
    {
        query.build_query_as().fetch_all(executor).await
    }

    /// Nothing to do: every write transaction begins with `BEGIN IMMEDIATE`
    /// ([`Dialect::BEGIN_WRITE`]), which holds SQLite's one write lock from its start to its
    /// end across connections and processes, so revisions and first starts are already
    /// serialised; and no change feed is announced to (see [`Backend::change_feed`]).
    async fn lock_revisions(_tx: &mut Transaction<'_, Sqlite>) -> StoreResult<()> {
        Ok(())
    }
}

impl Backend for SqliteStore {
    type Db = Sqlite;

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// No other process writes to the file.
    fn change_feed(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        None
    }
}
