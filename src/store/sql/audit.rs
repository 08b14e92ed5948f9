//! The SQL of the audit trail: append and filtered listing, newest first.

use sqlx::{Pool, QueryBuilder, Transaction};

use super::Db;
use crate::domain::{AuditEvent, AuditRecord, PrincipalId, TokenId};
use crate::store::rows::{AuditRow, encode_details};
use crate::store::time::to_micros;
use crate::store::{AuditQuery, StoreResult};

pub(super) async fn insert(tx: &mut Transaction<'_, Db>, audit: &AuditRecord) -> StoreResult<()> {
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

pub(super) async fn list(pool: &Pool<Db>, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
    let mut sql = QueryBuilder::<Db>::new("SELECT * FROM audit_events WHERE account_id = ");
    sql.push_bind(query.account_id.as_str());
    if let Some(target_id) = &query.target_id {
        sql.push(" AND target_id = ").push_bind(target_id.as_str());
    }
    if let Some(actor_id) = &query.actor_id {
        sql.push(" AND actor_id = ").push_bind(actor_id.as_str());
    }
    if let Some(action) = &query.action {
        sql.push(" AND action = ").push_bind(action.as_str());
    }
    if let Some(after) = query.occurred_at_or_after {
        sql.push(" AND occurred_at >= ").push_bind(to_micros(after));
    }
    if let Some(before) = query.occurred_before {
        sql.push(" AND occurred_at < ").push_bind(to_micros(before));
    }
    if let Some(before_id) = query.before_id {
        sql.push(" AND id < ").push_bind(before_id);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(query.limit));
    sql.build_query_as::<AuditRow>()
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(AuditEvent::try_from)
        .collect()
}
