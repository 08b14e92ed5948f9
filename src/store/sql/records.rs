//! The SQL of accounts, principals and audit records, and the helpers every table's SQL
//! shares, written once for both databases (see `tokens.rs` beside it for how a backend
//! includes it).

use sqlx::{QueryBuilder, Transaction};

use super::super::StoreError;
use super::super::StoreResult;
use super::super::rows::{encode_details, encode_permissions};
use super::super::time::to_micros;
use super::Db;
use crate::domain::{Account, AuditRecord, Principal, PrincipalId, Timestamp, TokenId};

pub(super) async fn insert_audit(
    tx: &mut Transaction<'_, Db>,
    audit: &AuditRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events
           (account_id, actor_id, actor_token_id, action, target_type, target_id, peer_address, details, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(audit.account_id.as_str())
    .bind(audit.actor_id.as_ref().map(PrincipalId::as_str))
    .bind(audit.actor_token_id.as_ref().map(TokenId::as_str))
    .bind(audit.action.as_str())
    .bind(audit.action.target_type())
    .bind(&audit.target_id)
    .bind(audit.peer_address.as_deref())
    .bind(encode_details(&audit.details))
    .bind(to_micros(audit.occurred_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn insert_account(
    tx: &mut Transaction<'_, Db>,
    account: &Account,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO accounts (id, display_name, api_access_enabled, operator, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(account.id.as_str())
    .bind(account.display_name.as_str())
    .bind(account.api_access_enabled)
    .bind(account.operator)
    .bind(to_micros(account.created_at))
    .bind(to_micros(account.updated_at))
    .bind(account.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn insert_principal(
    tx: &mut Transaction<'_, Db>,
    principal: &Principal,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO principals (id, account_id, kind, display_name, permissions, disabled, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(principal.id.as_str())
    .bind(principal.account_id.as_str())
    .bind(principal.kind.as_str())
    .bind(principal.display_name.as_str())
    .bind(encode_permissions(&principal.permissions))
    .bind(principal.disabled)
    .bind(to_micros(principal.created_at))
    .bind(to_micros(principal.updated_at))
    .bind(principal.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keyset pagination over (created_at, id): rows strictly after the given position.
pub(super) fn push_after(sql: &mut QueryBuilder<'_, Db>, created_at: Timestamp, id: &str) {
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
pub(super) async fn conflict_or_missing(
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
