//! How tokenctl fails: one clear line and an exit code per class of error, never a panic.

use tonic::{Code, Status};

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the token authority: {0}")]
    Unreachable(String),
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("refused: {0}")]
    Conflict(String),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// 0 is success; 2 is also what clap uses for bad command lines.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Other(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable(_) => 3,
            Self::Unauthenticated(_) => 4,
            Self::PermissionDenied(_) => 5,
            Self::NotFound(_) => 6,
            Self::InvalidArgument(_) => 7,
            Self::Conflict(_) => 8,
        }
    }
}

impl From<Status> for CliError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        // A failure of the connection itself (refused, reset, TLS or HTTP/2 mismatch)
        // arrives as a status whose source is a transport error, whatever its code.
        let transport = std::error::Error::source(&status)
            .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some());
        if transport || message.contains("h2 protocol error") {
            if status.code() == Code::Unavailable {
                return Self::Unreachable(first_line(&message));
            }
            return Self::Unreachable(format!(
                "{} (does the endpoint's scheme match the server: http:// or https://?)",
                first_line(&message)
            ));
        }
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded => {
                Self::Unreachable(if message.is_empty() {
                    "no answer".into()
                } else {
                    first_line(&message)
                })
            }
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::PermissionDenied => Self::PermissionDenied(message),
            Code::NotFound => Self::NotFound(message),
            Code::InvalidArgument | Code::OutOfRange | Code::ResourceExhausted => {
                Self::InvalidArgument(message)
            }
            Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => {
                Self::Conflict(message)
            }
            _ => Self::Other(format!("{}: {}", status.code(), first_line(&message))),
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        Self::Other(error.to_string())
    }
}
