//! The command line.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// Manage and verify the API tokens of a token authority.
#[derive(Debug, Parser)]
#[command(name = "tokenctl", version)]
pub struct Cli {
    /// The authority's address.
    #[arg(
        long,
        env = "TOKENCTL_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub endpoint: String,

    /// For `https://` endpoints: trust this CA certificate (PEM) instead of the system's.
    #[arg(long, env = "TOKENCTL_CA_CERT", global = true)]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Read your token (sent as `authorization: Bearer`) from this file, or from standard
    /// input for `-`. Without it, the `TOKENCTL_TOKEN` environment variable holds it. There
    /// is no flag taking the token itself: `ps` and shell history would show it.
    #[arg(long, env = "TOKENCTL_TOKEN_FILE", global = true, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,

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
    /// Create, inspect, list and change principals (users and service accounts).
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Create and inspect accounts, switch their API access.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
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
    /// Change a token's name, description, expiry, scopes (narrowing only), labels or API
    /// version; only the options given change.
    Update(UpdateArgs),
    /// Switch a token off (reversible).
    Disable { id: String },
    /// Switch a disabled token back on.
    Enable { id: String },
    /// Give a token a new secret (shown once); the old one stops now or after a grace period.
    Reset {
        id: String,
        /// How long the old secret keeps working, e.g. `1h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
        /// Write the new secret to this file (mode 0600) instead of printing it.
        #[arg(long)]
        secret_file: Option<std::path::PathBuf>,
    },
    /// Create a copy with the same owner, scopes, labels, API version and lifetime.
    Duplicate {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Write the new secret to this file (mode 0600) instead of printing it.
        #[arg(long)]
        secret_file: Option<std::path::PathBuf>,
    },
    /// Delete a token's record (the audit log keeps the fact).
    Delete { id: String },
    /// Revoke the tokens of leaked secrets, in whichever account, without knowing their ids
    /// (requires `tokens.report_leaked`). Prints, per secret in input order, what became of
    /// it; a token's id only when you may see its account.
    ReportLeak {
        /// Read the secrets, one per line, from this file, or from standard input for `-`
        /// (the default). Never the secrets themselves: `ps` and shell history would show
        /// them.
        #[arg(default_value = "-", value_name = "FILE")]
        file: std::path::PathBuf,
        /// Who found them, for the record: for example `github-secret-scanning` or
        /// `incident-2026-042`.
        #[arg(long)]
        source: String,
        /// Where they were found, for the record.
        #[arg(long, default_value = "")]
        url: String,
    },
    /// Stream invalidation events as lines (or JSON lines with -o json).
    Watch {
        /// Resume after this revision (the last one printed; 0 included). Without it the
        /// stream starts from now.
        #[arg(long)]
        after: Option<u64>,
        /// Only this account (operators).
        #[arg(long)]
        account: Option<String>,
        /// Stop after this many events (default: run until interrupted).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Check whether a token may be used now.
    Verify {
        /// Read the token to check (not your own credential) from this file, or from
        /// standard input for `-` (the default). Never the token itself: `ps` and shell
        /// history would show it.
        #[arg(default_value = "-", value_name = "FILE")]
        source: std::path::PathBuf,
        /// A scope the token must have (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Answer only from a state that includes this revision (printed by every change):
        /// the server waits for it briefly, else fails with UNAVAILABLE.
        #[arg(long, value_name = "REVISION", default_value_t = 0)]
        min_revision: u64,
        /// The IP address the token is presented from, for tokens that list allowed
        /// networks (without it such tokens answer ADDRESS_NOT_ALLOWED).
        #[arg(long, value_name = "IP")]
        client_address: Option<String>,
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
    /// Allow use only from this network, a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or an
    /// address (repeatable; none: from anywhere).
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allowed_networks: Vec<String>,
    /// Write the secret to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub secret_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// `never` or a time (`2027-01-01T00:00:00Z`) or a duration from now (`30d`).
    #[arg(long)]
    pub expires: Option<String>,
    /// Replace the scopes with these (repeatable; the whole set is replaced, and it may only
    /// narrow).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Replace the labels with these `key=value` pairs (repeatable; the whole set is
    /// replaced).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Remove every label.
    #[arg(long, conflicts_with = "labels")]
    pub clear_labels: bool,
    #[arg(long)]
    pub api_version: Option<String>,
    /// Replace the allowed networks with these CIDRs or addresses (repeatable; the whole set
    /// is replaced).
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allowed_networks: Vec<String>,
    /// Allow use from anywhere again.
    #[arg(long, conflicts_with = "allowed_networks")]
    pub allow_any_network: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Another account's tokens (operators).
    #[arg(long)]
    pub account: Option<String>,
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
    /// Tokens that stop working within this long from now, e.g. `7d` (active ones, unless
    /// `--state` says otherwise).
    #[arg(long, value_name = "DURATION")]
    pub expiring_within: Option<String>,
    /// Tokens that break their account's token policy (see `account policy`).
    #[arg(long)]
    pub violating_policy: bool,
    #[arg(long, default_value_t = 100)]
    pub page_size: i32,
    #[command(flatten)]
    pub pages: Pages,
}

fn parse_label(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{value}` is not key=value"))
}

pub fn print_completions(shell: clap_complete::Shell) -> Result<(), super::CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tokenctl", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    Create {
        #[arg(long)]
        name: String,
        /// user or service-account.
        #[arg(long, value_enum, default_value = "service-account")]
        kind: PrincipalKindArg,
        /// A permission (repeatable).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Another account (operators).
        #[arg(long)]
        account: Option<String>,
    },
    Get {
        id: String,
    },
    List {
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        pages: Pages,
    },
    /// Change a principal; only the options given change.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Replace the permissions with these (repeatable; the whole set is replaced).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Remove every permission.
        #[arg(long, conflicts_with = "permissions")]
        clear_permissions: bool,
        #[arg(long)]
        disabled: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrincipalKindArg {
    User,
    ServiceAccount,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account (operators).
    Create {
        #[arg(long)]
        name: String,
    },
    /// Show an account (default: your own).
    Get { id: Option<String> },
    /// Show an account's token policy (default: your own account's).
    Policy {
        /// Another account (operators).
        #[arg(long)]
        account: Option<String>,
    },
    /// Change an account's token policy; only the rules given change. Existing tokens stay
    /// as they are: `token list --violating-policy` finds those that break it.
    SetPolicy(SetPolicyArgs),
    /// Switch an account's API access on or off.
    ApiAccess {
        /// on or off.
        #[arg(value_parser = parse_switch, action = clap::ArgAction::Set)]
        enabled: bool,
        /// Another account (operators).
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SetPolicyArgs {
    /// Another account (operators).
    #[arg(long)]
    pub account: Option<String>,
    /// Tokens must expire at most this long after their creation (`90d`, `1y`), or `none`.
    #[arg(long, value_name = "DURATION|none")]
    pub max_lifetime: Option<String>,
    /// A reset may keep the old secret working at most this long (`1h`, `0s`), or `none`.
    #[arg(long, value_name = "DURATION|none")]
    pub max_reset_grace: Option<String>,
    /// Tokens must list their scopes, from these only (repeatable; replaces the list).
    #[arg(long = "allowed-scope", value_name = "PERMISSION")]
    pub allowed_scopes: Vec<String>,
    /// Lift the scope rule: tokens may carry any scopes.
    #[arg(long, conflicts_with = "allowed_scopes")]
    pub any_scope: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Newest first.
    List {
        #[arg(long)]
        account: Option<String>,
        /// Only events about this object.
        #[arg(long)]
        target: Option<String>,
        /// Only events caused by this principal.
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, e.g. token.revoke.
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 100)]
        page_size: i32,
        #[command(flatten)]
        pages: Pages,
    },
}

/// Which pages a list command fetches.
#[derive(Debug, Args)]
pub struct Pages {
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
    /// Start at this page: the `next_page_token` an earlier listing printed (JSON output).
    #[arg(long)]
    pub page_token: Option<String>,
}

fn parse_switch(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "enabled" => Ok(true),
        "off" | "false" | "disabled" => Ok(false),
        other => Err(format!("`{other}` is not on or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn labels_and_switches_parse() {
        assert_eq!(
            parse_label("team=a=b").unwrap(),
            ("team".into(), "a=b".into())
        );
        assert!(parse_label("team").is_err());
        assert_eq!(parse_switch("off"), Ok(false));
        assert!(parse_switch("maybe").is_err());
    }
}
