//! Envoy's `envoy.service.auth.v3.Authorization/Check` on the authority's own gRPC port,
//! for a gateway that asks the authority directly instead of an edge beside it (every
//! request then crosses the network, but nothing else runs beside the gateway). Served when
//! the server has gateway rules (`--gateway-rules`).
//!
//! The gateway's own credential comes in the call's metadata (Envoy's `initial_metadata`)
//! and must hold `tokens.verify`; it verifies tokens of its own account (an operator's: of
//! every account), as VerifyToken does. The decision is the edge's
//! ([`crate::gateway::ext_authz::answer`]).

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse};
use tonic::{Request, Response, Status};

use super::credential::authorize;
use super::token_service::verification_response;
use crate::authority::{Authority, Caller, VerifyOutcome};
use crate::client::{TrustedProxies, Verification, VerifyError};
use crate::domain::{Permission, PermissionSet};
use crate::gateway::Routes;
use crate::gateway::decision::Verifier;

/// The Authorization service of the authority.
pub struct AuthorityCheck {
    pub authority: Arc<Authority>,
    pub routes: Arc<Routes>,
}

#[tonic::async_trait]
impl Authorization for AuthorityCheck {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_VERIFY).await?;
        // Envoy's source is the client, as it is: this Check trusts no proxies (an edge
        // beside Envoy can, with --ext-authz-trusted-proxy). A client presenting tokens
        // that fail a database read spends its address's allowance (--auth-failures-per-
        // second, kept apart from the authority's own callers'), so that forged tokens sent
        // through the gateway cannot fill the look-up slots that every verifier shares. The
        // allowance is the gateway credential's own: the gateway names the address itself,
        // so one credential must not be able to exhaust another gateway's clients'.
        let failures = self.authority.gateway_failures(caller.token_id());
        let verifier = AsCaller {
            authority: &self.authority,
            caller,
        };
        let answer = crate::gateway::ext_authz::answer(
            &self.routes,
            &verifier,
            &failures,
            &TrustedProxies::default(),
            request.into_inner(),
            false,
        )
        .await;
        Ok(Response::new(answer))
    }
}

/// The authority's verifications, as the gateway's credential may make them.
struct AsCaller<'a> {
    authority: &'a Authority,
    caller: Caller,
}

impl Verifier for AsCaller<'_> {
    /// What the authority answers from memory (a malformed token, a cached one, a hash
    /// remembered as unknown) costs nothing: answered before the client's allowance is
    /// looked at, so a client whose token is cached keeps working beside a spray from its
    /// address, as at the edge.
    fn verify_locally(
        &self,
        token: &str,
        scopes: &[&str],
        client: Option<IpAddr>,
    ) -> Option<Verification> {
        let required = PermissionSet::parse(scopes, "scopes").ok()?;
        let outcome = self
            .authority
            .verify_token_from_memory(&self.caller, token, &required, client)
            .ok()??;
        Some(self.verification(&outcome))
    }

    async fn verify(
        &self,
        token: &str,
        scopes: &[&str],
        client: Option<IpAddr>,
    ) -> Result<Verification, VerifyError> {
        let required = PermissionSet::parse(scopes, "scopes")
            .map_err(|error| VerifyError::Config(error.to_string()))?;
        let outcome = self
            .authority
            .verify_token(&self.caller, token, &required, client, 0)
            .await
            .map_err(|error| VerifyError::Unavailable(error.to_string()))?;
        Ok(self.verification(&outcome))
    }
}

impl AsCaller<'_> {
    fn verification(&self, outcome: &VerifyOutcome) -> Verification {
        Verification::from_response(verification_response(self.authority, outcome))
    }
}
