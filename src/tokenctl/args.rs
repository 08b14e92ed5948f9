//! The command line.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// Manage and verify the API tokens of a token authority.
#[derive(Debug, Parser)]
#[command(name = "tokenctl", version, about)]
pub struct Cli {
    /// The authority's address.
    #[arg(
        long,
        env = "TOKENCTL_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub endpoint: String,

    /// Your token (sent as `authorization: Bearer`).
    #[arg(long, env = "TOKENCTL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// Aligned tables for people, JSON for scripts.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect, list, revoke and verify tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is shown once.
    Create(CreateArgs),
    /// Show one token.
    Get { id: String },
    /// List tokens, oldest first.
    List(ListArgs),
    /// Revoke a token for good (the record is kept).
    Revoke {
        id: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Check whether a token may be used now.
    Verify {
        /// The token to check (not your own credential).
        secret: String,
        /// A scope the token must have (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub name: String,
    /// The principal the token acts for (default: you).
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Limit the token to this permission (repeatable; none: everything the owner has).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// A label, `key=value` (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    #[arg(long, default_value = "")]
    pub api_version: String,
    /// `never`, a duration (`30d`, `1y`, `12h`) or a time (`2027-01-01T00:00:00Z`).
    #[arg(long, default_value = "never")]
    pub expires: String,
    /// Write the secret to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub secret_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long)]
    pub name_contains: Option<String>,
    /// active, disabled, revoked or expired.
    #[arg(long)]
    pub state: Option<String>,
    /// Only tokens created at or after this time (RFC 3339).
    #[arg(long)]
    pub created_after: Option<String>,
    /// Only tokens created before this time (RFC 3339).
    #[arg(long)]
    pub created_before: Option<String>,
    /// Stale tokens: last used before this time (RFC 3339), or never.
    #[arg(long)]
    pub last_used_before: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub page_size: i32,
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
}

fn parse_label(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{value}` is not key=value"))
}

pub fn print_completions(shell: clap_complete::Shell) {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "tokenctl",
        &mut std::io::stdout(),
    );
}
