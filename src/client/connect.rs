//! Connecting to the authority, shared by the client library and tokenctl: TLS for
//! `https://` endpoints, and the interceptor that presents a token on every call.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::proto::token_service_client::TokenServiceClient;

/// The generated TokenService client, sending the bearer credential with every call.
pub(crate) type Client = TokenServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// Presents a token as `authorization: Bearer <token>` on every call (or nothing).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

/// A token that cannot be sent as header text.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the token is not valid header text")]
pub struct NotHeaderText;

impl Bearer {
    pub fn new(token: Option<&str>) -> Result<Self, NotHeaderText> {
        token
            .map(|token| format!("Bearer {}", token.trim()).parse())
            .transpose()
            .map(Self)
            .map_err(|_| NotHeaderText)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// `endpoint` with TLS when `uri` is `https://`: trusting `ca_pem` (a CA certificate, PEM)
/// if given, the system's roots otherwise. `http://` endpoints are left as they are.
pub fn with_tls(
    endpoint: Endpoint,
    uri: &str,
    ca_pem: Option<&[u8]>,
) -> Result<Endpoint, tonic::transport::Error> {
    if !uri.starts_with("https://") {
        return Ok(endpoint);
    }
    let tls = match ca_pem {
        Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    endpoint.tls_config(tls)
}
