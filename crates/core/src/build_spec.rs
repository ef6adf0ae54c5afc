//! How an app's source becomes an image: the build type (or automatic detection), the
//! monorepo base directory, Dockerfile path and stage, the static-site settings, and
//! build arguments.

use crate::validate::{check_env_key, check_image_ref, check_no_control};
use crate::ValidationError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::validate::check_relative_path;

/// The build types Capstan knows. `Auto` detects, in this order: a Dockerfile, a compose
/// file, a nixpacks provider, a static site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildKind {
    #[default]
    Auto,
    Dockerfile,
    Compose,
    Nixpacks,
    Static,
}

impl BuildKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildKind::Auto => "auto",
            BuildKind::Dockerfile => "dockerfile",
            BuildKind::Compose => "compose",
            BuildKind::Nixpacks => "nixpacks",
            BuildKind::Static => "static",
        }
    }
}

/// The image a static site is served from when none is configured: busybox's `httpd`.
pub const DEFAULT_STATIC_IMAGE: &str = "busybox:stable";

/// Build settings. Paths are relative: `base_dir` to the source root, everything else to
/// `base_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BuildSpec {
    #[serde(rename = "type")]
    pub kind: BuildKind,
    /// The directory (inside the source) that is the build context: for monorepos.
    pub base_dir: String,
    /// The Dockerfile, relative to `base_dir`.
    pub dockerfile: String,
    /// A Dockerfile stage to build (`--target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The compose file for the compose build type, relative to `base_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose_file: Option<String>,
    /// The compose service that gets the app's domains, port, health check and replicas;
    /// when unset, the one service with a `build`, else `web` or `app`, else the only one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose_service: Option<String>,
    /// The directory a static site is served from, relative to `base_dir`; when unset the
    /// first of `.`, `dist`, `build`, `public`, `_site`, `out` holding an `index.html`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_dir: Option<String>,
    /// The image a static site is copied into; it must provide busybox's `httpd`.
    pub static_image: String,
    /// Build arguments (`ARG`s, and nixpacks' environment). Not secret: they stay in the
    /// image's history. Secrets marked for build time are added to these when building.
    pub args: BTreeMap<String, String>,
}

impl Default for BuildSpec {
    fn default() -> Self {
        Self {
            kind: BuildKind::Auto,
            base_dir: ".".into(),
            dockerfile: "Dockerfile".into(),
            target: None,
            compose_file: None,
            compose_service: None,
            publish_dir: None,
            static_image: DEFAULT_STATIC_IMAGE.into(),
            args: BTreeMap::new(),
        }
    }
}

impl BuildSpec {
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_relative_path("build.base_dir", &self.base_dir)?;
        check_relative_path("build.dockerfile", &self.dockerfile)?;
        if let Some(target) = &self.target {
            let ok = !target.is_empty()
                && target.len() <= 128
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(ValidationError::new(
                    "build.target",
                    format!("{target:?} is not a Dockerfile stage name"),
                ));
            }
        }
        if let Some(file) = &self.compose_file {
            check_relative_path("build.compose_file", file)?;
        }
        if let Some(service) = &self.compose_service {
            crate::AppName::parse(service)
                .map_err(|e| ValidationError::new("build.compose_service", e.to_string()))?;
        }
        if let Some(dir) = &self.publish_dir {
            check_relative_path("build.publish_dir", dir)?;
        }
        check_image_ref(&self.static_image)
            .map_err(|e| ValidationError::new("build.static_image", e.reason))?;
        for (key, value) in &self.args {
            check_env_key(key).map_err(|e| ValidationError::new("build.args", e.reason))?;
            check_no_control("build.args", value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<BuildSpec, String> {
        let spec: BuildSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    #[test]
    fn defaults_detect_from_the_root() {
        let spec = parse("{}").unwrap();
        assert_eq!(spec.kind, BuildKind::Auto);
        assert_eq!(spec.base_dir, ".");
        assert_eq!(spec.dockerfile, "Dockerfile");
        assert_eq!(spec.static_image, DEFAULT_STATIC_IMAGE);
    }

    #[test]
    fn refuses_paths_out_of_the_source_and_odd_values() {
        for (json, field) in [
            (r#"{"base_dir":"../x"}"#, "build.base_dir"),
            (r#"{"dockerfile":"../../etc/passwd"}"#, "build.dockerfile"),
            (r#"{"publish_dir":"/var/www"}"#, "build.publish_dir"),
            (r#"{"compose_file":"a/../../b.yml"}"#, "build.compose_file"),
            (r#"{"target":"a b"}"#, "build.target"),
            (r#"{"static_image":"-x"}"#, "build.static_image"),
            (r#"{"args":{"A-B":"1"}}"#, "build.args"),
            (r#"{"type":"buildpack"}"#, "unknown variant"),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
