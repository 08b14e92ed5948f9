//! [`Store`] on top of the per-table SQL, for every [`Backend`]: which statements each
//! operation runs, and in which transaction. Every change commits its rows, its audit
//! record and its event together ([`Events::commit`]).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use super::accounts::Accounts;
use super::audit::Audit;
use super::conflict_or_missing;
use super::events::Events;
use super::principals::Principals;
use super::settings::Settings;
use super::tokens::Tokens;
use crate::domain::{
    Account, AccountId, AuditEvent, AuditRecord, InvalidationEvent, Principal, PrincipalId,
    SecretHash, Timestamp, Token, TokenId, VerificationSnapshot,
};
use crate::store::{
    AuditQuery, Backend, Bootstrap, BulkRevoke, Change, Dialect, PoolUsage, PrincipalQuery,
    ReplayPage, SecretChange, Store, StoreResult, TokenQuery,
};

/// Opens a write transaction the way the database wants it ([`Dialect::BEGIN_WRITE`]).
async fn begin_write<DB: Dialect>(
    writer: &sqlx::Pool<DB>,
) -> StoreResult<Transaction<'static, DB>> {
    Ok(writer.begin_with(DB::BEGIN_WRITE).await?)
}

#[async_trait]
impl<B, DB> Store for B
where
    B: Backend<Db = DB>,
    DB: Dialect,
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
    async fn bootstrap(&self, bootstrap: &Bootstrap) -> StoreResult<bool> {
        let mut tx = begin_write(self.writer()).await?;
        // Replicas starting together on an empty database: one bootstraps, the others wait
        // for the lock and then find it done.
        DB::lock_revisions(&mut tx).await?;
        if Accounts::any(&mut tx).await? {
            return Ok(false);
        }
        Accounts::insert(&mut tx, &bootstrap.account).await?;
        Principals::insert(&mut tx, &bootstrap.owner).await?;
        Tokens::insert(&mut tx, &bootstrap.token, &bootstrap.secret).await?;
        for record in &bootstrap.audit {
            Audit::insert(&mut tx, record).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn revision(&self) -> StoreResult<u64> {
        Events::revision(self.reader()).await
    }

    async fn setting_or_init(&self, key: &str, initial: &[u8]) -> StoreResult<Vec<u8>> {
        let mut tx = begin_write(self.writer()).await?;
        let value = Settings::get_or_insert(&mut tx, key, initial).await?;
        tx.commit().await?;
        Ok(value)
    }

    async fn insert_account(
        &self,
        account: &Account,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self.writer()).await?;
        Accounts::insert(&mut tx, account).await?;
        Events::commit(tx, change).await
    }

    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        Accounts::get(self.reader(), id).await
    }

    async fn update_account(
        &self,
        account: &Account,
        expected_version: i64,
        revoke_tokens: Option<&BulkRevoke>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self.writer()).await?;
        if !Accounts::update(&mut tx, account, expected_version).await? {
            let id = account.id.as_str();
            return Err(conflict_or_missing(&mut tx, "accounts", "account", id).await);
        }
        if let Some(revoke) = revoke_tokens {
            Tokens::revoke_all_of_account(&mut tx, &account.id, revoke).await?;
        }
        Events::commit(tx, change).await
    }

    async fn insert_principal(
        &self,
        principal: &Principal,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self.writer()).await?;
        Principals::insert(&mut tx, principal).await?;
        Events::commit(tx, change).await
    }

    async fn principal(&self, id: &PrincipalId) -> StoreResult<Option<Principal>> {
        Principals::get(self.reader(), id).await
    }

    async fn list_principals(&self, query: &PrincipalQuery) -> StoreResult<Vec<Principal>> {
        Principals::list(self.reader(), query).await
    }

    async fn update_principal(
        &self,
        principal: &Principal,
        expected_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self.writer()).await?;
        if !Principals::update(&mut tx, principal, expected_version).await? {
            let id = principal.id.as_str();
            return Err(conflict_or_missing(&mut tx, "principals", "principal", id).await);
        }
        Events::commit(tx, change).await
    }

    async fn insert_token(
        &self,
        token: &Token,
        secret: &SecretHash,
        policy_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self.writer()).await?;
        // First, before any row of the token is locked (SetApiAccess locks the account,
        // then the tokens).
        Accounts::ensure_version(&mut tx, &token.account_id, policy_version).await?;
        Tokens::insert(&mut tx, token, secret).await?;
        Events::commit(tx, change).await
    }

    async fn count_tokens(&self, account_id: &AccountId) -> StoreResult<u64> {
        Tokens::count(self.reader(), account_id).await
    }

    async fn count_principals(&self, account_id: &AccountId) -> StoreResult<u64> {
        Principals::count(self.reader(), account_id).await
    }

    async fn token(&self, id: &TokenId) -> StoreResult<Option<Token>> {
        Tokens::get(self.reader(), id).await
    }

    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<Vec<Token>> {
        Tokens::list(self.reader(), query).await
    }

    async fn update_token(
        &self,
        token: &Token,
        expected_version: i64,
        secret: Option<&SecretChange>,
        policy_version: Option<i64>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self.writer()).await?;
        if let Some(version) = policy_version {
            Accounts::ensure_version(&mut tx, &token.account_id, version).await?;
        }
        if !Tokens::update(&mut tx, token, expected_version).await? {
            let id = token.id.as_str();
            return Err(conflict_or_missing(&mut tx, "tokens", "token", id).await);
        }
        if let Some(secret) = secret {
            Tokens::replace_secret(&mut tx, &token.id, secret, token.updated_at).await?;
        }
        Events::commit(tx, change).await
    }

    async fn delete_token(
        &self,
        id: &TokenId,
        expected_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self.writer()).await?;
        if !Tokens::delete(&mut tx, id, expected_version).await? {
            return Err(conflict_or_missing(&mut tx, "tokens", "token", id.as_str()).await);
        }
        Events::commit(tx, change).await
    }

    async fn verification_snapshot(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(VerificationSnapshot, u64)>> {
        // The revision is read before the rows, so the rows are at least as new as the
        // revision and an answer is never tagged with a revision newer than its data; a
        // change committed in between has a higher revision, whose watermark outdates this
        // answer once the follower applies it. That order is what makes the read safe on
        // PostgreSQL, where under READ COMMITTED each statement sees its own snapshot;
        // SQLite's read transaction even gives both statements the same one.
        let mut tx = self.reader().begin().await?;
        let revision = Events::revision(&mut *tx).await?;
        let snapshot = Tokens::snapshot(&mut tx, hash).await?;
        tx.commit().await?;
        Ok(snapshot.map(|snapshot| (snapshot, revision)))
    }

    async fn issued_secret_token(&self, hash: &SecretHash) -> StoreResult<Option<TokenId>> {
        Tokens::issued_secret_token(self.reader(), hash).await
    }

    async fn record_last_use(&self, uses: &[(TokenId, Timestamp)]) -> StoreResult<()> {
        let mut tx = begin_write(self.writer()).await?;
        for (id, at) in uses {
            Tokens::record_last_use(&mut tx, id, *at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_audit(&self, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = begin_write(self.writer()).await?;
        Audit::insert(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        Audit::list(self.reader(), query).await
    }

    async fn events_after(&self, after: u64, limit: u32) -> StoreResult<Vec<InvalidationEvent>> {
        Events::after(self.reader(), after, limit).await
    }

    async fn replay_events(
        &self,
        after: u64,
        limit: u32,
        accounts: Option<&[AccountId]>,
    ) -> StoreResult<ReplayPage> {
        Events::replay(self.reader(), after, limit, accounts).await
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tx = begin_write(self.writer()).await?;
        let deleted = Events::prune(&mut tx, before).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn announce_expired_secrets(
        &self,
        now: Timestamp,
    ) -> StoreResult<Vec<InvalidationEvent>> {
        let mut tx = begin_write(self.writer()).await?;
        let announced = Events::announce_expired_secrets(&mut tx, now).await?;
        tx.commit().await?;
        Ok(announced)
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        self.change_feed()
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        let usage = |pool, connections: &sqlx::Pool<DB>| {
            let idle = u32::try_from(connections.num_idle()).unwrap_or(u32::MAX);
            PoolUsage {
                pool,
                in_use: connections.size().saturating_sub(idle),
                idle,
            }
        };
        if std::ptr::eq(self.writer(), self.reader()) {
            vec![usage("read_write", self.writer())]
        } else {
            vec![
                usage("writer", self.writer()),
                usage("reader", self.reader()),
            ]
        }
    }
}
