//! An app's settings: where its source is, how it is built, and how it runs and is
//! health-checked. Everything a user sends through the API is validated here.

use crate::validate::{
    check_count, check_domain, check_git_url, check_health, check_hook, check_image_ref, check_len,
    check_limits, check_no_control, check_volumes, limits,
};
pub use crate::validate::{check_env_key, check_git_ref, check_host_path, normalize_host_path};

/// The most containers one app may run.
pub const MAX_REPLICAS: u32 = 20;
use crate::build_spec::BuildSpec;
use crate::ValidationError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where an app's code comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// A git repository at a branch, tag or commit.
    Git {
        url: String,
        #[serde(rename = "ref", default = "default_ref")]
        reference: String,
    },
    /// A directory on the daemon's host.
    Path(String),
    /// A prebuilt image reference; nothing is built.
    Image(String),
}

fn default_ref() -> String {
    "main".to_string()
}

/// How the daemon decides that a new container is ready for traffic. Durations are in
/// seconds and may have a fraction (`0.25`): Docker runs the first check one interval after
/// start, so a short interval makes rollbacks and restarts fast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSpec {
    /// HTTP path probed on the app's port; any 2xx or 3xx is healthy.
    pub path: String,
    pub interval_secs: f64,
    pub timeout_secs: f64,
    /// Consecutive failures after which the container counts as unhealthy.
    pub retries: u32,
    /// Grace time after start during which failures do not count.
    pub start_period_secs: f64,
    /// Give up on a deployment whose container is not healthy after this long.
    pub deadline_secs: u32,
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            path: "/".into(),
            interval_secs: 1.0,
            timeout_secs: 2.0,
            retries: 3,
            start_period_secs: 0.0,
            deadline_secs: 60,
        }
    }
}

/// Persistent storage mounted into every container of the app: a named volume (kept
/// across deploys, rollbacks and restarts, named `<instance>-<app>-<name>` on the engine)
/// or an absolute host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// A volume name (a DNS label) or an absolute host path.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

impl VolumeSpec {
    pub fn is_host_path(&self) -> bool {
        self.source.starts_with('/')
    }
}

/// A command run around a cutover, as argv (no shell: use `["sh", "-c", "..."]` if the
/// image has one and you want it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookCommand {
    pub command: Vec<String>,
    #[serde(default = "default_hook_timeout")]
    pub timeout_secs: u32,
}

fn default_hook_timeout() -> u32 {
    300
}

/// Resource limits for each container of the app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory limit in MiB.
    pub memory_mb: Option<u64>,
    /// CPU limit in cores (`0.5` is half a core).
    pub cpus: Option<f64>,
}

