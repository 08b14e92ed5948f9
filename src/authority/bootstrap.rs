//! First start: an empty store gets the operator account, an owner principal with every
//! system permission, and one token for that owner, whose secret is handed back once.

use super::AuthorityResult;
use crate::domain::{
    Account, AccountId, AllowedNetworks, ApiVersion, AuditAction, AuditRecord, Description,
    DisplayName, Labels, PermissionSet, Principal, PrincipalId, PrincipalKind, Token, TokenName,
    TokenPolicy, TokenSecret, TokenSpec, now,
};
use crate::store::{Bootstrap, Store};

/// Bootstraps `store` if it holds no account yet; returns the owner token's secret then, and
/// None on every later start.
pub async fn bootstrap(store: &dyn Store) -> AuthorityResult<Option<TokenSecret>> {
    let at = now();
    let account = Account {
        id: AccountId::generate(),
        display_name: DisplayName::from_trusted("Operator".to_owned()),
        api_access_enabled: true,
        operator: true,
        token_policy: TokenPolicy::default(),
        created_at: at,
        updated_at: at,
        version: 1,
    };
    let owner = Principal {
        id: PrincipalId::generate(),
        account_id: account.id.clone(),
        kind: PrincipalKind::User,
        display_name: DisplayName::from_trusted("Owner".to_owned()),
        permissions: PermissionSet::system(),
        disabled: false,
        created_at: at,
        updated_at: at,
        version: 1,
    };
    let secret = TokenSecret::generate();
    let token = Token::issue(
        TokenSpec {
            account_id: account.id.clone(),
            owner_id: owner.id.clone(),
            name: TokenName::from_trusted("bootstrap".to_owned()),
            description: Description::from_trusted("Created on first start".to_owned()),
            scopes: PermissionSet::default(),
            labels: Labels::default(),
            api_version: ApiVersion::default(),
            allowed_networks: AllowedNetworks::default(),
            expires_at: None,
            created_by: owner.id.clone(),
        },
        secret.display_hint(),
        at,
    );
    let audit = |action, target_id: &str| AuditRecord {
        account_id: account.id.clone(),
        actor_id: None,
        actor_token_id: None,
        action,
        target_id: target_id.to_owned(),
        peer_address: None,
        details: Default::default(),
        occurred_at: at,
    };
    let audit = vec![
        audit(AuditAction::AccountCreate, account.id.as_str()),
        audit(AuditAction::PrincipalCreate, owner.id.as_str()),
        audit(AuditAction::TokenCreate, token.id.as_str()),
    ];
    let created = store
        .bootstrap(&Bootstrap {
            account: account.clone(),
            owner: owner.clone(),
            token: token.clone(),
            secret: secret.hash(),
            audit,
        })
        .await?;
    if created {
        tracing::info!(account_id = %account.id, principal_id = %owner.id, token_id = %token.id, "bootstrapped an empty database");
    }
    Ok(created.then_some(secret))
}
