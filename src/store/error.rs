//! What can go wrong in a store, in terms the layers above can act on.

/// A store failure. `Unavailable` is worth a retry; the others are not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the object changed since it was read.
    #[error("the {0} was changed concurrently")]
    Conflict(&'static str),
    /// The object to change does not exist (any more).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The database cannot be reached or is overloaded.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A row that does not decode into the domain: a bug or manual tampering.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database's schema is not the one this binary expects (see `store/schema.rs`).
    #[error("{0}")]
    Schema(String),
    /// A database URL of neither SQLite nor PostgreSQL (only its scheme is kept: the rest
    /// may hold a password).
    #[error("unsupported database URL scheme (expected sqlite:// or postgres://): {0}")]
    UnsupportedDatabase(String),
}

/// The errors of the store's queries pass through here, which is where they are counted (by
/// kind, see [`crate::metrics::DATABASE_ERRORS`]); the PostgreSQL listener's own reconnects
/// and malformed database URLs are not counted.
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let (kind, converted) = match error {
            sqlx::Error::PoolTimedOut => ("pool_timeout", Self::Unavailable(error)),
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                ("unavailable", Self::Unavailable(error))
            }
            sqlx::Error::Database(ref db) if is_transient(db.code().as_deref()) => {
                ("unavailable", Self::Unavailable(error))
            }
            other => ("query", Self::Database(other)),
        };
        crate::metrics::record_database_error(kind);
        converted
    }
}

/// Errors that say "not now" rather than "never": SQLite's database-locked/busy after the
/// busy timeout, PostgreSQL's connection exceptions (class 08), shutdowns and start-ups
/// (57P01–57P03) and connection exhaustion (53300).
fn is_transient(code: Option<&str>) -> bool {
    match code {
        Some("5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "53300") => true,
        Some(code) => code.starts_with("08"),
        None => false,
    }
}
