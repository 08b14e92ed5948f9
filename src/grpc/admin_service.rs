//! `tokenauthority.v1.AdminService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{
    self, mask_paths, opt_account_id, opt_etag, opt_principal_id, parse_opt_timestamp,
};
use super::credential::{authenticate, authorize};
use crate::authority::{AuditFilter, Authority, AuthorityError, NewPrincipal, PrincipalUpdate};
use crate::domain::{DisplayName, Permission, PermissionSet, PrincipalId};
use crate::proto::{self, admin_service_server::AdminService};

/// The AdminService over an [`Authority`].
#[derive(Clone)]
pub struct AdminApi {
    authority: Arc<Authority>,
}

impl AdminApi {
    pub fn new(authority: Arc<Authority>) -> Self {
        Self { authority }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_account(
        &self,
        request: Request<proto::CreateAccountRequest>,
    ) -> Result<Response<proto::CreateAccountResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::ACCOUNTS_MANAGE).await?;
        let name = DisplayName::parse(&request.get_ref().display_name, "display_name")?;
        let account = self.authority.create_account(&caller, name).await?;
        Ok(Response::new(proto::CreateAccountResponse {
            account: Some(convert::account(&account.value)),
            revision: account.revision,
        }))
    }

    async fn get_account(
        &self,
        request: Request<proto::GetAccountRequest>,
    ) -> Result<Response<proto::GetAccountResponse>, Status> {
        let caller = authenticate(&self.authority, &request).await?;
        let id = opt_account_id(&request.get_ref().id, "id")?;
        let account = self.authority.get_account(&caller, id).await?;
        Ok(Response::new(proto::GetAccountResponse {
            account: Some(convert::account(&account)),
        }))
    }

    async fn set_api_access(
        &self,
        request: Request<proto::SetApiAccessRequest>,
    ) -> Result<Response<proto::SetApiAccessResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::ACCOUNTS_MANAGE).await?;
        let r = request.get_ref();
        let id = opt_account_id(&r.account_id, "account_id")?;
        let account = self
            .authority
            .set_api_access(&caller, id, r.enabled)
            .await?;
        Ok(Response::new(proto::SetApiAccessResponse {
            account: Some(convert::account(&account.value)),
            revision: account.revision,
        }))
    }

    async fn get_token_policy(
        &self,
        request: Request<proto::GetTokenPolicyRequest>,
    ) -> Result<Response<proto::GetTokenPolicyResponse>, Status> {
        let caller = authenticate(&self.authority, &request).await?;
        let id = opt_account_id(&request.get_ref().account_id, "account_id")?;
        let account = self.authority.get_account(&caller, id).await?;
        Ok(Response::new(proto::GetTokenPolicyResponse {
            policy: Some(convert::token_policy(&account)),
        }))
    }

    async fn set_token_policy(
        &self,
        request: Request<proto::SetTokenPolicyRequest>,
    ) -> Result<Response<proto::SetTokenPolicyResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::ACCOUNTS_MANAGE).await?;
        // Required: a client that forgot it must not lift every rule by accident.
        let values = request.into_inner().policy.ok_or_else(|| {
            AuthorityError::invalid("policy", "is required (an empty one lifts every rule)")
        })?;
        let id = opt_account_id(&values.account_id, "policy.account_id")?;
        let policy = convert::parse_token_policy(&values)?;
        let account = self
            .authority
            .set_token_policy(&caller, id, policy, opt_etag(&values.etag))
            .await?;
        Ok(Response::new(proto::SetTokenPolicyResponse {
            policy: Some(convert::token_policy(&account.value)),
            revision: account.revision,
        }))
    }

    async fn create_principal(
        &self,
        request: Request<proto::CreatePrincipalRequest>,
    ) -> Result<Response<proto::CreatePrincipalResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::PRINCIPALS_MANAGE).await?;
        let r = request.get_ref();
        let new = NewPrincipal {
            account_id: opt_account_id(&r.account_id, "account_id")?,
            kind: convert::parse_principal_kind(r.kind)?,
            display_name: DisplayName::parse(&r.display_name, "display_name")?,
            permissions: PermissionSet::parse(&r.permissions, "permissions")?,
        };
        let principal = self.authority.create_principal(&caller, new).await?;
        Ok(Response::new(proto::CreatePrincipalResponse {
            principal: Some(convert::principal(&principal.value)),
            revision: principal.revision,
        }))
    }

    async fn get_principal(
        &self,
        request: Request<proto::GetPrincipalRequest>,
    ) -> Result<Response<proto::GetPrincipalResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::PRINCIPALS_MANAGE).await?;
        let id = PrincipalId::parse(&request.get_ref().id, "id")?;
        let principal = self.authority.get_principal(&caller, &id).await?;
        Ok(Response::new(proto::GetPrincipalResponse {
            principal: Some(convert::principal(&principal)),
        }))
    }

    async fn list_principals(
        &self,
        request: Request<proto::ListPrincipalsRequest>,
    ) -> Result<Response<proto::ListPrincipalsResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::PRINCIPALS_MANAGE).await?;
        let r = request.get_ref();
        let account_id = opt_account_id(&r.account_id, "account_id")?;
        let page = self
            .authority
            .list_principals(&caller, account_id, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(proto::ListPrincipalsResponse {
            principals: page.items.iter().map(convert::principal).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_principal(
        &self,
        request: Request<proto::UpdatePrincipalRequest>,
    ) -> Result<Response<proto::UpdatePrincipalResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::PRINCIPALS_MANAGE).await?;
        let r = request.into_inner();
        let values = r.principal.unwrap_or_default();
        let id = PrincipalId::parse(&values.id, "principal.id")?;
        let mut update = PrincipalUpdate::default();
        for path in mask_paths(
            r.update_mask.as_ref(),
            &["display_name", "permissions", "disabled"],
        )? {
            match path {
                "display_name" => {
                    update.display_name = Some(DisplayName::parse(
                        &values.display_name,
                        "principal.display_name",
                    )?)
                }
                "permissions" => {
                    update.permissions = Some(PermissionSet::parse(
                        &values.permissions,
                        "principal.permissions",
                    )?)
                }
                "disabled" => update.disabled = Some(values.disabled),
                _ => {}
            }
        }
        let principal = self
            .authority
            .update_principal(&caller, &id, update, opt_etag(&values.etag))
            .await?;
        Ok(Response::new(proto::UpdatePrincipalResponse {
            principal: Some(convert::principal(&principal.value)),
            revision: principal.revision,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
    ) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::AUDIT_READ).await?;
        let r = request.get_ref();
        for (field, value) in [("target_id", &r.target_id), ("action", &r.action)] {
            if value.len() > 100 {
                return Err(
                    AuthorityError::invalid(field, "must be at most 100 characters").into(),
                );
            }
        }
        let filter = AuditFilter {
            account_id: opt_account_id(&r.account_id, "account_id")?,
            target_id: (!r.target_id.is_empty()).then(|| r.target_id.clone()),
            actor_id: opt_principal_id(&r.actor_id, "actor_id")?,
            action: (!r.action.is_empty()).then(|| r.action.clone()),
            occurred_at_or_after: parse_opt_timestamp(
                r.occur_time_after.as_ref(),
                "occur_time_after",
            )?,
            occurred_before: parse_opt_timestamp(
                r.occur_time_before.as_ref(),
                "occur_time_before",
            )?,
        };
        let page = self
            .authority
            .list_audit_events(&caller, filter, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(proto::ListAuditEventsResponse {
            events: page.items.iter().map(convert::audit_event).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
