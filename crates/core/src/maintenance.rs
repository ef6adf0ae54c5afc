//! Maintenance mode of an app: what the proxy answers instead of the app while it is on
//! (a 503 page with a message and `Retry-After`), and the rules for those two settings.

use crate::validate::{check_len, check_no_control};
use crate::ValidationError;
use serde::{Deserialize, Serialize};

/// The message shown when none is given.
pub const DEFAULT_MESSAGE: &str = "This site is down for maintenance and will be back shortly.";
/// The `Retry-After` sent when none is given, in seconds.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 300;
/// The longest message the page shows, in bytes.
pub const MAX_MESSAGE: usize = 1000;
/// The longest `Retry-After`: one day.
pub const MAX_RETRY_AFTER_SECS: u32 = 86_400;

/// What the maintenance page says, as a request turns maintenance on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenancePage {
    /// The text of the page (plain text, at most 1000 bytes, no control characters).
    pub message: String,
    /// Seconds sent as `Retry-After` (1 to 86400).
    pub retry_after_secs: u32,
}

impl Default for MaintenancePage {
    fn default() -> Self {
        Self {
            message: DEFAULT_MESSAGE.to_string(),
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
        }
    }
}

impl MaintenancePage {
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_len("message", &self.message, MAX_MESSAGE)?;
        check_no_control("message", &self.message)?;
        if self.message.trim().is_empty() {
            return Err(ValidationError::new("message", "must not be empty"));
        }
        if !(1..=MAX_RETRY_AFTER_SECS).contains(&self.retry_after_secs) {
            return Err(ValidationError::new(
                "retry_after_secs",
                format!("must be between 1 and {MAX_RETRY_AFTER_SECS} seconds"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(MaintenancePage::default().validate().is_ok());
        let page = |message: &str, retry_after_secs| MaintenancePage {
            message: message.into(),
            retry_after_secs,
        };
        assert_eq!(page(" ", 5).validate().unwrap_err().field, "message");
        assert_eq!(page("a\nb", 5).validate().unwrap_err().field, "message");
        assert_eq!(
            page(&"x".repeat(MAX_MESSAGE + 1), 5)
                .validate()
                .unwrap_err()
                .field,
            "message"
        );
        assert_eq!(
            page("ok", 0).validate().unwrap_err().field,
            "retry_after_secs"
        );
        assert_eq!(
            page("ok", MAX_RETRY_AFTER_SECS + 1)
                .validate()
                .unwrap_err()
                .field,
            "retry_after_secs"
        );
        assert!(page("Back at 5 — <soon> & \"then\"", 60).validate().is_ok());
    }
}
