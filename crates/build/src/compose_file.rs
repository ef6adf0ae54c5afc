//! A user's compose file, read into what Capstan deploys. Variables are interpolated
//! first (`compose_vars`); then every service is read (`compose_service`), and every
//! problem in the file is reported at once, as a numbered list. Keys that change nothing
//! for a Capstan deploy are accepted and noted; keys that would reach past the app's
//! trust boundary (host paths, host namespaces, privileges, devices) are refused with the
//! reason.

use crate::compose_service::parse_service;
use crate::compose_vars::Variables;
use crate::BuildError;
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A service's `build`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBuild {
    /// Relative to the compose file's directory.
    pub context: String,
    /// Relative to the context.
    pub dockerfile: String,
    pub target: Option<String>,
    pub args: BTreeMap<String, String>,
}

/// A named volume of the app mounted into a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVolume {
    pub name: String,
    pub target: String,
    pub read_only: bool,
}

/// A file or directory of the repo that a service mounts (`./nginx.conf:/etc/nginx/...`):
/// served from the deployment's own checkout, baked into a derived image, never from a
/// path on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoMount {
    /// Relative to the compose file's directory, inside the source tree.
    pub source: String,
    pub target: String,
}

/// A compose secret a service mounts as a file at `/run/secrets/<target>`, filled from
/// the app's Capstan secret `capstan_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSecret {
    pub capstan_name: String,
    pub target: String,
}

/// A service's own health check, as compose writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceHealth {
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period: Option<String>,
    #[serde(default)]
    pub disable: Option<bool>,
}

/// One service of the user's file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserService {
    /// The name in the file: the service's DNS name on the app network.
    pub name: String,
    /// The name made safe for Docker object names (lowercase, `-` for `_` and `.`).
    pub key: String,
    pub image: Option<String>,
    pub build: Option<ServiceBuild>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub volumes: Vec<ServiceVolume>,
    pub repo_mounts: Vec<RepoMount>,
    pub secrets: Vec<ServiceSecret>,
    pub healthcheck: Option<ServiceHealth>,
    pub depends_on: Vec<String>,
    /// Container ports of `ports` (the host side is ignored: traffic comes through the
    /// proxy), in the file's order.
    pub ports: Vec<u16>,
    /// Ports of `expose`, in the file's order.
    pub expose: Vec<u16>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub stop_grace_period: Option<String>,
    pub init: Option<bool>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub replicas: Option<u32>,
    /// `extra_hosts` as (name, address), the app's own service names left out.
    pub extra_hosts: Vec<(String, String)>,
    /// An OCI runtime from [`crate::compose_host::ALLOWED_RUNTIMES`].
    pub runtime: Option<String>,
    /// `deploy.resources.limits`, in compose's notation.
    pub memory: Option<String>,
    pub cpus: Option<String>,
    /// What was accepted without effect, or applied in Capstan's way, for the log.
    pub notes: Vec<String>,
}

impl UserService {
    /// The port the service listens on, as its file says: the first container port of
    /// `ports`, else the first of `expose`, with the key it came from.
    pub fn declared_port(&self) -> Option<(u16, &'static str)> {
        self.ports
            .first()
            .map(|p| (*p, "ports"))
            .or_else(|| self.expose.first().map(|p| (*p, "expose")))
    }
}

/// The user's compose file, services by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCompose {
    pub file: String,
    pub services: BTreeMap<String, UserService>,
    /// Service names in the file's order.
    pub order: Vec<String>,
    /// File-level notes (skipped services, secrets mapping), for the log.
    pub notes: Vec<String>,
}

impl UserCompose {
    pub fn names(&self) -> Vec<String> {
        self.services.keys().cloned().collect()
    }

    /// Every note of the file and its services.
    pub fn all_notes(&self) -> Vec<String> {
        let mut notes = self.notes.clone();
        for service in self.services.values() {
            notes.extend(
                service
                    .notes
                    .iter()
                    .map(|n| format!("service {}: {n}", service.name)),
            );
        }
        notes
    }

    /// Services in an order that starts dependencies first.
    pub fn start_order(&self) -> Vec<&UserService> {
        let mut done: Vec<&str> = Vec::new();
        let mut order = Vec::new();
        while order.len() < self.services.len() {
            let before = order.len();
            for service in self.services.values() {
                if done.contains(&service.name.as_str()) {
                    continue;
                }
                if service
                    .depends_on
                    .iter()
                    .all(|d| done.contains(&d.as_str()))
                {
                    done.push(&service.name);
                    order.push(service);
                }
            }
            if order.len() == before {
                break; // a cycle; parse() refuses those, so this does not happen
            }
        }
        order
    }
}

/// Where a compose file is read from and what its variables resolve to.
pub struct ComposeSource<'a> {
    /// The directory holding the file: relative paths (build contexts, mounts, env files,
    /// `.env`) are resolved against it.
    pub dir: &'a Path,
    pub vars: &'a Variables,
}

