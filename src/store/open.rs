//! Which database a URL names, opened, migrated when asked, and checked to have the schema
//! this binary expects: the one place start-up, `migrate` and the tools open a store.

use std::sync::Arc;
use std::time::Duration;

use super::postgres::{PoolSettings, PostgresStore};
use super::sqlite::SqliteStore;
use super::{Store, StoreError, StoreResult};

/// How to open a store, whichever database the URL names.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Bring the schema up to date first.
    pub migrate: bool,
    /// SQLite: connections of the read pool (writes have one of their own).
    pub sqlite_read_connections: u32,
    /// PostgreSQL: the pool's size.
    pub max_connections: u32,
    /// PostgreSQL: how long a call waits for a connection before failing with UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// PostgreSQL: LISTEN for other replicas' events (else they are learnt by polling).
    pub listen: bool,
}

/// Opens the store `url` names: `sqlite:…` or `postgres://…` (`postgresql://…`).
pub async fn open(url: &str, options: &OpenOptions) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url, options.sqlite_read_connections).await?;
        if options.migrate {
            store.migrate().await?;
        }
        store.check_schema().await?;
        crate::metrics::record_build_info("sqlite");
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = PoolSettings {
            max_connections: options.max_connections,
            acquire_timeout: options.acquire_timeout,
            listen: options.listen,
        };
        let store = PostgresStore::connect(url, pool).await?;
        if options.migrate {
            store.migrate().await?;
        }
        store.check_schema().await?;
        crate::metrics::record_build_info("postgres");
        return Ok(Arc::new(store));
    }
    // Only the scheme: the rest of a URL may hold a password.
    let scheme = url.split(':').next().unwrap_or_default().to_owned();
    Err(StoreError::UnsupportedDatabase(scheme))
}
