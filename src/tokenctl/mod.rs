//! `tokenctl`, the admin CLI: every command is one gRPC call (or a paginated series) through
//! the generated clients, printed as an aligned table or as JSON for scripts. Errors are one
//! line on stderr with an exit code per class (see [`CliError::exit_code`]).

/// `println!` that fails instead of panicking when standard output is gone (`tokenctl … |
/// head`): write with `outln!(…)?`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::tokenctl::CliError::from)
    }};
}

mod admin;
mod args;
mod error;
pub(crate) mod expiry;
mod output;
mod paging;
mod policy;
mod secret_input;
mod token;

pub use args::Cli;
pub use error::CliError;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::client::connect::{Bearer, with_tls};
use crate::proto::admin_service_client::AdminServiceClient;
use crate::proto::token_service_client::TokenServiceClient;
use args::Command;

pub(crate) type Tokens = TokenServiceClient<InterceptedService<Channel, Bearer>>;

/// Connection details shared by every command.
pub(crate) struct Connection {
    channel: Channel,
    bearer: Bearer,
    has_credential: bool,
}

impl Connection {
    fn open(cli: &Cli) -> Result<Self, CliError> {
        let endpoint = Endpoint::from_shared(cli.endpoint.clone())
            .map_err(|_| CliError::Usage(format!("not a valid endpoint: {}", cli.endpoint)))?
            .connect_timeout(std::time::Duration::from_secs(5));
        let ca_pem = match &cli.ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                CliError::Usage(format!("cannot read --ca-cert {}: {e}", path.display()))
            })?),
            None => None,
        };
        let endpoint = with_tls(endpoint, &cli.endpoint, ca_pem.as_deref())
            .map_err(|e| CliError::Usage(format!("TLS configuration: {e}")))?;
        let token = match &cli.token_file {
            Some(file) => {
                secret_input::ensure_not_a_secret(file, "your token")?;
                Some(secret_input::read(file, "your token")?)
            }
            None => std::env::var("TOKENCTL_TOKEN").ok(),
        };
        let bearer = Bearer::new(token.as_deref())
            .map_err(|_| CliError::Usage("the token is not valid header text".into()))?;
        Ok(Self {
            channel: endpoint.connect_lazy(),
            bearer,
            has_credential: token
                .as_deref()
                .is_some_and(|token| !token.trim().is_empty()),
        })
    }

    pub(crate) fn tokens(&self) -> Tokens {
        TokenServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub(crate) fn admin(&self) -> AdminServiceClient<InterceptedService<Channel, Bearer>> {
        AdminServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = &cli.command {
        return args::print_completions(*shell);
    }
    if let (Some(own), Command::Token(args::TokenCommand::Verify { source, .. })) =
        (&cli.token_file, &cli.command)
        && own == std::path::Path::new("-")
        && source == std::path::Path::new("-")
    {
        return Err(CliError::Usage(
            "standard input can carry only one token: give `--token-file` or the token to \
             verify as a file"
                .into(),
        ));
    }
    let connection = Connection::open(&cli)?;
    let outcome = match &cli.command {
        Command::Token(command) => token::run(&connection, command, cli.output).await,
        Command::Principal(command) => admin::principal(&connection, command, cli.output).await,
        Command::Account(command) => admin::account(&connection, command, cli.output).await,
        Command::Audit(command) => admin::audit(&connection, command, cli.output).await,
        Command::Completions { .. } => Ok(()),
    };
    match outcome {
        // Say where a credential comes from to whoever gave none.
        Err(CliError::Unauthenticated(message)) if !connection.has_credential => {
            Err(CliError::Unauthenticated(format!(
                "{message} (no credential given: set TOKENCTL_TOKEN, or name a file holding \
                 your token with --token-file or TOKENCTL_TOKEN_FILE)"
            )))
        }
        outcome => outcome,
    }
}
