//! The VerifyToken counter, by verification code and by how the answer was had: a table of
//! handles registered once, so that counting on the warm path is one atomic add.

use std::sync::OnceLock;

use metrics::Counter;

use super::VERIFICATIONS;
use crate::domain::VerificationCode;

/// How a verification was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyPath {
    /// From the verification cache.
    Cache,
    /// From a read of the database.
    Store,
    /// Without a look-up: the presented value was malformed.
    None,
    /// From the memory of hashes the database recently did not know (NOT_FOUND).
    Unknown,
}

impl VerifyPath {
    const ALL: [VerifyPath; 4] = [
        VerifyPath::Cache,
        VerifyPath::Store,
        VerifyPath::None,
        VerifyPath::Unknown,
    ];

    fn as_str(self) -> &'static str {
        match self {
            VerifyPath::Cache => "cache",
            VerifyPath::Store => "store",
            VerifyPath::None => "none",
            VerifyPath::Unknown => "unknown_cache",
        }
    }
}

const CODES: [VerificationCode; 10] = [
    VerificationCode::Valid,
    VerificationCode::Malformed,
    VerificationCode::NotFound,
    VerificationCode::Expired,
    VerificationCode::Revoked,
    VerificationCode::Disabled,
    VerificationCode::OwnerDisabled,
    VerificationCode::ApiAccessDisabled,
    VerificationCode::InsufficientScopes,
    VerificationCode::AddressNotAllowed,
];

/// The position of `code` in [`CODES`] (a match, so that a new code cannot be forgotten).
fn code_index(code: VerificationCode) -> usize {
    match code {
        VerificationCode::Valid => 0,
        VerificationCode::Malformed => 1,
        VerificationCode::NotFound => 2,
        VerificationCode::Expired => 3,
        VerificationCode::Revoked => 4,
        VerificationCode::Disabled => 5,
        VerificationCode::OwnerDisabled => 6,
        VerificationCode::ApiAccessDisabled => 7,
        VerificationCode::InsufficientScopes => 8,
        VerificationCode::AddressNotAllowed => 9,
    }
}

/// The label of a verification code: its protobuf enum value's name without the
/// `VERIFICATION_CODE_` prefix.
fn code_label(code: VerificationCode) -> &'static str {
    match code {
        VerificationCode::Valid => "VALID",
        VerificationCode::Malformed => "MALFORMED",
        VerificationCode::NotFound => "NOT_FOUND",
        VerificationCode::Expired => "EXPIRED",
        VerificationCode::Revoked => "REVOKED",
        VerificationCode::Disabled => "DISABLED",
        VerificationCode::OwnerDisabled => "OWNER_DISABLED",
        VerificationCode::ApiAccessDisabled => "API_ACCESS_DISABLED",
        VerificationCode::InsufficientScopes => "INSUFFICIENT_SCOPES",
        VerificationCode::AddressNotAllowed => "ADDRESS_NOT_ALLOWED",
    }
}

/// Counts one VerifyToken answer. On the warm path: a handle per (code, path), registered
/// once, so a count is one atomic add rather than a registry look-up.
pub fn record_verification(code: VerificationCode, path: VerifyPath) {
    static HANDLES: OnceLock<Vec<Counter>> = OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        CODES
            .iter()
            .flat_map(|code| {
                VerifyPath::ALL.iter().map(move |path| {
                    metrics::counter!(VERIFICATIONS, "code" => code_label(*code), "path" => path.as_str())
                })
            })
            .collect()
    });
    let index = code_index(code)
        .saturating_mul(VerifyPath::ALL.len())
        .saturating_add(path as usize);
    if let Some(counter) = handles.get(index) {
        counter.increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_paths_index_their_tables() {
        for (i, code) in CODES.iter().enumerate() {
            assert_eq!(code_index(*code), i);
        }
        for (i, path) in VerifyPath::ALL.iter().enumerate() {
            assert_eq!(*path as usize, i);
        }
    }

    #[test]
    fn every_code_has_a_distinct_label() {
        let mut labels: Vec<&str> = CODES.iter().map(|c| code_label(*c)).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CODES.len());
    }
}
