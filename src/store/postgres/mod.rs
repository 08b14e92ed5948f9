//! The shared store for several replicas: PostgreSQL.
//!
//! Every writer that appends an invalidation event holds a transaction-scoped advisory lock
//! from taking its revision until it commits, so revisions become visible in order: a
//! replica reading "events after N" can never skip one that commits later. Each commit that
//! writes an event also sends a NOTIFY; every replica LISTENs and then reads the events table
//! from its last revision, so a lost notification costs at most one poll interval, never an
//! event.

use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::postgres::{PgListener, PgPoolOptions, PgQueryResult};
use sqlx::{Executor, FromRow, PgPool, Postgres, QueryBuilder, Transaction};

use super::{Backend, Dialect, StoreResult};

/// The migrations. A database may hold migrations newer than this binary's (a rolling
/// upgrade, where a newer replica has migrated, or a rollback): they are additive by rule,
/// so this binary runs against them instead of refusing to start.
static MIGRATOR: sqlx::migrate::Migrator = {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.ignore_missing = true;
    migrator
};

/// The NOTIFY channel that announces new invalidation events.
const EVENTS_CHANNEL: &str = "token_authority_events";
/// The advisory lock that orders revisions (an arbitrary constant: "tka" in ASCII).
const REVISION_LOCK: i64 = 0x74_6b_61;

/// The PostgreSQL implementation of [`Store`](super::Store).
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
    /// Whether to LISTEN for other replicas' events; without it, the event follower learns
    /// of them by polling.
    pub listen: bool,
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
        if settings.listen {
            tokio::spawn(listen(pool.clone(), changes.clone()));
        }
        Ok(Self {
            pool,
            changes,
            _alive: alive,
        })
    }

    /// Brings the schema up to date. Concurrent replicas are serialised by sqlx's own lock.
    pub async fn migrate(&self) -> StoreResult<()> {
        let pending = super::schema::pending(&mut *self.pool.acquire().await?, &MIGRATOR).await;
        MIGRATOR.run(&self.pool).await?;
        super::schema::log_migrated(pending);
        Ok(())
    }

    /// Refuses a database whose schema is not the one this binary expects (see
    /// `store/schema.rs`); called at every start, after migrating if that was asked for.
    pub async fn check_schema(&self) -> StoreResult<()> {
        super::schema::check(&mut *self.pool.acquire().await?, &MIGRATOR).await
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

impl Dialect for Postgres {
    const SUBSTRING_POSITION: &'static str = "strpos";

    const JSON_TEXT_ELEMENTS: (&'static str, &'static str) =
        ("json_array_elements_text(CAST(", " AS json))");

    const LOCK_FOR_SHARE: &'static str = " FOR SHARE";

    const BEGIN_WRITE: &'static str = "BEGIN";

    /// As `0001_initial.sql` spells it.
    const NOT_ANNOUNCED: &'static str = "NOT expiry_announced";

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn fetch_all<'e, O, E>(
        mut query: QueryBuilder<'_, Postgres>,
        executor: E,
    ) -> Result<Vec<O>, sqlx::Error>
    where
        O: for<'r> FromRow<'r, PgRow> + Send + Unpin,
        E: Executor<'e, Database = Postgres>,
    {
        query.build_query_as().fetch_all(executor).await
    }

    /// Takes the transaction-scoped advisory lock that orders revisions and first starts
    /// (held until commit or rollback, so revisions become visible in order) and queues the
    /// NOTIFY that PostgreSQL sends to every replica's listener at commit.
    async fn lock_revisions(tx: &mut Transaction<'_, Postgres>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REVISION_LOCK)
            .execute(&mut **tx)
            .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(EVENTS_CHANNEL)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Backend for PostgresStore {
    type Db = Postgres;

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn change_feed(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        Some(self.changes.subscribe())
    }
}
