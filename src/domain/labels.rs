//! Labels: free-form key/value pairs callers attach to tokens for their own bookkeeping.

use std::collections::BTreeMap;

use super::ValidationError;

const MAX_LABELS: usize = 64;
const MAX_KEY_LEN: usize = 63;
const MAX_VALUE_LEN: usize = 256;

/// At most 64 labels; keys are 1 to 63 characters of lowercase letters, digits and `_ - .`
/// starting with a letter; values are up to 256 characters without control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
        field: &str,
    ) -> Result<Self, ValidationError> {
        let mut labels = BTreeMap::new();
        for (key, value) in pairs {
            let key_ok = !key.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
            if !key_ok {
                return Err(ValidationError::new(
                    field,
                    "keys must be 1 to 63 lowercase letters, digits and `_ - .`, starting with a letter",
                ));
            }
            if value.chars().count() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    format!("{field}[{key}]"),
                    "values must be at most 256 characters without control characters",
                ));
            }
            labels.insert(key.clone(), value.clone());
        }
        if labels.len() > MAX_LABELS {
            return Err(ValidationError::new(field, "at most 64 labels"));
        }
        Ok(Self(labels))
    }

    pub fn from_trusted(labels: BTreeMap<String, String>) -> Self {
        Self(labels)
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Labels, ValidationError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Labels::parse(&map, "labels")
    }

    #[test]
    fn ordinary_labels_parse() {
        let labels = parse(&[("team", "payments"), ("env", ""), ("cost-center.id", "42")]).unwrap();
        assert_eq!(labels.as_map().len(), 3);
    }

    #[test]
    fn bad_keys_are_rejected() {
        for key in ["", "Team", "1x", "a b", &"k".repeat(64)] {
            assert!(parse(&[(key, "v")]).is_err(), "{key:?} accepted");
        }
    }

    #[test]
    fn oversized_values_and_counts_are_rejected() {
        assert!(parse(&[("k", &"v".repeat(257))]).is_err());
        assert!(parse(&[("k", "a\tb")]).is_err());
        let keys: Vec<String> = (0..65).map(|i| format!("k{i}")).collect();
        let many: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
        assert!(parse(&many).is_err());
    }
}
