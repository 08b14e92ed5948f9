//! The authenticated caller of an RPC, and the checks every use case makes with it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::AuthorityError;
use super::verification_cache::CachedSnapshot;
use crate::domain::{
    AccountId, AllowedNetworks, InvalidationTarget, Permission, PermissionSet, PrincipalId,
    SecretHash, Timestamp, TokenId,
};

/// Who is calling: the owner of the token presented, with that token's effective scopes.
///
/// It shares the verification snapshot its token was authenticated with, so that
/// authenticating a call copies nothing.
#[derive(Debug, Clone)]
pub struct Caller {
    credential: Arc<CachedSnapshot>,
    /// The hash of the secret presented, so that a long-lived call can authenticate again.
    secret_hash: SecretHash,
    /// The caller's network address, for the audit log.
    peer: Option<SocketAddr>,
}

impl Caller {
    pub(super) fn new(
        credential: Arc<CachedSnapshot>,
        secret_hash: SecretHash,
        peer: Option<SocketAddr>,
    ) -> Self {
        Self {
            credential,
            secret_hash,
            peer,
        }
    }

    /// The same caller, with its credential as read again.
    pub(super) fn renewed(&self, credential: Arc<CachedSnapshot>) -> Self {
        Self {
            credential,
            ..self.clone()
        }
    }

    /// The revision the caller's credential was read at: no change to it up to there is
    /// missing from what authenticated it.
    pub(super) fn credential_revision(&self) -> u64 {
        self.credential.revision
    }

    pub(super) fn secret_hash(&self) -> &SecretHash {
        &self.secret_hash
    }

    /// Whether a change of this object can affect the caller's credential: its token, its
    /// owner or its account.
    pub(super) fn depends_on(&self, target: &InvalidationTarget) -> bool {
        let snapshot = &self.credential.snapshot;
        match target {
            InvalidationTarget::Token(id) => id == &snapshot.token_id,
            InvalidationTarget::Principal(id) => id == &snapshot.owner_id,
            InvalidationTarget::Account(id) => id == &snapshot.account_id,
        }
    }

