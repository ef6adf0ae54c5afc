//! Checks a user's compose file before anything is deployed from it: it must parse, have
//! services, and every service must say how it gets its image (`image` or `build`).

use crate::BuildError;
use serde_norway::Value;

/// Parses `text` (the file `file`) and returns its service names, sorted.
pub fn check_compose_file(text: &str, file: &str) -> Result<Vec<String>, BuildError> {
    let bad = |message: String| BuildError::Source(format!("{file}: {message}"));
    let doc: Value =
        serde_norway::from_str(text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let services = doc
        .get("services")
        .and_then(Value::as_mapping)
        .ok_or_else(|| bad("has no services mapping".into()))?;
    if services.is_empty() {
        return Err(bad("has no services".into()));
    }
    let mut names = Vec::new();
    for (name, service) in services {
        let name = name
            .as_str()
            .ok_or_else(|| bad("a service name is not a string".into()))?;
        let has = |key: &str| service.get(key).is_some_and(|v| !v.is_null());
        if !has("image") && !has("build") {
            return Err(bad(format!(
                "service {name:?} has neither an image nor a build section; give it one"
            )));
        }
        if let Some(context) = service.get("build").and_then(|b| {
            b.as_str()
                .or_else(|| b.get("context").and_then(Value::as_str))
        }) {
            capstan_core::build_spec::check_relative_path(&format!("{name}.build"), context)
                .map_err(|e| bad(e.to_string()))?;
        }
        names.push(name.to_string());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_services_and_names_the_one_without_image_or_build() {
        let ok = "services:\n  web:\n    build: .\n  cache:\n    image: redis:7\n";
        assert_eq!(
            check_compose_file(ok, "compose.yaml").unwrap(),
            vec!["cache".to_string(), "web".to_string()]
        );
        let err = check_compose_file(
            "services:\n  web:\n    image: x\n  worker:\n    command: run\n",
            "compose.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("compose.yaml") && err.contains("\"worker\""),
            "{err}"
        );
        for (text, expect) in [
            ("services: [\n", "not valid YAML"),
            ("version: '3'\n", "no services"),
            ("services: {}\n", "no services"),
            (
                "services:\n  web:\n    build:\n      context: ../../etc\n",
                "web.build",
            ),
        ] {
            let err = check_compose_file(text, "compose.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{text}: {err}");
        }
    }
}