/// Everything that defines an app, apart from its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub source: Source,
    /// The port the app listens on inside its container. Unset: found at deploy time
    /// from `capstan.toml`, the compose service's `ports`/`expose`, the image's `EXPOSE`,
    /// else the one TCP port the new container listens on, else [`DEFAULT_PORT`]; a
    /// deployment's stored settings hold the port it used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Host names routed to the app by the proxy.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Serve the domains over HTTPS with Let's Encrypt certificates (HTTP-01) and
    /// redirect plain HTTP to HTTPS.
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub health: HealthSpec,
    /// Runtime environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Persistent volumes and host paths.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// Memory and CPU limits.
    #[serde(default)]
    pub limits: Limits,
    /// The start command as argv, replacing the image's `CMD` (a Procfile's `web:` fills
    /// it when the build plan has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Runs in a one-off container of the NEW image before cutover (migrations); failure
    /// aborts the deployment and the old version stays live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_deploy: Option<HookCommand>,
    /// Runs in the new container after cutover; failure is reported, not rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_deploy: Option<HookCommand>,
    /// How the source is built (ignored for image sources).
    #[serde(default)]
    pub build: BuildSpec,
    /// How many containers serve the app; all of them must be healthy before cutover.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// How long the old version may keep finishing in-flight requests after cutover.
    #[serde(default = "default_drain")]
    pub drain_secs: u32,
    /// Time between SIGTERM and SIGKILL when a container is stopped.
    #[serde(default = "default_stop_grace")]
    pub stop_grace_secs: u32,
    /// Run an init process as PID 1 in the app's containers (Docker's `--init`): an app
    /// that ignores SIGTERM as PID 1 still stops at once, and zombies are reaped.
    #[serde(default = "default_init")]
    pub init: bool,
    /// The servers the app runs on (the same release on each, routed by each server's own
    /// proxy); default `["local"]`.
    #[serde(default = "default_servers")]
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 32)]
    pub servers: Vec<crate::ServerName>,
    /// The server that builds the app's images, when it is not the first of `servers`
    /// (a build server): the image is moved from it to each server that runs the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub build_server: Option<crate::ServerName>,
    /// The forge the repository lives on, for commit statuses (pending when a deployment
    /// is queued, then success or failure); unset: none are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<crate::ForgeSettings>,
    /// Paths of the repository a push must change for its webhook to deploy (monorepos):
    /// a directory (`apps/web` covers `apps/web/x.js`, not `apps/website/x`) or a glob
    /// (`apps/*/src`, `**/*.md`). Empty: every push to the tracked branch deploys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 100)]
    pub watch_paths: Vec<String>,
    /// How many deployments of the app non-admin callers (tokens, users, webhooks) may
    /// queue in any hour; `0`: no limit. An admin is never limited.
    #[serde(default = "default_deploys_per_hour")]
    #[schema(maximum = 10000)]
    pub deploys_per_hour: u32,
}

/// How many deployments an hour an app takes from non-admin callers unless it says.
pub const DEFAULT_DEPLOYS_PER_HOUR: u32 = 10;
/// The highest per-app rate limit that can be set (other than `0`, no limit).
pub const MAX_DEPLOYS_PER_HOUR: u32 = 10_000;

fn default_deploys_per_hour() -> u32 {
    DEFAULT_DEPLOYS_PER_HOUR
}

/// The most servers one app may run on.
pub const MAX_APP_SERVERS: usize = 32;

fn default_servers() -> Vec<crate::ServerName> {
    vec![crate::ServerName::local()]
}

fn default_init() -> bool {
    true
}

/// The port an app listens on when nothing names one.
pub const DEFAULT_PORT: u16 = 8080;

impl AppSpec {
    /// The port traffic and health checks go to: the resolved or configured one, else
    /// [`DEFAULT_PORT`].
    pub fn listen_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }
}
fn default_replicas() -> u32 {
    1
}
fn default_drain() -> u32 {
    2
}
fn default_stop_grace() -> u32 {
    10
}

impl AppSpec {
    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.source.validate()?;
        if self.port == Some(0) {
            return Err(ValidationError::new("port", "must be between 1 and 65535"));
        }
        check_count("domains", self.domains.len(), limits::DOMAINS)?;
        for domain in &self.domains {
            check_domain(domain)?;
        }
        if self.tls && self.domains.is_empty() {
            return Err(ValidationError::new(
                "tls",
                "needs at least one domain to request a certificate for",
            ));
        }
        check_health(&self.health)?;
        check_count("env", self.env.len(), limits::ENV_ENTRIES)?;
        for (key, value) in &self.env {
            check_env_key(key)?;
            check_len(&format!("env.{key}"), value, limits::ENV_VALUE)?;
            if value.contains('\0') {
                return Err(ValidationError::new(
                    format!("env.{key}"),
                    "must not contain NUL bytes",
                ));
            }
        }
        check_volumes(&self.volumes)?;
        check_limits(&self.limits)?;
        if let Some(command) = &self.command {
            crate::validate::check_argv("command", command)?;
        }
        for (field, hook) in [
            ("pre_deploy", &self.pre_deploy),
            ("post_deploy", &self.post_deploy),
        ] {
            if let Some(hook) = hook {
                check_hook(field, hook)?;
            }
        }
        self.build.validate()?;
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(ValidationError::new(
                "replicas",
                format!("must be between 1 and {MAX_REPLICAS}"),
            ));
        }
        if let Some(forge) = &self.forge {
            forge.validate()?;
        }
        check_servers(&self.servers)?;
        check_watch_paths(&self.watch_paths)?;
        if self.deploys_per_hour > MAX_DEPLOYS_PER_HOUR {
            return Err(ValidationError::new(
                "deploys_per_hour",
                format!("at most {MAX_DEPLOYS_PER_HOUR} (0: no limit)"),
            ));
        }
        if self.drain_secs > 600 || self.stop_grace_secs > 600 {
            return Err(ValidationError::new(
                "drain_secs/stop_grace_secs",
                "must be at most 600 seconds",
            ));
        }
        Ok(())
    }
}

