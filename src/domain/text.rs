//! Validated free-text fields: names, descriptions, reasons, API versions.

use super::ValidationError;

/// Rejects control characters (newlines included): they break log lines and tables.
fn check_text(value: &str, field: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let chars = value.chars().count();
    if chars < min || chars > max {
        let problem = if min == 0 {
            format!("must be at most {max} characters")
        } else {
            format!("must be {min} to {max} characters")
        };
        return Err(ValidationError::new(field, problem));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, min = $min:expr, max = $max:expr, trim = $trim:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str, field: &str) -> Result<Self, ValidationError> {
                let value = if $trim { value.trim() } else { value };
                check_text(value, field, $min, $max)?;
                Ok(Self(value.to_owned()))
            }

            /// Wraps a value read back from storage, where it was validated on the way in.
            pub fn from_trusted(value: String) -> Self {
                Self(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_type!(
    /// A token's name: 1 to 200 characters, trimmed.
    TokenName, min = 1, max = 200, trim = true
);
text_type!(
    /// An account's or principal's display name: 1 to 200 characters, trimmed.
    DisplayName, min = 1, max = 200, trim = true
);
text_type!(
    /// A token's description: up to 1000 characters.
    Description, min = 0, max = 1000, trim = false
);
text_type!(
    /// Why a token was revoked: up to 1000 characters.
    RevokeReason, min = 0, max = 1000, trim = true
);
text_type!(
    /// The API version a token's integration targets: up to 64 characters.
    ApiVersion, min = 0, max = 64, trim = true
);
text_type!(
    /// Who found leaked secrets, for the record (e.g. `github-secret-scanning`): 1 to 100
    /// characters, trimmed.
    LeakSource, min = 1, max = 100, trim = true
);
text_type!(
    /// Where leaked secrets were found (a URL, for the record; not fetched): up to 2048
    /// characters, trimmed.
    LeakUrl, min = 0, max = 2048, trim = true
);

/// The most secrets one leak report may carry: a scanner with more sends several reports
/// (as tokenctl does).
pub const MAX_LEAKED_SECRETS: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            TokenName::parse("  ci deploy ", "name").unwrap().as_str(),
            "ci deploy"
        );
        assert!(TokenName::parse("", "name").is_err());
        assert!(TokenName::parse("   ", "name").is_err());
        assert!(TokenName::parse(&"x".repeat(200), "name").is_ok());
        assert!(TokenName::parse(&"x".repeat(201), "name").is_err());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(TokenName::parse(&"é".repeat(200), "name").is_ok());
    }

    #[test]
    fn control_characters_are_rejected() {
        let err = TokenName::parse("a\nb", "name").unwrap_err();
        assert_eq!(err.field, "name");
        assert!(Description::parse("line\u{0}", "description").is_err());
    }

    #[test]
    fn optional_texts_may_be_empty() {
        assert!(Description::parse("", "description").is_ok());
        assert!(ApiVersion::parse("", "api_version").is_ok());
        assert!(ApiVersion::parse(&"v".repeat(65), "api_version").is_err());
        assert!(RevokeReason::parse(&"r".repeat(1001), "reason").is_err());
    }

    #[test]
    fn a_leak_report_names_its_source_and_may_name_a_url() {
        assert!(LeakSource::parse(" ", "source").is_err());
        assert!(LeakSource::parse(&"s".repeat(101), "source").is_err());
        assert!(LeakUrl::parse("", "url").is_ok());
        assert!(LeakUrl::parse(&"u".repeat(2049), "url").is_err());
        assert!(LeakUrl::parse("https://example.com/a/b#L3", "url").is_ok());
        // A newline could forge a line in whatever displays the audit log.
        assert!(LeakUrl::parse("https://example.com/a\nforged", "url").is_err());
    }
}
