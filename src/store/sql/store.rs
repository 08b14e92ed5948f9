//! [`Store`] on top of the per-table SQL: which statements each operation runs, and in
//! which transaction. Every change commits its rows, its audit record and its event
//! together.

use async_trait::async_trait;
use sqlx::Transaction;

use super::{Db, ThisBackend, accounts, audit, conflict_or_missing, events, principals};
use super::{settings, tokens};
use crate::domain::{
    Account, AccountId, AuditEvent, AuditRecord, InvalidationEvent, Principal, PrincipalId,
    SecretHash, Timestamp, Token, TokenId, VerificationSnapshot,
};
use crate::store::{
    AuditQuery, Backend, Bootstrap, BulkRevoke, Change, PoolUsage, PrincipalQuery, ReplayPage,
    SecretChange, Store, StoreResult, TokenQuery,
};

async fn begin_write(store: &ThisBackend) -> StoreResult<Transaction<'static, Db>> {
    Ok(store.writer().begin_with(ThisBackend::BEGIN_WRITE).await?)
}

/// Records `change` in `tx` and commits: the end of every mutating operation.
async fn commit_change(
    mut tx: Transaction<'_, Db>,
    change: &Change,
) -> StoreResult<Option<InvalidationEvent>> {
    let event = events::record_change(&mut tx, change).await?;
    tx.commit().await?;
    Ok(event)
}

#[async_trait]
impl Store for ThisBackend {
    async fn bootstrap(&self, bootstrap: &Bootstrap) -> StoreResult<bool> {
        let mut tx = begin_write(self).await?;
        // Replicas starting together on an empty database: one bootstraps, the others wait
        // for the lock and then find it done.
        ThisBackend::lock_revisions(&mut tx).await?;
        if accounts::any(&mut tx).await? {
            return Ok(false);
        }
        accounts::insert(&mut tx, &bootstrap.account).await?;
        principals::insert(&mut tx, &bootstrap.owner).await?;
        tokens::insert(&mut tx, &bootstrap.token, &bootstrap.secret).await?;
        for record in &bootstrap.audit {
            audit::insert(&mut tx, record).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn revision(&self) -> StoreResult<u64> {
        events::revision(self.reader()).await
    }

    async fn setting_or_init(&self, key: &str, initial: &[u8]) -> StoreResult<Vec<u8>> {
        let mut tx = begin_write(self).await?;
        let value = settings::get_or_insert(&mut tx, key, initial).await?;
        tx.commit().await?;
        Ok(value)
    }

    async fn insert_account(
        &self,
        account: &Account,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self).await?;
        accounts::insert(&mut tx, account).await?;
        commit_change(tx, change).await
    }

    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        accounts::get(self.reader(), id).await
    }

    async fn update_account(
        &self,
        account: &Account,
        expected_version: i64,
        revoke_tokens: Option<&BulkRevoke>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self).await?;
        if !accounts::update(&mut tx, account, expected_version).await? {
            let id = account.id.as_str();
            return Err(conflict_or_missing(&mut tx, "accounts", "account", id).await);
        }
        if let Some(revoke) = revoke_tokens {
            tokens::revoke_all_of_account(&mut tx, &account.id, revoke).await?;
        }
        commit_change(tx, change).await
    }

    async fn insert_principal(
        &self,
        principal: &Principal,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self).await?;
        principals::insert(&mut tx, principal).await?;
        commit_change(tx, change).await
    }

    async fn principal(&self, id: &PrincipalId) -> StoreResult<Option<Principal>> {
        principals::get(self.reader(), id).await
    }

    async fn list_principals(&self, query: &PrincipalQuery) -> StoreResult<Vec<Principal>> {
        principals::list(self.reader(), query).await
    }

    async fn update_principal(
        &self,
        principal: &Principal,
        expected_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self).await?;
        if !principals::update(&mut tx, principal, expected_version).await? {
            let id = principal.id.as_str();
            return Err(conflict_or_missing(&mut tx, "principals", "principal", id).await);
        }
        commit_change(tx, change).await
    }

    async fn insert_token(
        &self,
        token: &Token,
        secret: &SecretHash,
        policy_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self).await?;
        // First, before any row of the token is locked (SetApiAccess locks the account,
        // then the tokens).
        accounts::ensure_version(&mut tx, &token.account_id, policy_version).await?;
        tokens::insert(&mut tx, token, secret).await?;
        commit_change(tx, change).await
    }

    async fn count_tokens(&self, account_id: &AccountId) -> StoreResult<u64> {
        tokens::count(self.reader(), account_id).await
    }

    async fn count_principals(&self, account_id: &AccountId) -> StoreResult<u64> {
        principals::count(self.reader(), account_id).await
    }

    async fn token(&self, id: &TokenId) -> StoreResult<Option<Token>> {
        tokens::get(self.reader(), id).await
    }

    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<Vec<Token>> {
        tokens::list(self.reader(), query).await
    }

    async fn update_token(
        &self,
        token: &Token,
        expected_version: i64,
        secret: Option<&SecretChange>,
        policy_version: Option<i64>,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self).await?;
        if let Some(version) = policy_version {
            accounts::ensure_version(&mut tx, &token.account_id, version).await?;
        }
        if !tokens::update(&mut tx, token, expected_version).await? {
            let id = token.id.as_str();
            return Err(conflict_or_missing(&mut tx, "tokens", "token", id).await);
        }
        if let Some(secret) = secret {
            tokens::replace_secret(&mut tx, &token.id, secret, token.updated_at).await?;
        }
        commit_change(tx, change).await
    }

    async fn delete_token(
        &self,
        id: &TokenId,
        expected_version: i64,
        change: &Change,
    ) -> StoreResult<Option<InvalidationEvent>> {
        let mut tx = begin_write(self).await?;
        if !tokens::delete(&mut tx, id, expected_version).await? {
            return Err(conflict_or_missing(&mut tx, "tokens", "token", id.as_str()).await);
        }
        commit_change(tx, change).await
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
        let revision = events::revision(&mut *tx).await?;
        let snapshot = tokens::snapshot(&mut tx, hash).await?;
        tx.commit().await?;
        Ok(snapshot.map(|snapshot| (snapshot, revision)))
    }

    async fn issued_secret_token(&self, hash: &SecretHash) -> StoreResult<Option<TokenId>> {
        tokens::issued_secret_token(self.reader(), hash).await
    }

    async fn record_last_use(&self, uses: &[(TokenId, Timestamp)]) -> StoreResult<()> {
        let mut tx = begin_write(self).await?;
        for (id, at) in uses {
            tokens::record_last_use(&mut tx, id, *at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_audit(&self, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = begin_write(self).await?;
        audit::insert(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        audit::list(self.reader(), query).await
    }

    async fn events_after(&self, after: u64, limit: u32) -> StoreResult<Vec<InvalidationEvent>> {
        events::after(self.reader(), after, limit).await
    }

    async fn replay_events(
        &self,
        after: u64,
        limit: u32,
        accounts: Option<&[AccountId]>,
    ) -> StoreResult<ReplayPage> {
        events::replay(self.reader(), after, limit, accounts).await
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tx = begin_write(self).await?;
        let deleted = events::prune(&mut tx, before).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn announce_expired_secrets(
        &self,
        now: Timestamp,
    ) -> StoreResult<Vec<InvalidationEvent>> {
        let mut tx = begin_write(self).await?;
        let announced = events::announce_expired_secrets(&mut tx, now).await?;
        tx.commit().await?;
        Ok(announced)
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        self.change_feed()
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        let usage = |pool, connections: &sqlx::Pool<Db>| {
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
