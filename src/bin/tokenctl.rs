//! `tokenctl`, the token authority's admin CLI. Thin: parsing and the exit code; the commands
//! live in `token_authority::tokenctl`.

use std::process::ExitCode;

use clap::Parser;
use token_authority::tokenctl::{Cli, CliError, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tokenctl: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader left (`tokenctl … | head`): it knows, and wants nothing more.
        Err(error @ CliError::OutputClosed) => ExitCode::from(error.exit_code()),
        Err(error) => {
            eprintln!("tokenctl: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
