//! Listings: one page, or every page with `--all` (showing progress on a terminal).

use std::future::Future;
use std::io::IsTerminal;

use super::CliError;

/// Calls `fetch` with a page token (empty first) until the last page, or once without
/// `all`; `fetch` answers a page's items and the next page token. `what` names the items in
/// the progress line.
pub async fn collect<T, F, Fut>(what: &str, all: bool, mut fetch: F) -> Result<Vec<T>, CliError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let progress = all && std::io::stderr().is_terminal();
    let mut items = Vec::new();
    let mut page_token = String::new();
    loop {
        let (page, next) = fetch(page_token).await?;
        items.extend(page);
        if progress {
            eprint!("\rfetched {} {what}…", items.len());
        }
        if !all || next.is_empty() {
            break;
        }
        page_token = next;
    }
    if progress {
        eprintln!();
    }
    Ok(items)
}
