//! The per-repo `capstan.toml`: build and runtime settings versioned with the code, and how
//! they merge with the app's settings made through the API.
//!
//! Merge rule: a field the file sets wins over the app's setting (the file travels with
//! the commit, so a rollback brings its settings back), except `env`, whose entries are
//! defaults that the app's own variables override. Every field the file changed is
//! reported, so the deployment log says where each setting came from.

use crate::app::{AppSpec, HealthSpec, HookCommand, VolumeSpec};
use crate::build_spec::BuildKind;
use crate::ValidationError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The file name looked for in the build's base directory.
pub const REPO_CONFIG_FILE: &str = "capstan.toml";

/// `[build]` in `capstan.toml`: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoBuild {
    #[serde(rename = "type")]
    pub kind: Option<BuildKind>,
    /// Relative to the source root; the file itself is read from the app's base dir (the
    /// root unless the app sets one), so a root `capstan.toml` can point into a monorepo.
    pub base_dir: Option<String>,
    pub dockerfile: Option<String>,
    pub target: Option<String>,
    pub compose_file: Option<String>,
    pub compose_service: Option<String>,
    pub publish_dir: Option<String>,
    pub static_image: Option<String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

/// The whole file. Unknown keys are refused, naming the key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub build: Option<RepoBuild>,
    pub port: Option<u16>,
    pub replicas: Option<u32>,
    pub health: Option<HealthSpec>,
    pub pre_deploy: Option<HookCommand>,
    pub post_deploy: Option<HookCommand>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub volumes: Option<Vec<VolumeSpec>>,
}

/// A `capstan.toml` that cannot be used; the message names the file and the key or field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct RepoConfigError {
    pub file: String,
    pub message: String,
}