    /// When the credential stops working by the clock alone: the sooner of its token's
    /// expiry and, for a secret replaced by a reset, the end of its grace period.
    pub fn valid_until(&self) -> Option<Timestamp> {
        let snapshot = &self.credential.snapshot;
        match (snapshot.expires_at, snapshot.secret_expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The principal the caller's token acts for.
    pub fn principal_id(&self) -> &PrincipalId {
        &self.credential.snapshot.owner_id
    }

    /// The kind of the principal the caller's token acts for.
    pub fn principal_kind(&self) -> crate::domain::PrincipalKind {
        self.credential.snapshot.owner_kind
    }

    /// The display name of the principal the caller's token acts for.
    pub fn principal_name(&self) -> &str {
        &self.credential.snapshot.owner_name
    }

    /// The token the caller presented.
    pub fn token_id(&self) -> &TokenId {
        &self.credential.snapshot.token_id
    }

    /// Whether the caller's token is unscoped: it acts with everything its owner holds, now
    /// and later.
    pub fn is_unscoped(&self) -> bool {
        self.credential.snapshot.scopes.is_empty()
    }

    pub fn account_id(&self) -> &AccountId {
        &self.credential.snapshot.account_id
    }

    /// The caller token's effective scopes: what this call may do.
    pub fn permissions(&self) -> &PermissionSet {
        &self.credential.effective_scopes
    }

    /// A principal of the operator account: may act in every account.
    pub fn is_operator(&self) -> bool {
        self.credential.snapshot.account_operator
    }

    pub fn peer_address(&self) -> Option<String> {
        self.peer.map(|addr| addr.to_string())
    }

    /// The IP address the caller connected from, for its token's allowlist.
    pub(super) fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer.map(|addr| addr.ip())
    }

    /// Refuses unless the caller holds `permission`.
    pub fn require(&self, permission: &str) -> Result<(), AuthorityError> {
        if self.permissions().contains(permission) {
            Ok(())
        } else {
            Err(AuthorityError::PermissionDenied(format!(
                "this call requires the `{permission}` permission"
            )))
        }
    }

    /// Whether the caller may see objects of `account`. Objects it may not see are reported
    /// as not found, so that their existence is not revealed.
    pub fn can_access(&self, account: &AccountId) -> bool {
        self.is_operator() || self.account_id() == account
    }

    /// `NotFound(what)` unless the caller may see objects of `account`.
    pub fn ensure_access(
        &self,
        account: &AccountId,
        what: &'static str,
    ) -> Result<(), AuthorityError> {
        if self.can_access(account) {
            Ok(())
        } else {
            Err(AuthorityError::NotFound(what))
        }
    }

    /// The account a request names, or the caller's own when it names none.
    pub fn target_account(
        &self,
        requested: Option<AccountId>,
    ) -> Result<AccountId, AuthorityError> {
        let account = requested.unwrap_or_else(|| self.account_id().clone());
        self.ensure_access(&account, "account")?;
        Ok(account)
    }

    /// The permissions in `wanted` that the caller may not grant (to a principal, or in a
    /// token it issues) or act upon (a principal holding them): every one it lacks, except
    /// application permissions when it holds `permissions.escalate` (which could grant them
    /// to itself anyway). Empty means allowed.
    pub fn beyond_grant(&self, wanted: &PermissionSet) -> PermissionSet {
        let lacking = wanted.difference(self.permissions());
        if self
            .permissions()
            .contains(Permission::PERMISSIONS_ESCALATE)
        {
            lacking.difference(&lacking.application())
        } else {
            lacking
        }
    }

    /// Names in an audit record's `details` the application permissions of `granted` that
    /// the caller grants only by `permissions.escalate`, so every escalation is on record.
    pub fn note_escalation(&self, granted: &PermissionSet, details: &mut BTreeMap<String, String>) {
        let escalated = granted.difference(self.permissions()).application();
        if !escalated.is_empty() {
            details.insert(
                "escalated_permissions".to_owned(),
                escalated.to_strings().join(","),
            );
        }
    }

    /// Whether the caller may read the permissions of principal `id` (of an account it may
    /// see): its own, or anyone's with `principals.manage` (GetPrincipal). A refusal names
    /// another principal's permissions, or a token's that derive from them, only then.
    pub fn may_read_permissions_of(&self, id: &PrincipalId) -> bool {
        self.principal_id() == id || self.permissions().contains(Permission::PRINCIPALS_MANAGE)
    }

    /// Refuses to hand out permissions the caller may not grant (no escalation): see
    /// [`Caller::beyond_grant`]. `what` names the permissions in the error, which lists them
    /// only when `disclose` (the caller may read them, see
    /// [`Caller::may_read_permissions_of`]).
    pub fn ensure_may_grant(
        &self,
        wanted: &PermissionSet,
        what: &str,
        disclose: bool,
    ) -> Result<(), AuthorityError> {
        refuse_any(
            &self.beyond_grant(wanted),
            &format!("{what} would exceed the caller's own permissions"),
            disclose,
        )
    }

    /// A caller whose credential may be used only from some networks hands out no secret
    /// usable from elsewhere: the token it creates, duplicates, resets, enables or gives a
    /// longer life, and any list it sets, must lie within its own (else a stolen allowlisted
    /// token could mint or revive a secret usable from anywhere).
    pub fn ensure_networks_within(&self, networks: &AllowedNetworks) -> Result<(), AuthorityError> {
        let own = &self.credential.snapshot.allowed_networks;
        if networks.is_within(own) {
            return Ok(());
        }
        Err(AuthorityError::PermissionDenied(format!(
            "the caller's credential may be used only from {}: the token's allowed_networks must lie within them",
            own.to_strings().join(", ")
        )))
    }

    /// A caller whose credential may be used only from some networks makes no principal
    /// more powerful and revives none (`what` it tried): that principal's existing tokens,
    /// whose secrets may be in anyone's hands, may be usable from anywhere.
    pub fn ensure_unrestricted(&self, what: &str) -> Result<(), AuthorityError> {
        let own = &self.credential.snapshot.allowed_networks;
        if own.is_empty() {
            return Ok(());
        }
        Err(AuthorityError::PermissionDenied(format!(
            "the caller's credential may be used only from some networks, so it cannot {what}: the principal's tokens may be usable from anywhere"
        )))
    }

    /// Kubernetes RBAC's escalation prevention for changes: the caller changes, disables,
    /// re-enables or deletes only objects (a principal, a token) whose permissions it may
    /// grant, so that nobody locks out or revives someone more powerful. `what` names the
    /// object in the error.
    pub fn ensure_may_act_on(
        &self,
        held: &PermissionSet,
        what: &str,
        disclose: bool,
    ) -> Result<(), AuthorityError> {
        refuse_any(
            &self.beyond_grant(held),
            &format!(
                "the {what} holds permissions the caller lacks, so the caller cannot change it"
            ),
            disclose,
        )
    }
}

/// PERMISSION_DENIED after `reason`, naming the permissions `beyond` the caller's power when
/// it may read them (`disclose`), with a hint when `permissions.escalate` would have allowed
/// them; Ok when there are none.
fn refuse_any(beyond: &PermissionSet, reason: &str, disclose: bool) -> Result<(), AuthorityError> {
    if beyond.is_empty() {
        return Ok(());
    }
    if !disclose {
        return Err(AuthorityError::PermissionDenied(format!(
            "{reason} (which ones is told only to a caller with `principals.manage`)"
        )));
    }
    let hint = if beyond.application().is_empty() {
        ""
    } else {
        " (application permissions the caller lacks need `permissions.escalate`)"
    };
    Err(AuthorityError::PermissionDenied(format!(
        "{reason}: {}{hint}",
        beyond.to_strings().join(", ")
    )))
}
