//! Identifiers of accounts, principals and tokens: a type prefix and 22 random base62
//! characters (about 131 bits), so ids are unguessable, self-describing and safe to log.

use std::fmt;

use super::{ValidationError, random::is_base62, random::random_base62};

const ID_RANDOM_LEN: usize = 22;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this type starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_base62(ID_RANDOM_LEN)))
            }

            /// Parses an id that a caller sent; `field` names the request field for the error.
            pub fn parse(value: &str, field: &str) -> Result<Self, ValidationError> {
                let random = value.strip_prefix($prefix).ok_or_else(|| {
                    ValidationError::new(field, concat!("must be an id starting with `", $prefix, "`"))
                })?;
                if random.len() != ID_RANDOM_LEN || !is_base62(random) {
                    return Err(ValidationError::new(field, "is not a well-formed id"));
                }
                Ok(Self(value.to_owned()))
            }

            /// Wraps an id read back from storage, where it was validated on the way in.
            pub fn from_trusted(value: String) -> Self {
                Self(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Identifies an account (a tenant): `acc_…`.
    AccountId,
    "acc_"
);
id_type!(
    /// Identifies a principal (a user or service account): `prn_…`.
    PrincipalId,
    "prn_"
);
id_type!(
    /// Identifies a token. Not secret: it is safe to show, log and put in audit events.
    TokenId,
    "tok_"
);
id_type!(
    /// Identifies one ReportLeakedTokens call, `lrp_…`: the reporter's audit record and every
    /// revoke it caused carry it, so an operator can join them across accounts.
    LeakReportId,
    "lrp_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = TokenId::generate();
        assert_eq!(TokenId::parse(id.as_str(), "id").unwrap(), id);
        assert!(id.as_str().starts_with("tok_"));
    }

    #[test]
    fn ids_of_another_type_are_rejected() {
        let id = AccountId::generate();
        let err = TokenId::parse(id.as_str(), "id").unwrap_err();
        assert_eq!(err.field, "id");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "tok_",
            "tok_short",
            "tok_!!!!!!!!!!!!!!!!!!!!!!",
            "TOK_abcdefghijklmnopqrstuv",
        ] {
            assert!(TokenId::parse(bad, "id").is_err(), "{bad:?} accepted");
        }
        let too_long = format!("{}x", TokenId::generate());
        assert!(TokenId::parse(&too_long, "id").is_err());
    }
}
