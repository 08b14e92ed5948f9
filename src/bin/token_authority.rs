//! The `token-authority` server binary: parses configuration, sets up logging, and runs
//! `serve` (the default), `migrate`, `backup` or `edge`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use clap::Parser;
use token_authority::configuration::{Cli, Command, OptionalAddr};
use token_authority::domain::TokenSecret;
use token_authority::gateway::edge::{Edge, EdgeCli, EdgeSettings};
use token_authority::startup::{Application, metrics_endpoint, open_store};
use token_authority::store::sqlite::backup::backup;
use token_authority::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|command| command == "edge")
    {
        let edge = EdgeCli::parse_from(std::env::args_os().skip(1));
        return run_edge(edge.settings).await;
    }
    let cli = Cli::parse();
    let settings = cli.settings;
    init_logs(settings.log_format, &settings.log_level);

    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            open_store(&settings, true)
                .await
                .context("migration failed")?;
            tracing::info!("the database schema is up to date");
        }
        Command::Backup { to } => {
            backup(&settings.database_url, &to)
                .await
                .context("backup failed")?;
            let bytes = std::fs::metadata(&to).map(|m| m.len()).unwrap_or_default();
            println!("Backup written to {} ({bytes} bytes).", to.display());
        }
        // Only when an option came before `edge`: its options are its own.
        Command::Edge => anyhow::bail!(
            "write `edge` first, before any option: token-authority edge [OPTIONS] (see \
             token-authority edge --help)"
        ),
        Command::Serve => {
            if let OptionalAddr::At(addr) = settings.metrics_addr {
                // Before the server is built: handles register with the recorder on first use.
                start_metrics(addr, settings.first_request_timeout).await?;
            }
            let token_file = settings.bootstrap_token_file.clone();
            let scheme = if settings.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            let mut app = Application::build(settings)
                .await
                .context("could not start")?;
            let console = app.console_addr().map(|addr| format!("{scheme}://{addr}/"));
            if let Some(token) = app.take_bootstrap_token() {
                hand_out_bootstrap_token(&token, token_file.as_deref(), console)?;
            }
            app.run_until_stopped(shutdown_signal()).await?;
        }
    }
    Ok(())
}

/// Logs to stderr, in colour on a terminal.
fn init_logs(format: token_authority::configuration::LogFormat, level: &str) {
    let ansi = std::io::stderr().is_terminal();
    telemetry::init(telemetry::subscriber(format, level, std::io::stderr, ansi));
}

/// Installs the Prometheus recorder for the process and serves it on `addr`.
async fn start_metrics(
    addr: std::net::SocketAddr,
    first_request_timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let endpoint = metrics_endpoint::install(addr)
        .await
        .context("could not start the metrics endpoint")?;
    tracing::info!(addr = %endpoint.local_addr, "metrics listening");
    tokio::spawn(endpoint.serve(first_request_timeout));
    Ok(())
}

/// `token-authority edge`: the gateway sidecar, until SIGINT or SIGTERM.
async fn run_edge(settings: EdgeSettings) -> anyhow::Result<()> {
    init_logs(settings.log_format, &settings.log_level);
    if let OptionalAddr::At(addr) = settings.metrics_addr {
        // Before the verifier is built: its handles register with the recorder then.
        start_metrics(addr, std::time::Duration::from_secs(10)).await?;
        token_authority::gateway::metrics::describe();
    }
    let edge = Edge::build(&settings)
        .await
        .context("the edge could not start")?;
    tracing::info!(addr = %edge.forward_auth_addr, "forward-auth listening");
    if let Some(addr) = edge.ext_authz_addr {
        tracing::info!(%addr, "ext_authz listening");
    }
    edge.run_until_stopped(shutdown_signal()).await;
    Ok(())
}

/// Shows the bootstrap token once: in a file only its owner can read, or on stdout.
/// Names the admin console beside it, where the token signs in.
fn hand_out_bootstrap_token(
    token: &TokenSecret,
    file: Option<&Path>,
    console: Option<String>,
) -> anyhow::Result<()> {
    match file {
        Some(path) => {
            token_authority::private_file::write(path, token.expose()).with_context(|| {
                format!("could not write the bootstrap token to {}", path.display())
            })?;
            println!(
                "Bootstrap token written to {} (shown only this once).",
                path.display()
            );
        }
        None => {
            println!("================================================================");
            println!("Bootstrap owner token (shown only this once; keep it safe):");
            println!();
            println!("    {}", token.expose());
            println!();
            println!("Use it as `authorization: Bearer <token>` to create other tokens.");
            println!("================================================================");
        }
    }
    if let Some(url) = console {
        println!("Admin console: {url} (paste the token there to sign in).");
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
