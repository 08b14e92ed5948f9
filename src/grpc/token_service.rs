//! `tokenauthority.v1.TokenService`.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};

use chrono::Duration;
use tonic::{Request, Response, Status};

use super::convert::{
    self, mask_paths, opt_account_id, opt_etag, opt_principal_id, parse_opt_timestamp,
};
use super::credential::{authenticate, authorize};
use crate::authority::{
    Authority, AuthorityError, Committed, Expiry, LeakReport, NewToken, TokenFilter, TokenUpdate,
    VerifyOutcome, WatchOptions, WatchStart,
};
use crate::domain::{
    AllowedNetworks, ApiVersion, Description, Labels, LeakSource, LeakUrl, Permission,
    PermissionSet, RevokeReason, TokenId, TokenName, VerificationCode,
};
use crate::proto::{self, token_service_server::TokenService};

/// The TokenService over an [`Authority`].
#[derive(Clone)]
pub struct TokenApi {
    authority: Arc<Authority>,
    watch: WatchOptions,
}

impl TokenApi {
    pub fn new(authority: Arc<Authority>, watch: WatchOptions) -> Self {
        Self { authority, watch }
    }
}

/// The stream WatchRevocations answers with.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<proto::WatchRevocationsResponse, Status>> + Send>>;

fn token_id(value: &str) -> Result<TokenId, Status> {
    Ok(TokenId::parse(value, "id")?)
}

