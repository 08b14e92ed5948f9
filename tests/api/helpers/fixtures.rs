//! The objects most tests start from, made through the API as a user would: tenants with an
//! administrator, principals, tokens; and the calls tests make often, which panic when
//! refused (a refusal there is a broken premise, not the behaviour under test).

use token_authority::proto::{self, PrincipalKind};

use super::app::TestApp;

/// Every system permission but `accounts.manage`: what a tenant's administrator holds.
pub const TENANT_PERMISSIONS: [&str; 9] = [
    "audit.read",
    "permissions.escalate",
    "principals.manage",
    "tokens.create",
    "tokens.delete",
    "tokens.read",
    "tokens.report_leaked",
    "tokens.update",
    "tokens.verify",
];

/// A tenant account and its administrator.
pub struct Tenant {
    pub account_id: String,
    pub admin_id: String,
    pub admin_token: String,
}

impl TestApp {
    /// Creates a tenant account with an administrator holding every tenant permission
    /// (all system permissions but `accounts.manage`) plus the application permissions
    /// `extra`, and an unscoped token for it.
    pub async fn create_tenant(&self, name: &str, extra: &[&str]) -> Tenant {
        let account = self
            .operator_admin()
            .create_account(proto::CreateAccountRequest {
                display_name: name.to_owned(),
            })
            .await
            .expect("operator creates an account")
            .into_inner()
            .account
            .expect("account");
        let system: Vec<&str> = TENANT_PERMISSIONS.to_vec();
        let admin = self
            .create_principal(&self.bootstrap_token, &account.id, "admin", &system)
            .await;
        let created = self
            .create_token(&self.bootstrap_token, &admin.id, &[])
            .await;
        if !extra.is_empty() {
            // The tenant admin brings application permissions into its account by
            // `permissions.escalate`, as an operator does in the client library's walk-through
            // (docs/client-library.md).
            let mut permissions: Vec<String> = system
                .iter()
                .chain(extra)
                .map(|p| (*p).to_owned())
                .collect();
            permissions.sort();
            self.admin(&created.secret)
                .update_principal(proto::UpdatePrincipalRequest {
                    principal: Some(proto::Principal {
                        id: admin.id.clone(),
                        permissions,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["permissions".to_owned()],
                    }),
                })
                .await
                .expect("the tenant admin escalates to application permissions");
        }
        Tenant {
            account_id: account.id,
            admin_id: admin.id,
            admin_token: created.secret,
        }
    }

    /// Creates a principal in `account_id` as the holder of `caller_token`.
    pub async fn create_principal(
        &self,
        caller_token: &str,
        account_id: &str,
        name: &str,
        permissions: &[&str],
    ) -> proto::Principal {
        self.admin(caller_token)
            .create_principal(proto::CreatePrincipalRequest {
                account_id: account_id.to_owned(),
                kind: PrincipalKind::ServiceAccount as i32,
                display_name: name.to_owned(),
                permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            })
            .await
            .expect("principal created")
            .into_inner()
            .principal
            .expect("principal")
    }

    /// Creates a token for `owner_id` with `scopes`, as the holder of `caller_token`.
    pub async fn create_token(
        &self,
        caller_token: &str,
        owner_id: &str,
        scopes: &[&str],
    ) -> proto::CreateTokenResponse {
        self.tokens(caller_token)
            .create_token(proto::CreateTokenRequest {
                owner_id: owner_id.to_owned(),
                name: "test token".to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            })
            .await
            .expect("token created")
            .into_inner()
    }

    /// Revokes token `id` as the holder of `caller_token`; panics if refused.
    pub async fn revoke(&self, caller_token: &str, id: &str) -> proto::Token {
        self.tokens(caller_token)
            .revoke_token(proto::RevokeTokenRequest {
                id: id.to_owned(),
                ..Default::default()
            })
            .await
            .expect("token revoked")
            .into_inner()
            .token
            .expect("token")
    }

    /// Disables token `id` as the holder of `caller_token`; panics if refused.
    pub async fn disable(&self, caller_token: &str, id: &str) -> proto::Token {
        self.tokens(caller_token)
            .disable_token(proto::DisableTokenRequest {
                id: id.to_owned(),
                ..Default::default()
            })
            .await
            .expect("token disabled")
            .into_inner()
            .token
            .expect("token")
    }

    /// Reads token `id` as the holder of `caller_token`; panics if refused.
    pub async fn get_token(&self, caller_token: &str, id: &str) -> proto::Token {
        self.tokens(caller_token)
            .get_token(proto::GetTokenRequest { id: id.to_owned() })
            .await
            .expect("token read")
            .into_inner()
            .token
            .expect("token")
    }

    /// The id of the bootstrap owner (the principal of `bootstrap_token`).
    pub async fn bootstrap_owner_id(&self) -> String {
        self.verify(&self.bootstrap_token, &[])
            .await
            .owner
            .expect("the bootstrap token has an owner")
            .id
    }

    /// Verifies `token` as the operator (who may verify tokens of every account).
    pub async fn verify(&self, token: &str, required: &[&str]) -> proto::VerifyTokenResponse {
        self.operator_tokens()
            .verify_token(proto::VerifyTokenRequest {
                token: token.to_owned(),
                required_scopes: required.iter().map(|s| (*s).to_owned()).collect(),
                min_revision: 0,
                client_address: String::new(),
            })
            .await
            .expect("VerifyToken answers OK")
            .into_inner()
    }
}
