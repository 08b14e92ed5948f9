//! The error every parse-don't-validate constructor of the domain returns.

/// Input that does not meet a rule of the domain. The message names the field and the rule,
/// never the offending value when that value could be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The field at fault, as the API names it (`name`, `labels`, `scopes[2]`, …).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The most characters of an input an error message quotes.
const EXCERPT_CHARS: usize = 40;

/// A short, escaped excerpt of `input` for an error message: at most 40 characters, control
/// and non-ASCII characters escaped, `…` when cut. Errors quote input only through this, so
/// that no request can make its answer large (or hold what it sent) by sending more.
pub fn excerpt(input: &str) -> String {
    let mut quoted: String = input
        .chars()
        .take(EXCERPT_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if input.chars().nth(EXCERPT_CHARS).is_some() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("name"), "name");
        assert_eq!(excerpt("a\nb\u{7}"), "a\\nb\\u{7}");
        let long = "x".repeat(200_000);
        assert_eq!(excerpt(&long), format!("{}…", "x".repeat(40)));
        // Escapes never split: 40 characters, each escaped whole.
        assert!(excerpt(&"é".repeat(100)).ends_with("\\u{e9}…"));
    }
}