fn respond<T>(message: T) -> Result<Response<T>, Status> {
    Ok(Response::new(message))
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    type WatchRevocationsStream = WatchStream;

    async fn watch_revocations(
        &self,
        request: Request<proto::WatchRevocationsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_VERIFY).await?;
        let r = request.get_ref();
        let account = opt_account_id(&r.account_id, "account_id")?;
        let start = if r.start_from_now {
            WatchStart::Now
        } else {
            WatchStart::After(r.after_revision)
        };
        let history = self.authority.history().to_owned();
        let items = self
            .authority
            .watch(&caller, start, account, self.watch)?
            .map(move |item| {
                item.map(|item| convert::watch_item(item, &history))
                    .map_err(Status::from)
            });
        Ok(Response::new(Box::pin(super::panics::guard_stream(items))))
    }

    async fn create_token(
        &self,
        request: Request<proto::CreateTokenRequest>,
    ) -> Result<Response<proto::CreateTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_CREATE).await?;
        let r = request.into_inner();
        let expiry = match &r.expiry {
            None => Expiry::Never,
            Some(proto::create_token_request::Expiry::ExpireTime(t)) => {
                Expiry::At(convert::parse_timestamp(t, "expire_time")?)
            }
            Some(proto::create_token_request::Expiry::Ttl(d)) => {
                Expiry::After(convert::parse_duration(d, "ttl")?)
            }
        };
        let new = NewToken {
            owner_id: opt_principal_id(&r.owner_id, "owner_id")?,
            name: TokenName::parse(&r.name, "name")?,
            description: Description::parse(&r.description, "description")?,
            scopes: PermissionSet::parse(&r.scopes, "scopes")?,
            labels: Labels::parse(&r.labels, "labels")?,
            api_version: ApiVersion::parse(&r.api_version, "api_version")?,
            allowed_networks: AllowedNetworks::parse(&r.allowed_networks, "allowed_networks")?,
            expiry,
        };
        let Committed {
            value: (token, secret),
            revision,
        } = self.authority.create_token(&caller, new).await?;
        respond(proto::CreateTokenResponse {
            token: Some(convert::token(&token, self.authority.now())),
            secret: secret.expose().to_owned(),
            revision,
        })
    }

    async fn get_token(
        &self,
        request: Request<proto::GetTokenRequest>,
    ) -> Result<Response<proto::GetTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_READ).await?;
        let id = token_id(&request.get_ref().id)?;
        let token = self.authority.get_token(&caller, &id).await?;
        respond(proto::GetTokenResponse {
            token: Some(convert::token(&token, self.authority.now())),
        })
    }

    async fn list_tokens(
        &self,
        request: Request<proto::ListTokensRequest>,
    ) -> Result<Response<proto::ListTokensResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_READ).await?;
        let r = request.into_inner();
        if r.name_contains.chars().count() > 200 {
            return Err(
                AuthorityError::invalid("name_contains", "must be at most 200 characters").into(),
            );
        }
        let filter = TokenFilter {
            account_id: opt_account_id(&r.account_id, "account_id")?,
            owner_id: opt_principal_id(&r.owner_id, "owner_id")?,
            name_contains: (!r.name_contains.is_empty()).then(|| r.name_contains.clone()),
            state: convert::parse_token_state(r.state)?,
            created_at_or_after: parse_opt_timestamp(
                r.create_time_after.as_ref(),
                "create_time_after",
            )?,
            created_before: parse_opt_timestamp(
                r.create_time_before.as_ref(),
                "create_time_before",
            )?,
            last_used_before: parse_opt_timestamp(
                r.last_use_time_before.as_ref(),
                "last_use_time_before",
            )?,
            expires_before: parse_opt_timestamp(
                r.expire_time_before.as_ref(),
                "expire_time_before",
            )?,
            violates_token_policy: r.violates_token_policy,
        };
        let page = self
            .authority
            .list_tokens(&caller, filter, r.page_size, &r.page_token)
            .await?;
        let at = self.authority.now();
        respond(proto::ListTokensResponse {
            tokens: page
                .items
                .iter()
                .map(|token| convert::token(token, at))
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn update_token(
        &self,
        request: Request<proto::UpdateTokenRequest>,
    ) -> Result<Response<proto::UpdateTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_UPDATE).await?;
        let r = request.into_inner();
        let values = r.token.unwrap_or_default();
        let id = TokenId::parse(&values.id, "token.id")?;
        let paths = mask_paths(
            r.update_mask.as_ref(),
            &[
                "name",
                "description",
                "expire_time",
                "scopes",
                "labels",
                "api_version",
                "allowed_networks",
            ],
        )?;
        let mut update = TokenUpdate::default();
        for path in paths {
            match path {
                "name" => update.name = Some(TokenName::parse(&values.name, "token.name")?),
                "description" => {
                    update.description = Some(Description::parse(
                        &values.description,
                        "token.description",
                    )?)
                }
                "expire_time" => {
                    update.expires_at = Some(parse_opt_timestamp(
                        values.expire_time.as_ref(),
                        "token.expire_time",
                    )?)
                }
                "scopes" => {
                    update.scopes = Some(PermissionSet::parse(&values.scopes, "token.scopes")?)
                }
                "labels" => update.labels = Some(Labels::parse(&values.labels, "token.labels")?),
                "api_version" => {
                    update.api_version =
                        Some(ApiVersion::parse(&values.api_version, "token.api_version")?)
                }
                "allowed_networks" => {
                    update.allowed_networks = Some(AllowedNetworks::parse(
                        &values.allowed_networks,
                        "token.allowed_networks",
                    )?)
                }
                _ => {}
            }
        }
        let token = self
            .authority
            .update_token(&caller, &id, update, opt_etag(&values.etag))
            .await?;
        respond(proto::UpdateTokenResponse {
            token: Some(convert::token(&token.value, self.authority.now())),
            revision: token.revision,
        })
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::RevokeTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_UPDATE).await?;
        let r = request.get_ref();
        let id = token_id(&r.id)?;
        let reason = RevokeReason::parse(&r.reason, "reason")?;
        let token = self
            .authority
            .revoke_token(&caller, &id, reason, opt_etag(&r.etag))
            .await?;
        respond(proto::RevokeTokenResponse {
            token: Some(convert::token(&token.value, self.authority.now())),
            revision: token.revision,
        })
    }

    async fn disable_token(
        &self,
        request: Request<proto::DisableTokenRequest>,
    ) -> Result<Response<proto::DisableTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_UPDATE).await?;
        let r = request.get_ref();
        let token = self
            .authority
            .disable_token(&caller, &token_id(&r.id)?, opt_etag(&r.etag))
            .await?;
        respond(proto::DisableTokenResponse {
            token: Some(convert::token(&token.value, self.authority.now())),
            revision: token.revision,
        })
    }

    async fn enable_token(
        &self,
        request: Request<proto::EnableTokenRequest>,
    ) -> Result<Response<proto::EnableTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_UPDATE).await?;
        let r = request.get_ref();
        let token = self
            .authority
            .enable_token(&caller, &token_id(&r.id)?, opt_etag(&r.etag))
            .await?;
        respond(proto::EnableTokenResponse {
            token: Some(convert::token(&token.value, self.authority.now())),
            revision: token.revision,
        })
    }

    async fn delete_token(
        &self,
        request: Request<proto::DeleteTokenRequest>,
    ) -> Result<Response<proto::DeleteTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_DELETE).await?;
        let r = request.get_ref();
        let deleted = self
            .authority
            .delete_token(&caller, &token_id(&r.id)?, opt_etag(&r.etag))
            .await?;
        respond(proto::DeleteTokenResponse {
            revision: deleted.revision,
        })
    }

    async fn reset_token(
        &self,
        request: Request<proto::ResetTokenRequest>,
    ) -> Result<Response<proto::ResetTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_UPDATE).await?;
        let r = request.get_ref();
        let grace = match &r.grace_period {
            Some(d) => convert::parse_duration(d, "grace_period")?,
            None => Duration::zero(),
        };
        let Committed {
            value: (token, secret),
            revision,
        } = self
            .authority
            .reset_token(&caller, &token_id(&r.id)?, grace, opt_etag(&r.etag))
            .await?;
        respond(proto::ResetTokenResponse {
            token: Some(convert::token(&token, self.authority.now())),
            secret: secret.expose().to_owned(),
            revision,
        })
    }

    async fn duplicate_token(
        &self,
        request: Request<proto::DuplicateTokenRequest>,
    ) -> Result<Response<proto::DuplicateTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_UPDATE).await?;
        let r = request.get_ref();
        let name = if r.name.is_empty() {
            None
        } else {
            Some(TokenName::parse(&r.name, "name")?)
        };
        let Committed {
            value: (token, secret),
            revision,
        } = self
            .authority
            .duplicate_token(&caller, &token_id(&r.id)?, name)
            .await?;
        respond(proto::DuplicateTokenResponse {
            token: Some(convert::token(&token, self.authority.now())),
            secret: secret.expose().to_owned(),
            revision,
        })
    }

    async fn report_leaked_tokens(
        &self,
        request: Request<proto::ReportLeakedTokensRequest>,
    ) -> Result<Response<proto::ReportLeakedTokensResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_REPORT_LEAKED).await?;
        let r = request.into_inner();
        let report = LeakReport::new(
            r.secrets,
            LeakSource::parse(&r.source, "source")?,
            LeakUrl::parse(&r.url, "url")?,
        )?;
        let Committed { value, revision } =
            self.authority.report_leaked_tokens(&caller, report).await?;
        respond(proto::ReportLeakedTokensResponse {
            results: value.iter().map(convert::leak_outcome).collect(),
            revision,
        })
    }

    async fn get_caller(
        &self,
        request: Request<proto::GetCallerRequest>,
    ) -> Result<Response<proto::GetCallerResponse>, Status> {
        let caller = authenticate(&self.authority, &request).await?;
        respond(proto::GetCallerResponse {
            token_id: caller.token_id().to_string(),
            account_id: caller.account_id().to_string(),
            principal: Some(proto::TokenOwner {
                id: caller.principal_id().to_string(),
                kind: convert::principal_kind(caller.principal_kind()).into(),
                display_name: caller.principal_name().to_owned(),
            }),
            permissions: caller.permissions().to_strings(),
            operator: caller.is_operator(),
            expire_time: caller.valid_until().map(convert::timestamp),
        })
    }

    async fn verify_token(
        &self,
        request: Request<proto::VerifyTokenRequest>,
    ) -> Result<Response<proto::VerifyTokenResponse>, Status> {
        let caller = authorize(&self.authority, &request, Permission::TOKENS_VERIFY).await?;
        let r = request.get_ref();
        let required = PermissionSet::parse(&r.required_scopes, "required_scopes")?;
        let client = convert::opt_ip_address(&r.client_address, "client_address")?;
        let outcome = self
            .authority
            .verify_token(&caller, &r.token, &required, client, r.min_revision)
            .await?;
        respond(verification_response(&self.authority, &outcome))
    }
}

