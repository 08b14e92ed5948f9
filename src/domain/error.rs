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
