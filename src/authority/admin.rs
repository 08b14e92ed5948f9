//! The administration use cases: accounts and their API access, principals, and the audit
//! log.

use std::collections::BTreeMap;

use super::paging::{self, Listing, Page, decode_time_position, invalid_page_token, time_position};
use super::{Authority, AuthorityError, AuthorityResult, Caller, Committed, check_etag};
use crate::domain::{
    Account, AccountId, AuditAction, AuditEvent, DisplayName, Invalidation, InvalidationKind,
    InvalidationTarget, Permission, PermissionSet, Principal, PrincipalId, PrincipalKind,
    Timestamp, TokenPolicy,
};
use crate::store::{AuditQuery, BulkRevoke, Change, PrincipalQuery};

/// A validated CreatePrincipal request.
#[derive(Debug, Clone)]
pub struct NewPrincipal {
    /// None: the caller's account.
    pub account_id: Option<AccountId>,
    pub kind: PrincipalKind,
    pub display_name: DisplayName,
    pub permissions: PermissionSet,
}

/// A validated UpdatePrincipal request: only the fields present change.
#[derive(Debug, Clone, Default)]
pub struct PrincipalUpdate {
    pub display_name: Option<DisplayName>,
    pub permissions: Option<PermissionSet>,
    pub disabled: Option<bool>,
}

/// The filters of ListAuditEvents.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub account_id: Option<AccountId>,
    pub target_id: Option<String>,
    pub actor_id: Option<PrincipalId>,
    pub action: Option<String>,
    pub occurred_at_or_after: Option<Timestamp>,
    pub occurred_before: Option<Timestamp>,
}