/// At most [`limits::WATCH_PATHS`], each usable ([`capstan_forge::check_watch_path`]).
fn check_watch_paths(paths: &[String]) -> Result<(), ValidationError> {
    check_count("watch_paths", paths.len(), limits::WATCH_PATHS)?;
    for path in paths {
        check_len("watch_paths", path, limits::PATH)?;
        check_no_control("watch_paths", path)?;
        if path.trim().is_empty() {
            return Err(ValidationError::new("watch_paths", "an entry is empty"));
        }
        capstan_forge::check_watch_path(path)
            .map_err(|e| ValidationError::new("watch_paths", e.to_string()))?;
    }
    Ok(())
}

/// At least one server, each once, at most [`MAX_APP_SERVERS`].
fn check_servers(servers: &[crate::ServerName]) -> Result<(), ValidationError> {
    if servers.is_empty() {
        return Err(ValidationError::new(
            "servers",
            "must name at least one server (\"local\" is the daemon's own)",
        ));
    }
    check_count("servers", servers.len(), MAX_APP_SERVERS)?;
    for (i, server) in servers.iter().enumerate() {
        if servers[..i].contains(server) {
            return Err(ValidationError::new(
                "servers",
                format!("names {server} twice"),
            ));
        }
    }
    Ok(())
}

impl Source {
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Source::Git { url, reference } => {
                check_git_url(url)?;
                check_git_ref(reference)
            }
            Source::Path(path) => {
                if !path.starts_with('/') {
                    return Err(ValidationError::new(
                        "source.path",
                        format!("{path:?} must be an absolute path"),
                    ));
                }
                check_len("source.path", path, limits::PATH)?;
                check_no_control("source.path", path)
            }
            Source::Image(image) => check_image_ref(image),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppSpecPatch;

