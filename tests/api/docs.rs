//! The docs run as tests, so that they cannot drift from what the programs do.
//!
//! - Every `console` block of README.md (the tour) and docs/tokenctl.md (the tokenctl
//!   session) is run by `trycmd` against a fresh real server: each file is one session, its
//!   commands run in order in a scratch directory holding the bootstrap token as
//!   `owner.token`, with `TOKENCTL_ENDPOINT` and `TOKENCTL_TOKEN_FILE` set as the docs tell
//!   the reader to. Outputs match as written, `[..]` standing for ids, secrets and times.
//!   `TRYCMD=overwrite cargo test --test api docs` writes the actual outputs back into the
//!   docs (then put the wildcards back where the values vary).
//! - docs/configuration.md names every option and environment variable of the server's
//!   `--help`, so adding a flag without documenting it fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::TestApp;

const TOKENCTL: &str = env!("CARGO_BIN_EXE_tokenctl");
const SERVER: &str = env!("CARGO_BIN_EXE_token-authority");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_runs_as_written() {
    run_session("README.md").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokenctl_session_runs_as_written() {
    run_session("docs/tokenctl.md").await;
}

/// Runs the `console` blocks of `doc` (relative to the repository) against a new server.
async fn run_session(doc: &str) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(doc);
    let commands = session_commands(&std::fs::read_to_string(&source).expect("the doc"));
    // trycmd skips a program it was not given (and runs one it finds in target/): every
    // step must be tokenctl, and there must be steps, or the test would check nothing.
    assert!(commands.len() >= 5, "{doc}: too few commands: {commands:?}");
    for command in &commands {
        assert!(
            command.starts_with("tokenctl "),
            "{doc}: only tokenctl runs in a console block: {command}"
        );
    }
    let app = TestApp::spawn().await;
    let scratch = tempfile::tempdir().expect("scratch directory");
    let name = source.file_name().expect("a file name");
    let copy = scratch.path().join(name);
    std::fs::copy(&source, &copy).expect("copy of the doc");
    // trycmd runs a session in `<name>.in/` when it exists: the reader's scratch directory.
    let workdir = copy.with_extension("in");
    std::fs::create_dir(&workdir).expect("work directory");
    std::fs::write(workdir.join("owner.token"), &app.bootstrap_token).expect("owner.token");
    let endpoint = app.channel_uri();
    let case = copy.clone();
    tokio::task::spawn_blocking(move || {
        trycmd::TestCases::new()
            .register_bin("tokenctl", PathBuf::from(TOKENCTL))
            .env("TOKENCTL_ENDPOINT", endpoint)
            .env("TOKENCTL_TOKEN_FILE", "owner.token")
            .case(&case)
            .run();
    })
    .await
    .expect("the documented session runs as written");
    if std::env::var("TRYCMD").is_ok_and(|mode| mode == "overwrite") {
        std::fs::copy(&copy, &source).expect("outputs written back into the doc");
    }
}

/// The commands (`$ ` lines) of a page's `console` blocks.
fn session_commands(page: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_console = false;
    for line in page.lines() {
        if let Some(info) = line.strip_prefix("```") {
            in_console = !in_console && info.trim().split(',').next() == Some("console");
        } else if in_console && let Some(command) = line.strip_prefix("$ ") {
            commands.push(command.to_owned());
        }
    }
    commands
}

#[test]
fn every_server_option_is_in_the_configuration_page_with_its_default() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .expect("docs/configuration.md");
    // The edge's options have a section of their own (some share the server's names).
    let (server_part, edge_part) = page
        .split_once("\n## The edge\n")
        .expect("docs/configuration.md has a section `## The edge`");
    let global = options(&help_of(&["--help"]));
    let mut wrong = undocumented(&global, &first_cells(server_part), "");
    let edge = options(&help_of(&["edge", "--help"]));
    wrong.extend(undocumented(&edge, &first_cells(edge_part), "edge "));
    // A command's own options (`backup --to`) are named in the command's row.
    let cells = first_cells(server_part);
    for command in ["migrate", "backup"] {
        for option in options(&help_of(&[command, "--help"])) {
            if global.iter().any(|g| g.flag == option.flag) {
                continue;
            }
            let named = cells.iter().any(|(cell, _)| {
                cell.contains(&format!("token-authority {command}"))
                    && cell.contains(&format!("{} ", option.flag))
            });
            if !named {
                wrong.push(format!(
                    "{command} {}: not in the command's row",
                    option.flag
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "docs/configuration.md: {wrong:#?}");
}

/// The first cell of every table row (the flags a row documents), with the whole row.
fn first_cells(page: &str) -> Vec<(&str, &str)> {
    page.lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.splitn(2, '|');
            Some((cells.next()?, line))
        })
        .collect()
}

/// What is wrong with how `rows` document `options`: an option without a row of its own,
/// or whose row lacks its variable or its default.
fn undocumented(options: &[HelpOption], rows: &[(&str, &str)], command: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for option in options {
        let documented = rows
            .iter()
            .find(|(cell, _)| cell.contains(&format!("`{}`", option.flag)));
        let Some((_, row)) = documented else {
            wrong.push(format!("{command}{}: no row of its own", option.flag));
            continue;
        };
        if let Some(variable) = &option.env
            && !row.contains(&format!("`{variable}`"))
        {
            wrong.push(format!(
                "{command}{}: its variable {variable} is not in its row",
                option.flag
            ));
        }
        if let Some(default) = &option.default
            && !row.contains(&format!("`{default}`"))
        {
            wrong.push(format!(
                "{command}{}: its default {default} is not in its row",
                option.flag
            ));
        }
    }
    wrong
}

/// What the server's `--help` (of `args`) prints.
fn help_of(args: &[&str]) -> String {
    let help = Command::new(SERVER)
        .args(args)
        .output()
        .expect("the server prints its help");
    assert!(help.status.success());
    String::from_utf8_lossy(&help.stdout).into_owned()
}

/// An option as a clap help text lists it.
struct HelpOption {
    flag: String,
    env: Option<String>,
    default: Option<String>,
}

/// The options (not `--help` and `--version`) of a clap help text, with their environment
/// variable and default.
fn options(help: &str) -> Vec<HelpOption> {
    let mut options: Vec<HelpOption> = Vec::new();
    for line in help.lines().map(str::trim_start) {
        let long = line.strip_prefix("--").or_else(|| {
            line.strip_prefix('-')
                .and_then(|short| short.split_once(", --").map(|(_, long)| long))
        });
        if let Some(rest) = long {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            options.push(HelpOption {
                flag: format!("--{name}"),
                env: None,
                default: None,
            });
            continue;
        }
        let Some(option) = options.last_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("[env: ") {
            option.env = rest.split_once('=').map(|(name, _)| name.to_owned());
        } else if let Some(rest) = line.strip_prefix("[default: ") {
            option.default = rest.strip_suffix(']').map(str::to_owned);
        }
    }
    options.retain(|option| option.flag != "--help" && option.flag != "--version");
    options
}
