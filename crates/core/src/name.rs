//! App names: DNS labels, because they end up in container names, image tags and hostnames.

use crate::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A validated app name: 1–63 characters of `a-z`, `0-9` and `-`, not starting or ending
/// with `-` (an RFC 1123 DNS label, lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);

impl AppName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        check_dns_label("name", raw)?;
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks that `raw` is a lower-case DNS label; `field` names it in the error.
pub fn check_dns_label(field: &str, raw: &str) -> Result<(), ValidationError> {
    let err = |reason: &str| ValidationError::new(field, format!("{raw:?} {reason}"));
    if raw.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if raw.len() > 63 {
        return Err(err("is longer than 63 characters"));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(err(
            "may contain only lower-case letters, digits and '-' (a DNS label)",
        ));
    }
    if raw.starts_with('-') || raw.ends_with('-') {
        return Err(err("must not start or end with '-'"));
    }
    Ok(())
}

impl TryFrom<String> for AppName {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AppName> for String {
    fn from(value: AppName) -> Self {
        value.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "web", "my-app-2", &"x".repeat(63)] {
            assert!(AppName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        for bad in [
            "",
            "-a",
            "a-",
            "My",
            "a_b",
            "a.b",
            "a b",
            &"x".repeat(64),
            "ä",
        ] {
            let e = AppName::parse(bad).unwrap_err();
            assert_eq!(e.field, "name");
            assert!(!e.reason.is_empty());
        }
    }
}
