//! Reading secrets tokenctl is given: from a file or standard input, never from the command
//! line, where every local user sees them in `ps` and shell history keeps them (as
//! `gh auth login --with-token` does).

use std::io::{IsTerminal, Read};
use std::path::Path;

use super::CliError;

/// More than any token: what is read stops here, so a wrong file is not slurped whole.
const MAX_SECRET_BYTES: u64 = 4096;

/// Where a secret comes from: a file, or standard input for `-`.
pub fn read(source: &Path, what: &str) -> Result<String, CliError> {
    let mut text = String::new();
    let outcome = if source == Path::new("-") {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("Paste {what}, then press Enter:");
            // One line from a terminal: it would never see end of input.
            stdin.read_line(&mut text).map(drop)
        } else {
            stdin
                .take(MAX_SECRET_BYTES)
                .read_to_string(&mut text)
                .map(drop)
        }
    } else {
        std::fs::File::open(source).and_then(|file| {
            file.take(MAX_SECRET_BYTES)
                .read_to_string(&mut text)
                .map(drop)
        })
    };
    // The error names neither the path nor the content: a secret pasted where a path
    // belongs must not be printed back.
    outcome.map_err(|e| CliError::Usage(format!("cannot read {what}: {}", e.kind())))?;
    let secret = text.lines().next().unwrap_or_default().trim();
    if secret.is_empty() {
        return Err(CliError::Usage(format!("{what} is empty")));
    }
    Ok(secret.to_owned())
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
