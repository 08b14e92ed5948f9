//! Generated gRPC clients that present a given credential, the way backends and admin tools
//! do (or a malformed one, for the tests of bad headers).

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use token_authority::proto::admin_service_client::AdminServiceClient;
use token_authority::proto::token_service_client::TokenServiceClient;

/// Adds a credential to every request, as a backend or admin tool would.
#[derive(Clone)]
pub enum Credential {
    Bearer(String),
    ApiKey(String),
    /// A raw `authorization` value, for malformed-header tests.
    RawAuthorization(String),
    None,
}

impl Interceptor for Credential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let (key, value) = match self {
            Credential::Bearer(token) => ("authorization", format!("Bearer {token}")),
            Credential::ApiKey(token) => ("x-api-key", token.clone()),
            Credential::RawAuthorization(value) => ("authorization", value.clone()),
            Credential::None => return Ok(request),
        };
        let value: MetadataValue<_> = value
            .parse()
            .map_err(|_| Status::internal("bad test metadata"))?;
        request.metadata_mut().insert(key, value);
        Ok(request)
    }
}

pub type Tokens = TokenServiceClient<InterceptedService<Channel, Credential>>;
pub type Admin = AdminServiceClient<InterceptedService<Channel, Credential>>;
