//! Generated protobuf and gRPC code for `tokenauthority.v1`, and the encoded descriptor set
//! that server reflection serves.
//!
//! The messages that carry a plaintext secret have `Debug` written by hand (below) so that
//! formatting one with `{:?}` — in a log line, a panic or a test failure — never prints the
//! secret.

#![allow(clippy::all, missing_docs)]

use std::fmt;

tonic::include_proto!("tokenauthority.v1");

/// The descriptors of every `tokenauthority.v1` file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("tokenauthority_descriptor");

const REDACTED: &str = "<redacted>";

impl fmt::Debug for CreateTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateTokenResponse")
            .field("token", &self.token)
            .field("secret", &REDACTED)
            .field("revision", &self.revision)
            .finish()
    }
}

impl fmt::Debug for ResetTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetTokenResponse")
            .field("token", &self.token)
            .field("secret", &REDACTED)
            .field("revision", &self.revision)
            .finish()
    }
}

impl fmt::Debug for DuplicateTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuplicateTokenResponse")
            .field("token", &self.token)
            .field("secret", &REDACTED)
            .field("revision", &self.revision)
            .finish()
    }
}

impl fmt::Debug for VerifyTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyTokenRequest")
            .field("token", &REDACTED)
            .field("required_scopes", &self.required_scopes)
            .field("min_revision", &self.min_revision)
            .field("client_address", &self.client_address)
            .finish()
    }
}

impl fmt::Debug for ReportLeakedTokensRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportLeakedTokensRequest")
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("source", &self.source)
            .field("url", &self.url)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let secret = "tka_thisIsTheSecretValue".to_owned();
        let printed = [
            format!(
                "{:?}",
                CreateTokenResponse {
                    token: None,
                    secret: secret.clone(),
                    revision: 7,
                }
            ),
            format!(
                "{:?}",
                ResetTokenResponse {
                    token: None,
                    secret: secret.clone(),
                    revision: 7,
                }
            ),
            format!(
                "{:?}",
                DuplicateTokenResponse {
                    token: None,
                    secret: secret.clone(),
                    revision: 7,
                }
            ),
            format!(
                "{:?}",
                VerifyTokenRequest {
                    token: secret.clone(),
                    required_scopes: vec![],
                    min_revision: 7,
                    client_address: String::new(),
                }
            ),
            format!(
                "{:?}",
                ReportLeakedTokensRequest {
                    secrets: vec![secret.clone()],
                    source: "scanner".into(),
                    url: String::new(),
                }
            ),
        ];
        for line in printed {
            assert!(!line.contains(&secret), "{line}");
            assert!(line.contains("redacted"), "{line}");
        }
    }
}