    fn spec(json: &str) -> Result<AppSpec, String> {
        let spec: AppSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    #[test]
    fn parses_the_three_source_shapes_with_defaults() {
        let git = spec(r#"{"source":{"git":{"url":"https://x/y.git"}}}"#).unwrap();
        assert_eq!(
            git.source,
            Source::Git {
                url: "https://x/y.git".into(),
                reference: "main".into()
            }
        );
        assert_eq!(git.port, None);
        assert_eq!(git.listen_port(), 8080);
        assert_eq!(git.health.path, "/");
        let path = spec(r#"{"source":{"path":"/srv/app"},"port":3000}"#).unwrap();
        assert_eq!(path.source, Source::Path("/srv/app".into()));
        let image = spec(r#"{"source":{"image":"nginx:1.27"}}"#).unwrap();
        assert_eq!(image.source, Source::Image("nginx:1.27".into()));
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = spec(r#"{"source":{"path":"/a"},"prot":1}"#).unwrap_err();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn rejects_dangerous_values() {
        let cases = [
            (r#"{"source":{"git":{"url":"--upload-pack=x"}}}"#, "url"),
            (r#"{"source":{"git":{"url":"ext::sh -c x"}}}"#, "url"),
            (r#"{"source":{"git":{"url":"a@ext::sh -c x"}}}"#, "url"),
            (r#"{"source":{"git":{"url":"git@host:fd::17"}}}"#, "url"),
            (
                r#"{"source":{"git":{"url":"x@-oProxyCommand=y:r"}}}"#,
                "url",
            ),
            (r#"{"source":{"git":{"url":"git@host:"}}}"#, "url"),
            (r#"{"source":{"git":{"url":"/r","ref":"-x"}}}"#, "ref"),
            (r#"{"source":{"path":"relative"}}"#, "source.path"),
            (
                r#"{"source":{"path":"/a"},"domains":["a`) || Host(`b"]}"#,
                "domains",
            ),
            (
                r#"{"source":{"path":"/a"},"build":{"dockerfile":"../../etc/passwd"}}"#,
                "build.dockerfile",
            ),
            (r#"{"source":{"path":"/a"},"env":{"A B":"1"}}"#, "env"),
            (r#"{"source":{"path":"/a"},"port":0}"#, "port"),
            (r#"{"source":{"path":"/a"},"replicas":0}"#, "replicas"),
            (r#"{"source":{"path":"/a"},"servers":[]}"#, "servers"),
            (
                r#"{"source":{"path":"/a"},"servers":["local","local"]}"#,
                "servers",
            ),
            (
                r#"{"source":{"path":"/a"},"servers":["Bad_one"]}"#,
                "Bad_one",
            ),
            (
                r#"{"source":{"path":"/a"},"health":{"path":"x"}}"#,
                "health.path",
            ),
        ];
        for (json, field) in cases {
            let err = spec(json).unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
    }

    #[test]
    fn scp_like_urls_that_git_hosts_use_pass() {
        for url in [
            "git@github.com:owner/repo.git",
            "deploy@git.example.com:team/app",
            "git@10.0.0.2:repo.git",
        ] {
            let json = format!(r#"{{"source":{{"git":{{"url":"{url}"}}}}}}"#);
            assert!(spec(&json).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_refused_git_url_is_shown_without_its_credentials() {
        let json = r#"{"source":{"git":{"url":"htps://u:pw@h/r.git?private_token=glpat-s3cret"}}}"#;
        let err = spec(json).unwrap_err();
        assert!(
            err.contains("htps://****@h/r.git?private_token=****"),
            "{err}"
        );
        assert!(!err.contains("s3cret") && !err.contains("pw"), "{err}");
    }

    #[test]
    fn free_text_is_capped() {
        let long_ref = "a".repeat(256);
        let json = format!(r#"{{"source":{{"git":{{"url":"/r","ref":"{long_ref}"}}}}}}"#);
        assert!(spec(&json).unwrap_err().contains("ref"));
        let long_value = "v".repeat(33 * 1024);
        let json = format!(r#"{{"source":{{"path":"/a"}},"env":{{"A":"{long_value}"}}}}"#);
        assert!(spec(&json).unwrap_err().contains("env.A"));
        let long_url = format!("https://x/{}", "p".repeat(3000));
        let json = format!(r#"{{"source":{{"git":{{"url":"{long_url}"}}}}}}"#);
        assert!(spec(&json).unwrap_err().contains("url"));
    }

    #[test]
    fn tls_needs_a_domain() {
        let err = spec(r#"{"source":{"path":"/a"},"tls":true}"#).unwrap_err();
        assert!(err.contains("tls"), "{err}");
        assert!(spec(r#"{"source":{"path":"/a"},"tls":true,"domains":["a.test"]}"#).is_ok());
    }

    #[test]
    fn patch_keeps_unset_fields_merges_objects_and_validates() {
        let base = spec(
            r#"{"source":{"path":"/a"},"domains":["a.test"],"build":{"type":"dockerfile"},"env":{"A":"1","B":"2"}}"#,
        )
        .unwrap();
        let patch = serde_json::json!({"port": 3000, "build": {"base_dir": "x"}, "env": {"B": null, "C": "3"}});
        let next = base.merge_patch(&patch).unwrap();
        assert_eq!(next.port, Some(3000));
        assert_eq!(next.domains, vec!["a.test".to_string()]);
        assert_eq!(
            next.build.kind,
            crate::BuildKind::Dockerfile,
            "kept by the merge"
        );
        assert_eq!(next.build.base_dir, "x");
        assert_eq!(next.env.get("A").map(String::as_str), Some("1"));
        assert!(!next.env.contains_key("B"));
        let next = next
            .merge_patch(&serde_json::json!({"source": {"image": "x:1"}, "pre_deploy": null}))
            .unwrap();
        assert_eq!(next.source, Source::Image("x:1".into()));
        for (bad, field) in [
            (serde_json::json!({"domains": ["no spaces"]}), "domains"),
            (serde_json::json!({"prot": 1}), "prot"),
            (
                serde_json::json!({"build": {"dokerfile": "x"}}),
                "dokerfile",
            ),
            (serde_json::json!([1]), "object"),
            (
                serde_json::json!({"pre_deploy": {"command": "sh -c x"}}),
                "pre_deploy.command",
            ),
        ] {
            let err = base.merge_patch(&bad).unwrap_err().to_string();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }

    #[test]
    fn the_deploy_rate_limit_defaults_to_ten_and_is_patched_and_checked() {
        let base = spec(r#"{"source":{"image":"x"}}"#).unwrap();
        assert_eq!(base.deploys_per_hour, DEFAULT_DEPLOYS_PER_HOUR);
        let off = base
            .merge_patch(&serde_json::json!({"deploys_per_hour": 0}))
            .unwrap();
        assert_eq!(off.deploys_per_hour, 0);
        let back = off
            .merge_patch(&serde_json::json!({"deploys_per_hour": null}))
            .unwrap();
        assert_eq!(back.deploys_per_hour, DEFAULT_DEPLOYS_PER_HOUR);
        let err = base
            .merge_patch(&serde_json::json!({"deploys_per_hour": 10_001}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("deploys_per_hour"), "{err}");
    }

    #[test]
    fn every_setting_can_be_patched() {
        // A field added to AppSpec but not to AppSpecPatch would be refused as unknown.
        let full = spec(
            r#"{"source":{"path":"/a"},"pre_deploy":{"command":["x"]},"post_deploy":{"command":["y"]}}"#,
        )
        .unwrap();
        let every_key = serde_json::to_value(&full).unwrap();
        let keys: Vec<&String> = every_key.as_object().unwrap().keys().collect();
        assert!(keys.len() >= 14, "{keys:?}");
        serde_json::from_value::<AppSpecPatch>(every_key.clone()).unwrap();
    }

    #[test]
    fn watch_paths_are_patched_checked_and_removed() {
        let base = spec(r#"{"source":{"git":{"url":"https://x/y.git"}}}"#).unwrap();
        assert!(base.watch_paths.is_empty());
        let set = base
            .merge_patch(&serde_json::json!({"watch_paths": ["apps/web", "libs/*/src"]}))
            .unwrap();
        assert_eq!(set.watch_paths, ["apps/web", "libs/*/src"]);
        let cleared = set
            .merge_patch(&serde_json::json!({"watch_paths": null}))
            .unwrap();
        assert!(cleared.watch_paths.is_empty());
        for (bad, says) in [
            (
                serde_json::json!({"watch_paths": ["../up"]}),
                "leaves the repository",
            ),
            (
                serde_json::json!({"watch_paths": ["apps/[web"]}),
                "not a valid glob",
            ),
            (serde_json::json!({"watch_paths": [" "]}), "empty"),
            (serde_json::json!({"watch_paths": "apps"}), "watch_paths"),
        ] {
            let err = base.merge_patch(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(err.contains("watch_paths"), "{bad}: {err}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("p{i}")).collect();
        let err = base
            .merge_patch(&serde_json::json!({ "watch_paths": many }))
            .unwrap_err();
        assert!(err.to_string().contains("at most 100"), "{err}");
    }
}
