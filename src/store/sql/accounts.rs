//! The SQL of accounts (tenants).

use std::marker::PhantomData;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use crate::domain::{Account, AccountId};
use crate::store::StoreResult;
use crate::store::rows::{AccountRow, encode_permissions, policy_seconds};
use crate::store::time::to_micros;
use crate::store::{Dialect, StoreError};

/// The statements of accounts, for database `DB`.
pub(super) struct Accounts<DB>(PhantomData<DB>);

impl<DB: Dialect> Accounts<DB>
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
    pub(super) async fn insert(tx: &mut Transaction<'_, DB>, account: &Account) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO accounts (id, display_name, api_access_enabled, operator, created_at, updated_at, version,
               token_max_lifetime_seconds, token_max_reset_grace_seconds, token_allowed_scopes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(account.id.as_str())
        .bind(account.display_name.as_str())
        .bind(account.api_access_enabled)
        .bind(account.operator)
        .bind(to_micros(account.created_at))
        .bind(to_micros(account.updated_at))
        .bind(account.version)
        .bind(policy_seconds(account.token_policy.max_lifetime()))
        .bind(policy_seconds(account.token_policy.max_reset_grace()))
        .bind(encode_permissions(account.token_policy.allowed_scopes()))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(super) async fn get(pool: &Pool<DB>, id: &AccountId) -> StoreResult<Option<Account>> {
        sqlx::query_as::<_, AccountRow>("SELECT * FROM accounts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
            .map(Account::try_from)
            .transpose()
    }

    /// Whether any account exists (a first start has run).
    pub(super) async fn any(tx: &mut Transaction<'_, DB>) -> StoreResult<bool> {
        let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&mut **tx)
            .await?;
        Ok(accounts > 0)
    }

    /// Refuses with a conflict unless the account is at `version`, and holds it there until the
    /// transaction ends (PostgreSQL: a share lock, which an update of the account waits for;
    /// SQLite's writes are serialised anyway).
    pub(super) async fn ensure_version(
        tx: &mut Transaction<'_, DB>,
        id: &AccountId,
        version: i64,
    ) -> StoreResult<()> {
        let sql = format!(
            "SELECT version FROM accounts WHERE id = $1{}",
            DB::LOCK_FOR_SHARE
        );
        let current: Option<i64> = sqlx::query_scalar(&sql)
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        match current {
            None => Err(StoreError::NotFound("account")),
            Some(current) if current != version => Err(StoreError::Conflict("account")),
            Some(_) => Ok(()),
        }
    }

    /// Writes every mutable column if the stored version is `expected_version`; returns
    /// whether a row matched.
    pub(super) async fn update(
        tx: &mut Transaction<'_, DB>,
        account: &Account,
        expected_version: i64,
    ) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE accounts SET display_name = $1, api_access_enabled = $2, updated_at = $3, version = $4,
               token_max_lifetime_seconds = $5, token_max_reset_grace_seconds = $6, token_allowed_scopes = $7
             WHERE id = $8 AND version = $9",
        )
        .bind(account.display_name.as_str())
        .bind(account.api_access_enabled)
        .bind(to_micros(account.updated_at))
        .bind(account.version)
        .bind(policy_seconds(account.token_policy.max_lifetime()))
        .bind(policy_seconds(account.token_policy.max_reset_grace()))
        .bind(encode_permissions(account.token_policy.allowed_scopes()))
        .bind(account.id.as_str())
        .bind(expected_version)
        .execute(&mut **tx)
        .await?;
        Ok(DB::rows_affected(&updated) == 1)
    }
}
