//! The storage format of app settings (an app's own, and the ones each release ran):
//! a versioned envelope, `{"format": N, "settings": {...}}`, read leniently. The API
//! refuses unknown fields by name; stored settings must never become unreadable because
//! a field was added, renamed or dropped since they were written, or a rollback to an
//! old release would fail. Format 1 is the bare settings object written before the
//! envelope existed.

use crate::StoreError;
use capstan_core::AppSpec;
use serde_json::{json, Value};

/// The format written now.
pub const FORMAT: u64 = 2;

/// How many fields a decode may drop before it gives up.
const MAX_DROPPED: usize = 32;

/// Settings as stored.
pub fn encode(spec: &AppSpec) -> String {
    json!({ "format": FORMAT, "settings": spec }).to_string()
}

/// Reads stored settings of any format up to the current one.
pub fn decode(text: &str) -> Result<AppSpec, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt(format!("stored settings: {why}"));
    let value: Value = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let (format, mut settings) = match value {
        Value::Object(mut object) if object.contains_key("format") => {
            let format = object
                .get("format")
                .and_then(Value::as_u64)
                .ok_or_else(|| corrupt("format is not a number".into()))?;
            let settings = object.remove("settings").unwrap_or(Value::Null);
            (format, settings)
        }
        bare => (1, bare),
    };
    if format > FORMAT {
        return Err(corrupt(format!(
            "written in format {format} by a newer Capstan; this one reads up to {FORMAT}"
        )));
    }
    migrate(format, &mut settings);
    // Fields this version no longer knows are dropped (their default applies instead);
    // fields it added since take their defaults.
    for _ in 0..MAX_DROPPED {
        match serde_json::from_value::<AppSpec>(settings.clone()) {
            Ok(spec) => return Ok(spec),
            Err(err) => {
                let message = err.to_string();
                let Some(field) = unknown_field(&message) else {
                    return Err(corrupt(message));
                };
                tracing::warn!(
                    field,
                    "stored settings hold a field this version does not know; ignored"
                );
                if !drop_field(&mut settings, &field) {
                    return Err(corrupt(message));
                }
            }
        }
    }
    Err(corrupt("too many unknown fields".into()))
}

/// Renames and reshapes between formats go here, oldest first. Formats 1 and 2 hold the
/// same settings object (2 only added the envelope).
fn migrate(_from: u64, _settings: &mut Value) {}

/// The field named by serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Removes every key `field` from the objects in `value`; whether any was there.
fn drop_field(value: &mut Value, field: &str) -> bool {
    match value {
        Value::Object(object) => {
            let mut dropped = object.remove(field).is_some();
            for child in object.values_mut() {
                dropped |= drop_field(child, field);
            }
            dropped
        }
        Value::Array(items) => {
            let mut dropped = false;
            for item in items {
                dropped |= drop_field(item, field);
            }
            dropped
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_the_current_format() {
        let spec: AppSpec =
            serde_json::from_str(r#"{"source":{"image":"x:1"},"port":3000}"#).unwrap();
        let text = encode(&spec);
        assert!(text.contains("\"format\":2"), "{text}");
        assert_eq!(decode(&text).unwrap(), spec);
    }

    #[test]
    fn reads_the_previous_format_with_dropped_and_missing_fields() {
        // Written before the envelope, by a version with a field this one dropped
        // (`legacy_probe`, also nested) and without fields added since (tls, replicas,
        // drain_secs, ...).
        let old = r#"{"source":{"git":{"url":"https://x/r.git","ref":"v1"}},"port":5000,
            "domains":["a.test"],"legacy_probe":true,
            "health":{"path":"/up","interval_secs":1.0,"timeout_secs":2.0,"retries":3,
                      "start_period_secs":0.0,"deadline_secs":60,"legacy_probe":"tcp"},
            "env":{"A":"1"},"volumes":[],"limits":{},"build":{"type":"auto"}}"#;
        let spec = decode(old).unwrap();
        assert_eq!(spec.port, Some(5000));
        assert_eq!(spec.health.path, "/up");
        assert_eq!(spec.domains, vec!["a.test".to_string()]);
        assert_eq!(spec.replicas, 1);
        assert!(!spec.tls);
        assert_eq!(spec.servers, vec![capstan_core::ServerName::local()]);
    }

    #[test]
    fn a_newer_format_or_garbage_is_refused_clearly() {
        let err = decode(r#"{"format":99,"settings":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("newer Capstan"), "{err}");
        assert!(decode("not json").is_err());
    }
}
