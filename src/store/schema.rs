//! Whether a database's schema is the one this binary expects: every migration this binary
//! embeds applied, completely, and unchanged. Checked at every start, migrating or not, so
//! that a server started with `--migrate-on-start false` on a database someone forgot to
//! migrate refuses to run instead of reading old data with new rules (a data migration, such
//! as the one that took `permissions.escalate` out of tenants' application permissions,
//! fails no query when it is missing).
//!
//! Migrations newer than the binary's are allowed (an older replica restarting during a
//! rolling upgrade, or a rollback; migrations are additive by rule) and logged.

use sqlx::migrate::{Migrate, Migrator};

use super::{StoreError, StoreResult};

/// Checks the migrations `connection`'s database has applied against `migrator`'s.
pub(crate) async fn check(connection: &mut impl Migrate, migrator: &Migrator) -> StoreResult<()> {
    let not_migrated = || {
        StoreError::Schema(
            "the database has not been migrated: run `token-authority migrate` (or serve with --migrate-on-start true)".into(),
        )
    };
    if let Some(version) = connection
        .dirty_version()
        .await
        .map_err(|_| not_migrated())?
    {
        return Err(StoreError::Schema(format!(
            "migration {version} failed partway: repair the database before starting"
        )));
    }
    let applied = connection
        .list_applied_migrations()
        .await
        .map_err(|_| not_migrated())?;
    for migration in migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
    {
        match applied.iter().find(|a| a.version == migration.version) {
            None => {
                return Err(StoreError::Schema(format!(
                    "the database lacks migration {} ({}) of this binary: run `token-authority migrate` first",
                    migration.version, migration.description
                )));
            }
            Some(applied) if applied.checksum != migration.checksum => {
                return Err(StoreError::Schema(format!(
                    "migration {} ({}) in the database differs from this binary's",
                    migration.version, migration.description
                )));
            }
            Some(_) => {}
        }
    }
    let unknown: Vec<i64> = applied
        .iter()
        .map(|a| a.version)
        .filter(|version| migrator.iter().all(|m| m.version != *version))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(
            ?unknown,
            "the database has migrations newer than this binary; running against them (a rolling upgrade or a rollback)"
        );
    }
    Ok(())
}

/// How many of `migrator`'s migrations `connection`'s database lacks (all of them on a new
/// database, which has no migrations table yet), for `migrate` to say what it did.
pub(crate) async fn pending(connection: &mut impl Migrate, migrator: &Migrator) -> usize {
    let applied = connection
        .list_applied_migrations()
        .await
        .unwrap_or_default();
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .filter(|m| applied.iter().all(|a| a.version != m.version))
        .count()
}

/// Logs what a migration run did (another replica migrating at once may have applied some).
pub(crate) fn log_migrated(pending: usize) {
    match pending {
        0 => tracing::info!("the database schema was already up to date"),
        applied => tracing::info!(applied, "applied {applied} migrations"),
    }
}
