//! Small helpers to build requests and check answers: expected status codes, update masks,
//! verification codes.

use tonic::{Code, Status};

use token_authority::proto;

/// Asserts that a call failed with `code`, and returns the status for further checks.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got OK: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// An update mask naming one field.
pub fn mask(path: &str) -> Option<prost_types::FieldMask> {
    masks(&[path])
}

/// An update mask naming `paths`.
pub fn masks(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// The code of a verification answer.
pub fn code_of(response: &proto::VerifyTokenResponse) -> proto::VerificationCode {
    proto::VerificationCode::try_from(response.code).expect("known code")
}
