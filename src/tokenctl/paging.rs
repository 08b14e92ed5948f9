//! Listings: one page, or every page with `--all` (showing progress on a terminal), and
//! how a listing is printed: a table, or one JSON object `{"items": […],
//! "next_page_token": "…"}`, the shape every list command shares.

use std::future::Future;
use std::io::IsTerminal;

use serde_json::Value;

use super::CliError;
use super::args::{OutputFormat, Pages};
use super::output::{Table, print_json};

/// What a list command fetched: its items, and the token of the page after them (empty
/// after the last page, and always after `--all`).
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

impl<T> Listing<T> {
    /// Prints the listing as a table of `columns` (one `row` per item), or as one JSON
    /// object of `json` items; a table says on stderr when more pages remain.
    pub fn print(
        &self,
        output: OutputFormat,
        columns: &[&str],
        row: impl Fn(&T) -> Vec<String>,
        json: impl Fn(&T) -> Value,
    ) -> Result<(), CliError> {
        match output {
            OutputFormat::Json => print_json(&serde_json::json!({
                "items": self.items.iter().map(json).collect::<Vec<_>>(),
                "next_page_token": self.next_page_token,
            })),
            OutputFormat::Table => {
                let mut table = Table::new(columns);
                self.items.iter().for_each(|item| table.row(row(item)));
                table.print()?;
                if !self.next_page_token.is_empty() {
                    eprintln!("(more on the next pages: add --all to fetch them)");
                }
                Ok(())
            }
        }
    }
}

/// Calls `fetch` with a page token (`--page-token`, else empty, first) until the last page,
/// or once without `--all`; `fetch` answers a page's items and the next page token. `what`
/// names the items in the progress line.
pub async fn collect<T, F, Fut>(
    what: &str,
    pages: &Pages,
    mut fetch: F,
) -> Result<Listing<T>, CliError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let all = pages.all;
    let progress = all && std::io::stderr().is_terminal();
    let mut items = Vec::new();
    let mut page_token = pages.page_token.clone().unwrap_or_default();
    loop {
        let (page, next) = fetch(page_token).await?;
        items.extend(page);
        if progress {
            eprint!("\rfetched {} {what}…", items.len());
        }
        page_token = next;
        if !all || page_token.is_empty() {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    Ok(Listing {
        items,
        next_page_token: page_token,
    })
}
