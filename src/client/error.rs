//! Why a verification could not be answered.

/// A verification that has no answer. An invalid token is not an error: it is a
/// [`super::Verification`] whose code says why.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    /// The authority cannot be reached and the cache cannot be trusted: fail closed (a
    /// backend maps this to 503 / UNAVAILABLE).
    #[error("the token authority is unavailable: {0}")]
    Unavailable(String),
    /// The authority refused this verifier (its credential is invalid or lacks
    /// `tokens.verify`): a configuration error.
    #[error("the token authority refused this verifier: {0}")]
    Refused(tonic::Status),
    /// The configuration cannot work (a bad endpoint or credential).
    #[error("invalid verifier configuration: {0}")]
    Config(String),
}
