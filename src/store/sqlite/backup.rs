//! Backups of the embedded database, while servers keep using it: `token-authority backup`.
//!
//! `VACUUM INTO` reads one snapshot (in WAL mode, a read that blocks no writer) and writes
//! it out compacted. The copy is written in a private directory made beside the target, then
//! hard-linked into place: nobody can swap what SQLite opens for a link of their own, the
//! file never exists under its final name half-written or readable by others (it holds
//! secret hashes and the page-token key), a `file:` name is never read as an SQLite URI, and
//! an existing file is never replaced (linking fails instead). Restoring is starting a server
//! on the copy.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::sqlite::SqliteConnectOptions;

use super::super::{HISTORY_SETTING, StoreError, StoreResult};

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "`backup` copies SQLite databases; back up PostgreSQL with pg_dump or a base backup (docs/operations.md)"
    )]
    Unsupported,
    #[error("cannot create the backup file {path} (it must not exist yet)")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not copy the database")]
    Store(#[from] StoreError),
}

/// Writes a consistent copy of the SQLite database at `url` to the new file `to`, mode 0600.
pub async fn backup(url: &str, to: &Path) -> Result<(), BackupError> {
    if !url.starts_with("sqlite:") {
        return Err(BackupError::Unsupported);
    }
    let file_error = |source| BackupError::File {
        path: to.display().to_string(),
        source,
    };
    if to.symlink_metadata().is_ok() {
        return Err(file_error(std::io::ErrorKind::AlreadyExists.into()));
    }
    let staging = staging_directory(to).map_err(file_error)?;
    let staged = staging.join("backup.db");
    let copied = match staged.to_str() {
        Some(staged) => copy(url, staged).await.map_err(BackupError::Store),
        None => Err(file_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is not UTF-8",
        ))),
    };
    let placed = copied.and_then(|()| {
        crate::private_file::restrict(&staged)
            .and_then(|()| std::fs::hard_link(&staged, to))
            .map_err(file_error)
    });
    let _ = std::fs::remove_dir_all(&staging);
    placed
}

/// Copies the existing database at `url` to the file `to` (a plain path, which must not
/// exist or be empty). The connection is read-only and never creates the source.
pub async fn copy(url: &str, to: &str) -> StoreResult<()> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(StoreError::Database)?
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(to)
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    // The copy, once restored, hands out revision numbers the original has handed out
    // already: without a history of its own, a client resuming from one of them would skip
    // the events that reuse them. The server makes a new one at its next start.
    let copy = SqliteConnectOptions::new()
        .filename(to)
        .busy_timeout(Duration::from_secs(5));
    let mut connection = sqlx::SqliteConnection::connect_with(&copy).await?;
    sqlx::query("DELETE FROM settings WHERE key = $1")
        .bind(HISTORY_SETTING)
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    Ok(())
}

/// A new directory only this user can enter, beside `path`, for writing `path` in private.
fn staging_directory(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let parent = absolute.parent().unwrap_or(Path::new("/"));
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let staging = parent.join(format!(
        ".token-authority-backup-{:016x}",
        u64::from_le_bytes(random)
    ));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&staging)?;
    Ok(staging)
}