impl RepoConfig {
    /// Parses the file's text; `file` is how the file is named in errors.
    pub fn parse(text: &str, file: &str) -> Result<RepoConfig, RepoConfigError> {
        toml::from_str(text).map_err(|e| RepoConfigError {
            file: file.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Applies the file to the app's settings and validates the result. Returns the merged
    /// settings and a line for each field the file set.
    pub fn apply(
        &self,
        base: &AppSpec,
        file: &str,
    ) -> Result<(AppSpec, Vec<String>), RepoConfigError> {
        let mut spec = base.clone();
        let mut changed = Vec::new();
        // Each line shows the value, so the log says what the file set (secret values are
        // masked where the line is logged).
        let mut note =
            |field: &str, value: String| changed.push(format!("{field} = {value} (from {file})"));
        fn show<T: serde::Serialize>(value: &T) -> String {
            serde_json::to_string(value).unwrap_or_default()
        }
        // Spelled out whole (no `..`), so a field added to the file cannot be forgotten.
        let RepoConfig {
            build,
            port,
            replicas,
            health,
            pre_deploy,
            post_deploy,
            env,
            volumes,
        } = self;
        if let Some(build) = build {
            let RepoBuild {
                kind,
                base_dir,
                dockerfile,
                target,
                compose_file,
                compose_service,
                publish_dir,
                static_image,
                args,
            } = build;
            if let Some(v) = kind {
                spec.build.kind = *v;
                note("build.type", show(&v));
            }
            if let Some(v) = base_dir {
                spec.build.base_dir = v.clone();
                note("build.base_dir", show(&v));
            }
            if let Some(v) = dockerfile {
                spec.build.dockerfile = v.clone();
                note("build.dockerfile", show(&v));
            }
            if let Some(v) = target {
                spec.build.target = Some(v.clone());
                note("build.target", show(&v));
            }
            if let Some(v) = compose_file {
                spec.build.compose_file = Some(v.clone());
                note("build.compose_file", show(&v));
            }
            if let Some(v) = compose_service {
                spec.build.compose_service = Some(v.clone());
                note("build.compose_service", show(&v));
            }
            if let Some(v) = publish_dir {
                spec.build.publish_dir = Some(v.clone());
                note("build.publish_dir", show(&v));
            }
            if let Some(v) = static_image {
                spec.build.static_image = v.clone();
                note("build.static_image", show(&v));
            }
            for (key, value) in args {
                spec.build.args.entry(key.clone()).or_insert(value.clone());
                note(&format!("build.args.{key}"), show(value));
            }
        }
        if let Some(v) = *port {
            spec.port = Some(v);
            note("port", show(&v));
        }
        if let Some(v) = *replicas {
            spec.replicas = v;
            note("replicas", show(&v));
        }
        if let Some(v) = health {
            spec.health = v.clone();
            note("health", show(&v));
        }
        if let Some(v) = pre_deploy {
            spec.pre_deploy = Some(v.clone());
            note("pre_deploy", show(&v));
        }
        if let Some(v) = post_deploy {
            spec.post_deploy = Some(v.clone());
            note("post_deploy", show(&v));
        }
        for (key, value) in env {
            if !spec.env.contains_key(key) {
                spec.env.insert(key.clone(), value.clone());
                note(&format!("env.{key}"), show(value));
            }
        }
        if let Some(v) = volumes {
            // The repo is less trusted than the app's owner: named volumes only.
            if let Some((index, volume)) = v.iter().enumerate().find(|(_, v)| v.is_host_path()) {
                return Err(RepoConfigError {
                    file: file.to_string(),
                    message: format!(
                        "volumes[{index}].source: {:?} is a host path; a repository may only use named volumes (host paths are set by an admin through the API)",
                        volume.source
                    ),
                });
            }
            spec.volumes = v.clone();
            note("volumes", show(&v));
        }
        spec.validate()
            .map_err(|e: ValidationError| RepoConfigError {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        Ok((spec, changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> AppSpec {
        serde_json::from_str(r#"{"source":{"path":"/srv/a"},"env":{"MODE":"panel"}}"#).unwrap()
    }

    #[test]
    fn file_settings_win_and_env_entries_are_defaults() {
        let config = RepoConfig::parse(
            r#"
port = 3000
replicas = 2
[build]
type = "static"
publish_dir = "dist"
[health]
path = "/healthz"
[env]
MODE = "file"
EXTRA = "1"
[[volumes]]
source = "data"
target = "/data"
"#,
            "capstan.toml",
        )
        .unwrap();
        let (spec, changed) = config.apply(&base(), "capstan.toml").unwrap();
        assert_eq!(spec.port, Some(3000));
        assert_eq!(spec.replicas, 2);
        assert_eq!(spec.build.kind, BuildKind::Static);
        assert_eq!(spec.build.publish_dir.as_deref(), Some("dist"));
        assert_eq!(spec.health.path, "/healthz");
        assert_eq!(spec.env["MODE"], "panel");
        assert_eq!(spec.env["EXTRA"], "1");
        assert_eq!(spec.volumes.len(), 1);
        assert!(changed.contains(&"port = 3000 (from capstan.toml)".to_string()));
        assert!(!changed.iter().any(|c| c.starts_with("env.MODE")));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_file() {
        let err = RepoConfig::parse("prot = 1\n", "sub/capstan.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("sub/capstan.toml:"), "{text}");
        assert!(text.contains("prot"), "{text}");
        let err = RepoConfig::parse("[build]\ndokerfile = \"x\"\n", "capstan.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dokerfile"), "{err}");
        assert!(err.contains("line 2, column 1"), "{err}");
        let err = RepoConfig::parse("replicas = 2\nport = \"http\"\n", "capstan.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
        assert!(err.contains("line 2, column 8"), "{err}");
        let err = RepoConfig::parse("port = [\n", "capstan.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("capstan.toml"), "{err}");
        let config = RepoConfig::parse(
            "[build]\ndockerfile = \"../../etc/passwd\"\n",
            "capstan.toml",
        )
        .unwrap();
        let err = config
            .apply(&base(), "capstan.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("build.dockerfile"), "{err}");
    }

    #[test]
    fn a_repo_cannot_mount_host_paths() {
        for source in ["/var/run/docker.sock", "/var/lib/capstan", "/", "/srv/x"] {
            let text = format!("[[volumes]]\nsource = {source:?}\ntarget = \"/x\"\n");
            let config = RepoConfig::parse(&text, "capstan.toml").unwrap();
            let err = config
                .apply(&base(), "capstan.toml")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("capstan.toml:") && err.contains("volumes[0].source"),
                "{err}"
            );
        }
    }
}