impl Authority {
    pub async fn create_account(
        &self,
        caller: &Caller,
        display_name: DisplayName,
    ) -> AuthorityResult<Committed<Account>> {
        caller.require(Permission::ACCOUNTS_MANAGE)?;
        if !caller.is_operator() {
            return Err(AuthorityError::PermissionDenied(
                "only operators can create accounts".into(),
            ));
        }
        let at = self.now();
        let account = Account {
            id: AccountId::generate(),
            display_name,
            api_access_enabled: true,
            operator: false,
            token_policy: TokenPolicy::default(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        let audit = Self::audit(
            caller,
            AuditAction::AccountCreate,
            account.id.as_str(),
            &account.id,
            at,
        );
        let event = self
            .store
            .insert_account(
                &account,
                &Change {
                    audit,
                    invalidation: None,
                },
            )
            .await?;
        let revision = self.apply_committed(event).await;
        tracing::info!(account_id = %account.id, "account created");
        Ok(Committed {
            value: account,
            revision,
        })
    }

    pub async fn get_account(
        &self,
        caller: &Caller,
        id: Option<AccountId>,
    ) -> AuthorityResult<Account> {
        let id = caller.target_account(id)?;
        self.stored_account(&id).await
    }

    /// Turning API access off revokes every token of the account in the same transaction,
    /// so that turning it back on revives none of them. Only operators switch it (a tenant
    /// that switched its own off could never switch it back on), and switching it off takes
    /// power over every principal of the account: it locks them all out.
    pub async fn set_api_access(
        &self,
        caller: &Caller,
        id: Option<AccountId>,
        enabled: bool,
    ) -> AuthorityResult<Committed<Account>> {
        caller.require(Permission::ACCOUNTS_MANAGE)?;
        if !caller.is_operator() {
            return Err(AuthorityError::PermissionDenied(
                "only operators switch an account's API access".into(),
            ));
        }
        let id = caller.target_account(id)?;
        let mut account = self.stored_account(&id).await?;
        if account.api_access_enabled == enabled {
            return Ok(Committed {
                value: account,
                revision: self.revision(),
            });
        }
        if account.operator && !enabled {
            return Err(AuthorityError::FailedPrecondition(
                "the operator account's API access cannot be disabled: nobody could turn it back on".into(),
            ));
        }
        if !enabled {
            let held = self.permissions_in_account(&id).await?;
            let disclose = caller.permissions().contains(Permission::PRINCIPALS_MANAGE);
            caller.ensure_may_act_on(&held, "account", disclose)?;
        }
        let at = self.now();
        let expected_version = account.version;
        account.api_access_enabled = enabled;
        account.version += 1;
        account.updated_at = at;
        let mut audit = Self::audit(
            caller,
            AuditAction::AccountSetApiAccess,
            id.as_str(),
            &id,
            at,
        );
        audit
            .details
            .insert("enabled".to_owned(), enabled.to_string());
        let change = Change {
            audit,
            invalidation: Some(Invalidation {
                kind: InvalidationKind::ApiAccessChanged,
                target: InvalidationTarget::Account(id.clone()),
                account_id: id.clone(),
            }),
        };
        let revoke = (!enabled).then(|| BulkRevoke {
            by: caller.principal_id().clone(),
            reason: "API access disabled for the account".to_owned(),
            at,
        });
        let event = self
            .store
            .update_account(&account, expected_version, revoke.as_ref(), &change)
            .await?;
        let revision = self.apply_committed(event).await;
        tracing::info!(account_id = %id, enabled, "API access changed");
        Ok(Committed {
            value: account,
            revision,
        })
    }

    /// The account with this id, which the caller has been checked to see.
    pub(super) async fn stored_account(&self, id: &AccountId) -> AuthorityResult<Account> {
        self.store
            .account(id)
            .await?
            .ok_or(AuthorityError::NotFound("account"))
    }

    /// Every permission some principal of `account` holds.
    async fn permissions_in_account(&self, account: &AccountId) -> AuthorityResult<PermissionSet> {
        const PAGE: u32 = 1000;
        let mut held = PermissionSet::default();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_principals(&PrincipalQuery {
                    account_id: account.clone(),
                    after,
                    limit: PAGE,
                })
                .await?;
            for principal in &page {
                held = held.union(&principal.permissions);
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => {
                    after = Some((last.created_at, last.id.clone()));
                }
                _ => return Ok(held),
            }
        }
    }

    pub async fn create_principal(
        &self,
        caller: &Caller,
        request: NewPrincipal,
    ) -> AuthorityResult<Committed<Principal>> {
        caller.require(Permission::PRINCIPALS_MANAGE)?;
        let account_id = caller.target_account(request.account_id)?;
        self.stored_account(&account_id).await?;
        // The permissions are the caller's own request: naming them reveals nothing.
        caller.ensure_may_grant(&request.permissions, "the permissions", true)?;
        self.ensure_principal_quota(&account_id).await?;
        let at = self.now();
        let principal = Principal {
            id: PrincipalId::generate(),
            account_id,
            kind: request.kind,
            display_name: request.display_name,
            permissions: request.permissions,
            disabled: false,
            created_at: at,
            updated_at: at,
            version: 1,
        };
        let mut audit = Self::audit(
            caller,
            AuditAction::PrincipalCreate,
            principal.id.as_str(),
            &principal.account_id,
            at,
        );
        caller.note_escalation(&principal.permissions, &mut audit.details);
        let event = self
            .store
            .insert_principal(
                &principal,
                &Change {
                    audit,
                    invalidation: None,
                },
            )
            .await?;
        let revision = self.apply_committed(event).await;
        tracing::info!(principal_id = %principal.id, "principal created");
        Ok(Committed {
            value: principal,
            revision,
        })
    }

    pub async fn get_principal(
        &self,
        caller: &Caller,
        id: &PrincipalId,
    ) -> AuthorityResult<Principal> {
        caller.require(Permission::PRINCIPALS_MANAGE)?;
        self.visible_principal(caller, id).await
    }

    pub async fn list_principals(
        &self,
        caller: &Caller,
        account_id: Option<AccountId>,
        page_size: i32,
        page_token: &str,
    ) -> AuthorityResult<Page<Principal>> {
        caller.require(Permission::PRINCIPALS_MANAGE)?;
        let limit = paging::page_size(page_size)?;
        let account_id = caller.target_account(account_id)?;
        let listing = Listing {
            codec: &self.page_tokens,
            kind: "principals",
            fingerprint: account_id.to_string(),
        };
        let after = listing
            .resume_point(page_token)?
            .map(|position| decode_time_position(&position, PrincipalId::parse))
            .transpose()?;
        let principals = self
            .store
            .list_principals(&PrincipalQuery {
                account_id,
                after,
                limit: limit + 1,
            })
            .await?;
        Ok(Page::from_overfetch(principals, limit, |last| {
            listing.token_after(&time_position(last.created_at, &last.id))
        }))
    }

    pub async fn update_principal(
        &self,
        caller: &Caller,
        id: &PrincipalId,
        update: PrincipalUpdate,
        etag: Option<&str>,
    ) -> AuthorityResult<Committed<Principal>> {
        caller.require(Permission::PRINCIPALS_MANAGE)?;
        let mut principal = self.visible_principal(caller, id).await?;
        check_etag(etag, principal.version)?;
        // The caller holds `principals.manage`: it may read them.
        caller.ensure_may_act_on(&principal.permissions, "principal", true)?;
        let mut details = BTreeMap::new();
        let mut fields = Vec::new();
        if let Some(display_name) = update.display_name {
            principal.display_name = display_name;
            fields.push("display_name");
        }
        if let Some(permissions) = update.permissions {
            caller.ensure_may_grant(&permissions, "the permissions", true)?;
            if !permissions.difference(&principal.permissions).is_empty() {
                caller.ensure_unrestricted("grant a principal permissions")?;
            }
            caller.note_escalation(
                &permissions.difference(&principal.permissions),
                &mut details,
            );
            principal.permissions = permissions;
            fields.push("permissions");
        }
        if let Some(disabled) = update.disabled {
            if disabled && &principal.id == caller.principal_id() {
                return Err(AuthorityError::FailedPrecondition(
                    "a principal cannot disable itself".into(),
                ));
            }
            if !disabled && principal.disabled {
                caller.ensure_unrestricted("enable a principal")?;
            }
            principal.disabled = disabled;
            fields.push("disabled");
        }
        if fields.is_empty() {
            return Err(AuthorityError::invalid(
                "update_mask",
                "must name at least one field",
            ));
        }
        let at = self.now();
        let expected_version = principal.version;
        principal.version += 1;
        principal.updated_at = at;
        let mut audit = Self::audit(
            caller,
            AuditAction::PrincipalUpdate,
            id.as_str(),
            &principal.account_id,
            at,
        );
        details.insert("fields".to_owned(), fields.join(","));
        audit.details = details;
        let change = Change {
            audit,
            // Name, permissions and disabled all show in verification answers.
            invalidation: Some(Invalidation {
                kind: InvalidationKind::PrincipalUpdated,
                target: InvalidationTarget::Principal(principal.id.clone()),
                account_id: principal.account_id.clone(),
            }),
        };
        let event = self
            .store
            .update_principal(&principal, expected_version, &change)
            .await?;
        let revision = self.apply_committed(event).await;
        tracing::info!(principal_id = %principal.id, "principal updated");
        Ok(Committed {
            value: principal,
            revision,
        })
    }

    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        filter: AuditFilter,
        page_size: i32,
        page_token: &str,
    ) -> AuthorityResult<Page<AuditEvent>> {
        caller.require(Permission::AUDIT_READ)?;
        let limit = paging::page_size(page_size)?;
        let account_id = caller.target_account(filter.account_id.clone())?;
        let listing = Listing {
            codec: &self.page_tokens,
            kind: "audit",
            fingerprint: format!("{account_id}|{filter:?}"),
        };
        let before_id = listing
            .resume_point(page_token)?
            .map(|position| position.parse::<i64>().map_err(|_| invalid_page_token()))
            .transpose()?;
        let events = self
            .store
            .list_audit_events(&AuditQuery {
                account_id,
                target_id: filter.target_id,
                actor_id: filter.actor_id,
                action: filter.action,
                occurred_at_or_after: filter.occurred_at_or_after,
                occurred_before: filter.occurred_before,
                before_id,
                limit: limit + 1,
            })
            .await?;
        Ok(Page::from_overfetch(events, limit, |last| {
            listing.token_after(&last.id.to_string())
        }))
    }
}
