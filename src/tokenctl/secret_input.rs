//! Reading secrets tokenctl is given: from a file or standard input, never from the command
//! line, where every local user sees them in `ps` and shell history keeps them (as
//! `gh auth login --with-token` does).

use std::io::{IsTerminal, Read};
use std::path::Path;

use super::CliError;

/// More than any token: what is read stops here, so a wrong file is not slurped whole.
const MAX_SECRET_BYTES: u64 = 4096;

/// More than any leak report needs (10,000 secrets): the same guard for many secrets.
const MAX_SECRETS_BYTES: u64 = 1 << 20;

/// Where a secret comes from: a file, or standard input for `-`.
pub fn read(source: &Path, what: &str) -> Result<String, CliError> {
    let text = read_text(source, what, MAX_SECRET_BYTES, Terminal::OneLine)?;
    let secret = text.lines().next().unwrap_or_default().trim();
    if secret.is_empty() {
        return Err(CliError::Usage(format!("{what} is empty")));
    }
    Ok(secret.to_owned())
}

/// Many secrets, one per line (surrounding whitespace and blank lines ignored), from a file
/// or standard input for `-`.
pub fn read_lines(source: &Path, what: &str) -> Result<Vec<String>, CliError> {
    // One byte more than allowed tells a cut input from a whole one: a cut one would
    // silently leave the secrets past the cut live.
    let text = read_text(source, what, MAX_SECRETS_BYTES + 1, Terminal::UntilEnd)?;
    if text.len() as u64 > MAX_SECRETS_BYTES {
        return Err(CliError::Usage(format!(
            "{what}: more than {MAX_SECRETS_BYTES} bytes; split them into several runs"
        )));
    }
    let secrets: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if secrets.is_empty() {
        return Err(CliError::Usage(format!("{what}: none given")));
    }
    Ok(secrets)
}

/// How much to read when standard input is a terminal, which never ends by itself.
enum Terminal {
    OneLine,
    /// Until the user ends input (Ctrl-D).
    UntilEnd,
}

/// At most `limit` bytes of `source`.
fn read_text(
    source: &Path,
    what: &str,
    limit: u64,
    terminal: Terminal,
) -> Result<String, CliError> {
    let mut text = String::new();
    let outcome = if source == Path::new("-") {
        let stdin = std::io::stdin();
        match (stdin.is_terminal(), terminal) {
            (true, Terminal::OneLine) => {
                eprintln!("Paste {what}, then press Enter:");
                stdin.read_line(&mut text).map(drop)
            }
            (is_terminal, _) => {
                if is_terminal {
                    eprintln!("Paste {what}, one per line, then press Ctrl-D:");
                }
                stdin.take(limit).read_to_string(&mut text).map(drop)
            }
        }
    } else {
        std::fs::File::open(source)
            .and_then(|file| file.take(limit).read_to_string(&mut text).map(drop))
    };
    // The error names neither the path nor the content: a secret pasted where a path
    // belongs must not be printed back.
    outcome.map_err(|e| CliError::Usage(format!("cannot read {what}: {}", e.kind())))?;
    Ok(text)
}

/// Refuses what looks like a secret given where a file name belongs, without echoing it.
pub fn ensure_not_a_secret(source: &Path, what: &str) -> Result<(), CliError> {
    if source.to_str().is_some_and(|s| s.starts_with("tka_")) {
        return Err(CliError::Usage(format!(
            "{what} must not be given on the command line (`ps` and shell history would show \
             it): pass it on standard input, or name a file holding it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_its_first_line_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "  tka_abc \nsecond line\n").unwrap();
        assert_eq!(read(&path, "the token").unwrap(), "tka_abc");
    }

    #[test]
    fn many_secrets_are_the_non_blank_lines_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "tka_a\n\n  tka_b  \r\n\t\n").unwrap();
        assert_eq!(
            read_lines(&path, "the secrets").unwrap(),
            ["tka_a", "tka_b"]
        );
        std::fs::write(&path, "tka_a\n".repeat(200_000)).unwrap();
        assert!(matches!(
            read_lines(&path, "the secrets"),
            Err(CliError::Usage(_))
        ));
        std::fs::write(&path, " \n\n").unwrap();
        assert!(matches!(
            read_lines(&path, "the secrets"),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn empty_and_missing_files_are_usage_errors_that_name_neither_path_nor_content() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(read(&empty, "the token"), Err(CliError::Usage(_))));
        let missing = dir.path().join("tka_secretlooking");
        let error = read(&missing, "the token").unwrap_err().to_string();
        assert!(!error.contains("tka_"), "{error}");
    }

    #[test]
    fn secrets_in_place_of_a_file_name_are_refused_unechoed() {
        let error = ensure_not_a_secret(Path::new("tka_0123456789"), "the token")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("0123456789"), "{error}");
        assert!(ensure_not_a_secret(Path::new("-"), "the token").is_ok());
        assert!(ensure_not_a_secret(Path::new("./token.txt"), "the token").is_ok());
    }
}