/// Top-level keys of a compose file that are read or harmless.
const TOP_LEVEL_KEYS: [&str; 6] = [
    "services", "volumes", "networks", "secrets", "name", "version",
];

/// Parses `text` (the file `file`) and checks every service, reporting every problem.
pub fn parse_compose_file(
    text: &str,
    file: &str,
    source: &ComposeSource<'_>,
) -> Result<UserCompose, BuildError> {
    let fail = |problems: Vec<String>| {
        let message = match problems.as_slice() {
            [one] => one.clone(),
            many => format!(
                "{} problems: {}",
                many.len(),
                many.iter()
                    .enumerate()
                    .map(|(i, p)| format!("({}) {p}", i + 1))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        BuildError::Source(format!("{file}: {message}"))
    };
    let mut doc: Value =
        serde_norway::from_str(text).map_err(|e| fail(vec![format!("not valid YAML: {e}")]))?;
    let mut vars = source.vars.clone();
    if let Ok(dotenv) = std::fs::read_to_string(source.dir.join(".env")) {
        for (key, value) in crate::compose_vars::parse_dotenv(&dotenv) {
            vars.values.entry(key).or_insert(value);
        }
    }
    let mut problems = Vec::new();
    interpolate_tree(&mut doc, &vars, "", &mut problems);
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let Some(top) = doc.as_mapping() else {
        return Err(fail(vec!["is not a mapping".into()]));
    };
    for key in top.keys() {
        let key = key.as_str().unwrap_or("?");
        if !TOP_LEVEL_KEYS.contains(&key) && !key.starts_with("x-") {
            problems.push(match key {
                "configs" => "top-level `configs` is not supported; mount the file from the repo (./file:/path) instead".to_string(),
                other => format!("unknown top-level key `{other}`"),
            });
        }
    }
    let mut notes = Vec::new();
    let secrets = top_level_secrets(&doc, &mut notes);
    let services = match doc.get("services").and_then(Value::as_mapping) {
        Some(services) if !services.is_empty() => services,
        _ => return Err(fail(vec!["has no services".into()])),
    };
    let mut out: BTreeMap<String, UserService> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (name, service) in services {
        let Some(name) = name.as_str() else {
            problems.push("a service name is not a string".into());
            continue;
        };
        if service.get("profiles").is_some() {
            notes.push(format!(
                "service {name} has profiles, so `docker compose up` would not start it: skipped"
            ));
            skipped.push(name.to_string());
            continue;
        }
        match parse_service(name, service, source.dir, &secrets) {
            Ok(parsed) => {
                if let Some(other) = out.values().find(|s| s.key == parsed.key) {
                    problems.push(format!(
                        "services {:?} and {name:?} have the same Docker name {:?}",
                        other.name, parsed.key
                    ));
                }
                out.insert(name.to_string(), parsed);
            }
            Err(mut errors) => problems.append(&mut errors),
        }
    }
    for service in out.values_mut() {
        service.depends_on.retain(|d| !skipped.contains(d));
    }
    crate::compose_host::keep_service_names(&mut out);
    for service in out.values() {
        for dep in &service.depends_on {
            if !out.contains_key(dep) {
                problems.push(format!(
                    "service {:?} depends on {dep:?}, which is not a service",
                    service.name
                ));
            }
        }
    }
    if out.is_empty() && problems.is_empty() {
        problems.push("has no services to run (all have profiles)".into());
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let order = services
        .keys()
        .filter_map(Value::as_str)
        .filter(|n| out.contains_key(*n))
        .map(str::to_string)
        .collect();
    let compose = UserCompose {
        file: file.to_string(),
        services: out,
        order,
        notes,
    };
    if compose.start_order().len() != compose.services.len() {
        return Err(fail(vec!["depends_on has a cycle".into()]));
    }
    Ok(compose)
}

/// The Capstan secret name for a compose secret: upper case, `_` for anything else.
pub fn capstan_secret_name(compose_name: &str) -> String {
    compose_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The file's top-level secrets, by compose name, mapped onto the app's Capstan secrets.
fn top_level_secrets(doc: &Value, notes: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut secrets = BTreeMap::new();
    if let Some(map) = doc.get("secrets").and_then(Value::as_mapping) {
        for name in map.keys().filter_map(Value::as_str) {
            let capstan = capstan_secret_name(name);
            notes.push(format!(
                "secret {name} is filled from the app's secret {capstan} (set it with the secrets API; a file or variable named in the compose file is not read)"
            ));
            secrets.insert(name.to_string(), capstan);
        }
    }
    secrets
}

/// Interpolates every string value (not keys) of the document in place.
fn interpolate_tree(value: &mut Value, vars: &Variables, path: &str, problems: &mut Vec<String>) {
    match value {
        Value::String(text) => match vars.interpolate(text) {
            Ok(done) => *text = done,
            Err(err) => problems.push(format!("{path}: {err}")),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, vars, &format!("{path}[{i}]"), problems);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                if key.starts_with("x-") {
                    continue;
                }
                let path = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                interpolate_tree(item, vars, &path, problems);
            }
        }
        _ => {}
    }
}
