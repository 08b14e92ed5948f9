//! The SQL of tokens and their secrets.

use std::marker::PhantomData;

use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Transaction, Type,
};

use super::push_after;
use crate::domain::{
    AccountId, PrincipalId, SecretHash, StoredState, Timestamp, Token, TokenId, TokenPolicy,
    TokenState, VerificationSnapshot,
};
use crate::store::rows::{
    SnapshotRow, TokenRow, encode_labels, encode_networks, encode_permissions,
};
use crate::store::time::to_micros;
use crate::store::{BulkRevoke, Dialect, SecretChange, StoreResult, TokenQuery};

/// The revoke columns of a state, for binding.
fn revoke_columns(state: &StoredState) -> (Option<i64>, Option<&str>, Option<&str>) {
    match state {
        StoredState::Revoked { at, by, reason } => (
            Some(to_micros(*at)),
            by.as_ref().map(PrincipalId::as_str),
            Some(reason.as_str()),
        ),
        _ => (None, None, None),
    }
}

/// The statements of tokens and their secrets, for database `DB`.
pub(super) struct Tokens<DB>(PhantomData<DB>);

impl<DB: Dialect> Tokens<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q, 'r> String: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> i64: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> bool: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
{
    pub(super) async fn insert(
        tx: &mut Transaction<'_, DB>,
        token: &Token,
        secret: &SecretHash,
    ) -> StoreResult<()> {
        let (revoked_at, revoked_by, revoke_reason) = revoke_columns(&token.state);
        sqlx::query(
            "INSERT INTO tokens
               (id, account_id, owner_id, name, description, scopes, labels, api_version, state,
                created_at, created_by, updated_at, expires_at, last_used_at, revoked_at, revoked_by,
                revoke_reason, display_hint, previous_secret_expires_at, version, allowed_networks)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(token.id.as_str())
        .bind(token.account_id.as_str())
        .bind(token.owner_id.as_str())
        .bind(token.name.as_str())
        .bind(token.description.as_str())
        .bind(encode_permissions(&token.scopes))
        .bind(encode_labels(&token.labels))
        .bind(token.api_version.as_str())
        .bind(token.state.as_str())
        .bind(to_micros(token.created_at))
        .bind(token.created_by.as_str())
        .bind(to_micros(token.updated_at))
        .bind(token.expires_at.map(to_micros))
        .bind(token.last_used_at.map(to_micros))
        .bind(revoked_at)
        .bind(revoked_by)
        .bind(revoke_reason)
        .bind(&token.display_hint)
        .bind(token.previous_secret_expires_at.map(to_micros))
        .bind(token.version)
        .bind(encode_networks(&token.allowed_networks))
        .execute(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO token_secrets (hash, token_id, expires_at) VALUES ($1, $2, NULL)")
            .bind(secret.as_bytes().as_slice())
            .bind(token.id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Writes every mutable column if the stored version is `expected_version`; returns
    /// whether a row matched.
    pub(super) async fn update(
        tx: &mut Transaction<'_, DB>,
        token: &Token,
        expected_version: i64,
    ) -> StoreResult<bool> {
        let (revoked_at, revoked_by, revoke_reason) = revoke_columns(&token.state);
        let result = sqlx::query(
            "UPDATE tokens SET name = $1, description = $2, scopes = $3, labels = $4, api_version = $5, state = $6,
               updated_at = $7, expires_at = $8, revoked_at = $9, revoked_by = $10, revoke_reason = $11,
               display_hint = $12, previous_secret_expires_at = $13, version = $14,
               allowed_networks = $15
             WHERE id = $16 AND version = $17",
        )
        .bind(token.name.as_str())
        .bind(token.description.as_str())
        .bind(encode_permissions(&token.scopes))
        .bind(encode_labels(&token.labels))
        .bind(token.api_version.as_str())
        .bind(token.state.as_str())
        .bind(to_micros(token.updated_at))
        .bind(token.expires_at.map(to_micros))
        .bind(revoked_at)
        .bind(revoked_by)
        .bind(revoke_reason)
        .bind(&token.display_hint)
        .bind(token.previous_secret_expires_at.map(to_micros))
        .bind(token.version)
        .bind(encode_networks(&token.allowed_networks))
        .bind(token.id.as_str())
        .bind(expected_version)
        .execute(&mut **tx)
        .await?;
        Ok(DB::rows_affected(&result) == 1)
    }

    /// A reset at `at`: older previous secrets stop now; the current one stops now or at the end
    /// of its grace period; the new one becomes current. Every secret that stops opening the
    /// token is kept, by hash, in `retired_secrets` (see [`Self::issued_secret_token`]).
    pub(super) async fn replace_secret(
        tx: &mut Transaction<'_, DB>,
        id: &TokenId,
        change: &SecretChange,
        at: Timestamp,
    ) -> StoreResult<()> {
        Self::retire_secrets(tx, id, "expires_at IS NOT NULL", at).await?;
        match change.previous_expires_at {
            Some(at) => {
                sqlx::query("UPDATE token_secrets SET expires_at = $1 WHERE token_id = $2")
                    .bind(to_micros(at))
                    .bind(id.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
            None => Self::retire_secrets(tx, id, "TRUE", at).await?,
        };
        sqlx::query("INSERT INTO token_secrets (hash, token_id, expires_at) VALUES ($1, $2, NULL)")
            .bind(change.new_hash.as_bytes().as_slice())
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Moves the secrets of token `id` that match `condition` (SQL, a constant) from
    /// `token_secrets` to `retired_secrets`.
    async fn retire_secrets(
        tx: &mut Transaction<'_, DB>,
        id: &TokenId,
        condition: &'static str,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO retired_secrets (hash, token_id, retired_at)
             SELECT hash, token_id, $1 FROM token_secrets WHERE token_id = $2 AND {condition}"
        ))
        .bind(to_micros(at))
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
        sqlx::query(&format!(
            "DELETE FROM token_secrets WHERE token_id = $1 AND {condition}"
        ))
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The token the secret with this hash was issued for: one that opens it now (current or in
    /// its grace period), has ended its grace, or was replaced by a reset; None when no token
    /// that still exists ever had it.
    pub(super) async fn issued_secret_token(
        pool: &Pool<DB>,
        hash: &SecretHash,
    ) -> StoreResult<Option<TokenId>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT token_id FROM token_secrets WHERE hash = $1
             UNION ALL
             SELECT token_id FROM retired_secrets WHERE hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(pool)
        .await?;
        Ok(id.map(TokenId::from_trusted))
    }

    /// Deletes the token (its secrets go with it) if the stored version is `expected_version`;
    /// returns whether a row matched.
    pub(super) async fn delete(
        tx: &mut Transaction<'_, DB>,
        id: &TokenId,
        expected_version: i64,
    ) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM tokens WHERE id = $1 AND version = $2")
            .bind(id.as_str())
            .bind(expected_version)
            .execute(&mut **tx)
            .await?;
        Ok(DB::rows_affected(&deleted) == 1)
    }

    /// Moves a token's last-use time forward to `at`; never backwards.
    pub(super) async fn record_last_use(
        tx: &mut Transaction<'_, DB>,
        id: &TokenId,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE tokens SET last_used_at = $1
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(to_micros(at))
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(super) async fn revoke_all_of_account(
        tx: &mut Transaction<'_, DB>,
        account_id: &AccountId,
        revoke: &BulkRevoke,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE tokens SET state = 'revoked', revoked_at = $1, revoked_by = $2, revoke_reason = $3,
               previous_secret_expires_at = NULL, updated_at = $4, version = version + 1
             WHERE account_id = $5 AND state <> 'revoked'",
        )
        .bind(to_micros(revoke.at))
        .bind(revoke.by.as_str())
        .bind(&revoke.reason)
        .bind(to_micros(revoke.at))
        .bind(account_id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// How many tokens `account_id` has (revoked ones too: they are records until deleted).
    pub(super) async fn count(pool: &Pool<DB>, account_id: &AccountId) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE account_id = $1")
            .bind(account_id.as_str())
            .fetch_one(pool)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub(super) async fn get(pool: &Pool<DB>, id: &TokenId) -> StoreResult<Option<Token>> {
        sqlx::query_as::<_, TokenRow>("SELECT * FROM tokens WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
            .map(Token::try_from)
            .transpose()
    }

    pub(super) async fn list(pool: &Pool<DB>, query: &TokenQuery) -> StoreResult<Vec<Token>> {
        let now = to_micros(query.now);
        let mut sql = QueryBuilder::<DB>::new("SELECT * FROM tokens WHERE account_id = ");
        sql.push_bind(query.account_id.as_str());
        if let Some(owner) = &query.owner_id {
            sql.push(" AND owner_id = ").push_bind(owner.as_str());
        }
        if let Some(text) = &query.name_contains {
            // A substring position needs no escaping, unlike LIKE.
            sql.push(" AND ")
                .push(DB::SUBSTRING_POSITION)
                .push("(lower(name), lower(")
                .push_bind(text.as_str())
                .push(")) > 0");
        }
        match query.state {
            None => {}
            Some(TokenState::Active) => {
                sql.push(" AND state = 'active' AND (expires_at IS NULL OR expires_at > ")
                    .push_bind(now)
                    .push(")");
            }
            Some(TokenState::Disabled) => {
                sql.push(" AND state = 'disabled' AND (expires_at IS NULL OR expires_at > ")
                    .push_bind(now)
                    .push(")");
            }
            Some(TokenState::Revoked) => {
                sql.push(" AND state = 'revoked'");
            }
            Some(TokenState::Expired) => {
                sql.push(" AND state <> 'revoked' AND expires_at <= ")
                    .push_bind(now);
            }
        }
        if let Some(at) = query.created_at_or_after {
            sql.push(" AND created_at >= ").push_bind(to_micros(at));
        }
        if let Some(at) = query.created_before {
            sql.push(" AND created_at < ").push_bind(to_micros(at));
        }
        if let Some(at) = query.last_used_before {
            sql.push(" AND (last_used_at IS NULL OR last_used_at < ")
                .push_bind(to_micros(at))
                .push(")");
        }
        if let Some(at) = query.expires_before {
            sql.push(" AND expires_at < ").push_bind(to_micros(at));
        }
        if let Some(policy) = &query.breaking {
            Self::push_breaks_policy(&mut sql, policy);
        }
        if let Some((created_at, id)) = &query.after {
            push_after(&mut sql, *created_at, id.as_str());
        }
        sql.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(query.limit));
        DB::fetch_all::<TokenRow, _>(sql, pool)
            .await?
            .into_iter()
            .map(Token::try_from)
            .collect()
    }

    /// The tokens that break `policy`: the rules of [`TokenPolicy::check_token`] in SQL (the
    /// integration tests hold the two to the same answers). No rule, no match.
    fn push_breaks_policy(sql: &mut QueryBuilder<'_, DB>, policy: &TokenPolicy) {
        sql.push(" AND (1 = 0");
        if let Some(max) = policy.max_lifetime() {
            sql.push(" OR expires_at IS NULL OR expires_at - created_at > ")
                .push_bind(max.num_microseconds().unwrap_or(i64::MAX));
        }
        if !policy.allowed_scopes().is_empty() {
            // Unscoped, or listing a scope outside the allowed ones.
            let (elements, end) = DB::JSON_TEXT_ELEMENTS;
            sql.push(" OR scopes = '[]' OR EXISTS (SELECT 1 FROM ")
                .push(elements)
                .push("scopes")
                .push(end)
                .push(" AS s WHERE s.value NOT IN (SELECT a.value FROM ")
                .push(elements)
                .push_bind(encode_permissions(policy.allowed_scopes()))
                .push(end)
                .push(" AS a))");
        }
        sql.push(")");
    }

    pub(super) async fn snapshot(
        tx: &mut Transaction<'_, DB>,
        hash: &SecretHash,
    ) -> StoreResult<Option<VerificationSnapshot>> {
        sqlx::query_as::<_, SnapshotRow>(
            "SELECT t.id AS token_id, t.account_id, t.owner_id,
                    p.kind AS owner_kind, p.display_name AS owner_name, p.permissions AS owner_permissions,
                    p.disabled AS owner_disabled, a.api_access_enabled, a.operator AS account_operator,
                    t.state, t.revoked_at, t.revoked_by, t.revoke_reason, t.scopes, t.expires_at,
                    s.expires_at AS secret_expires_at, t.api_version, t.labels, t.allowed_networks
             FROM token_secrets s
             JOIN tokens t ON t.id = s.token_id
             JOIN principals p ON p.id = t.owner_id
             JOIN accounts a ON a.id = t.account_id
             WHERE s.hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&mut **tx)
        .await?
        .map(VerificationSnapshot::try_from)
        .transpose()
    }
}
