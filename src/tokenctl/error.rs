//! How tokenctl fails: one clear line and an exit code per class of error, never a panic.

use tonic::{Code, Status};

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the token authority: {0}")]
    Unreachable(String),
    /// The authority answered, but cannot serve the call now (database down, a
    /// `--min-revision` not yet applied): worth a retry, like `Unreachable`.
    #[error("the token authority is unavailable: {0}")]
    Unavailable(String),
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
    /// Standard output was closed before everything was written (`tokenctl … | head`):
    /// nothing to say on stderr, and a non-zero exit, as a process killed by SIGPIPE has.
    #[error("standard output was closed")]
    OutputClosed,
    /// `token verify` was answered, and the verdict is not VALID (already printed).
    #[error("the token was refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// 0 is success; 2 is also what clap uses for bad command lines.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Other(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable(_) | Self::Unavailable(_) => 3,
            Self::Unauthenticated(_) => 4,
            Self::PermissionDenied(_) => 5,
            Self::NotFound(_) => 6,
            Self::InvalidArgument(_) => 7,
            Self::Conflict(_) => 8,
            Self::Refused(_) => 9,
            // 128 + SIGPIPE, what a shell shows for a process its pipe's reader left.
            Self::OutputClosed => 141,
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
                Self::Unavailable(if message.is_empty() {
                    "no answer in time".into()
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
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Self::OutputClosed;
        }
        Self::Other(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authority_that_answers_unavailable_was_reached() {
        let error = CliError::from(Status::unavailable(
            "this replica has not applied revision 42 yet, after waiting 2s: retry, or ask another replica",
        ));
        assert_eq!(
            error.exit_code(),
            3,
            "worth a retry, like an unreachable one"
        );
        let line = error.to_string();
        assert!(
            line.starts_with("the token authority is unavailable: this replica"),
            "{line}"
        );
        assert!(!line.contains("cannot reach"), "{line}");
    }
}