/// The VerifyToken answer for `outcome`: what the RPC sends, and what the Envoy `Check`
/// on this port decides from.
pub(super) fn verification_response(
    authority: &Authority,
    outcome: &VerifyOutcome,
) -> proto::VerifyTokenResponse {
    let verdict = &outcome.verdict;
    let valid = verdict.code == VerificationCode::Valid;
    let mut response = proto::VerifyTokenResponse {
        valid,
        code: convert::verification_code(verdict.code).into(),
        revision: outcome.revision,
        missing_scopes: verdict.missing_scopes.to_strings(),
        verify_time: Some(convert::timestamp(outcome.at())),
        history: authority.history().to_owned(),
        ..Default::default()
    };
    if let Some(snapshot) = outcome.snapshot() {
        response.token_id = snapshot.token_id.to_string();
        response.account_id = snapshot.account_id.to_string();
        response.owner = Some(proto::TokenOwner {
            id: snapshot.owner_id.to_string(),
            kind: convert::principal_kind(snapshot.owner_kind).into(),
            display_name: snapshot.owner_name.clone(),
        });
        // The identity of a token refused only for its client's address too, with its
        // allowlist: a cache answers other addresses from it.
        if outcome.good_but_for_address() {
            response.effective_scopes = outcome
                .effective_scopes()
                .map(PermissionSet::to_strings)
                .unwrap_or_default();
            response.allowed_networks = snapshot.allowed_networks.to_strings();
            response.expire_time = verdict.expires_at.map(convert::timestamp);
            response.api_version = snapshot.api_version.as_str().to_owned();
            response.labels = snapshot
                .labels
                .as_map()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
    }
    response
}
