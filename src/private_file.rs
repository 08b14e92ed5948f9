//! Writing a secret to a file only its owner can read.

use std::io::Write;
use std::path::Path;

/// Writes `contents` and a newline to `path`, created (or truncated) with mode 0600.
pub fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{contents}")?;
    Ok(())
}
