//! One compose service, key by key: what it runs, its environment, mounts, secrets,
//! ports and health check. Each problem is collected (the file reports them all at once);
//! each key accepted without effect, or applied in Capstan's own way, leaves a note.

use crate::compose_file::{ServiceBuild, ServiceHealth, UserService};
use crate::compose_mounts::{env_files, service_secrets, volumes};
use capstan_core::build_spec::check_relative_path;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Keys read and used.
const APPLIED: [&str; 25] = [
    "extra_hosts",
    "runtime",
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "volumes",
    "healthcheck",
    "depends_on",
    "ports",
    "expose",
    "labels",
    "stop_signal",
    "stop_grace_period",
    "init",
    "deploy",
    "secrets",
    "working_dir",
    "user",
    "networks",
    "restart",
    "container_name",
    "hostname",
];

/// Keys accepted and ignored, with why.
const IGNORED: [(&str, &str); 9] = [
    ("stdin_open", "no terminal is attached to app containers"),
    ("tty", "no terminal is attached to app containers"),
    (
        "platform",
        "images are built and run for the server's own platform",
    ),
    (
        "logging",
        "Docker's default log driver is used; read logs with `capstan logs`",
    ),
    (
        "links",
        "every service reaches the others by name on the app network",
    ),
    ("domainname", "Capstan names containers"),
    ("ulimits", "the engine's defaults apply"),
    ("shm_size", "the engine's default applies"),
    ("pull_policy", "images are pulled when missing"),
];

/// Keys refused, with the reason a user can accept.
const REFUSED: [(&str, &str); 14] = [
    ("privileged", "a privileged container controls the host"),
    ("network_mode", "services share the app's private network; host or another container's network would bypass it"),
    ("pid", "the host's or another container's process namespace is outside the app"),
    ("ipc", "the host's or another container's IPC namespace is outside the app"),
    ("cap_add", "extra kernel capabilities reach past the container"),
    ("devices", "host devices are outside the app"),
    ("security_opt", "security profiles are set by Capstan"),
    ("userns_mode", "the host's user namespace is outside the app"),
    ("cgroup_parent", "cgroups are set by the engine"),
    ("volumes_from", "another container's volumes are outside the service"),
    ("sysctls", "kernel parameters are set by the server's operator"),
    ("extends", "not supported: write the service out in full"),
    ("configs", "not supported: mount the file from the repo (./file:/path) instead"),
    ("external_links", "containers outside the app are not reachable"),
];

/// Reads service `name`; every problem found is returned, each naming the service.
pub(crate) fn parse_service(
    name: &str,
    service: &Value,
    dir: &Path,
    secrets: &BTreeMap<String, String>,
) -> Result<UserService, Vec<String>> {
    let mut problems = Vec::new();
    let mut out = UserService {
        name: name.to_string(),
        ..Default::default()
    };
    let mut bad = |message: String| problems.push(format!("service {name:?} {message}"));
    match service_key(name) {
        Ok(key) => out.key = key,
        Err(e) => bad(e),
    }
    let Some(map) = service.as_mapping() else {
        bad("is not a mapping".into());
        return Err(problems);
    };
    for key in map.keys() {
        let key = key.as_str().unwrap_or("?");
        if APPLIED.contains(&key) || key.starts_with("x-") {
            continue;
        }
        if let Some((_, why)) = IGNORED.iter().find(|(k, _)| *k == key) {
            out.notes.push(format!("`{key}` ignored: {why}"));
        } else if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == key) {
            bad(format!("uses `{key}`, which Capstan refuses: {why}"));
        } else {
            bad(format!(
                "uses `{key}`, which Capstan's compose deploys do not know"
            ));
        }
    }
    let get = |key: &str| service.get(key).filter(|v| !v.is_null());
    let mut attempt = |result: Result<(), String>| {
        if let Err(e) = result {
            bad(e);
        }
    };
    attempt((|| {
        out.image = get("image").map(|v| string(v, "image")).transpose()?;
        out.build = get("build").map(parse_build).transpose()?;
        if out.image.is_none() && out.build.is_none() {
            return Err("has neither an image nor a build section; give it one".into());
        }
        if let Some(image) = &out.image {
            let ok = !image.is_empty()
                && !image.starts_with('-')
                && image
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
            if !ok {
                return Err(format!("has an invalid image reference {image:?}"));
            }
        }
        Ok(())
    })());
    attempt((|| {
        out.command = get("command").map(|v| argv(v, "command")).transpose()?;
        out.entrypoint = get("entrypoint")
            .map(|v| argv(v, "entrypoint"))
            .transpose()?;
        Ok(())
    })());
    attempt(env_files(get("env_file"), dir, &mut out.environment));
    attempt(environment(get("environment"), &mut out.environment));
    attempt(volumes(get("volumes"), dir, &mut out));
    attempt(service_secrets(get("secrets"), secrets, &mut out.secrets));
    attempt((|| {
        out.depends_on = match get("depends_on") {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| string(v, "dependency"))
                .collect::<Result<_, _>>()?,
            Some(Value::Mapping(m)) => m
                .keys()
                .map(|v| string(v, "dependency"))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("has a depends_on that is neither a list nor a mapping".into()),
        };
        Ok(())
    })());
    attempt((|| {
        out.ports = port_list(get("ports"), "ports")?;
        out.expose = port_list(get("expose"), "expose")?;
        Ok(())
    })());
    attempt((|| {
        out.healthcheck = get("healthcheck").map(healthcheck).transpose()?.flatten();
        Ok(())
    })());
    attempt(runtime_keys(service, &mut out));
    attempt(crate::compose_host::extra_hosts(service, &mut out));
    attempt(crate::compose_host::runtime(service, &mut out));
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The Docker-safe form of a service name; compose allows `[a-zA-Z0-9._-]`.
fn service_key(name: &str) -> Result<String, String> {
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid || name.len() > 63 {
        return Err("has an invalid name: letters, digits, `.`, `_` and `-`, at most 63".into());
    }
    let key: String = name
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    capstan_core::AppName::parse(key.trim_matches('-'))
        .map(|n| n.to_string())
        .map_err(|e| format!("has a name Capstan cannot use: {e}"))
}

pub(crate) fn string(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("has a {what} that is not a string")),
    }
}

/// Compose's escape: `$$` is a literal `$` (interpolation has already run).
fn unescape(value: String) -> String {
    value.replace("$$", "$")
}

/// A compose command: a list, or a string split as a shell would (without running one).
fn argv(value: &Value, key: &str) -> Result<Vec<String>, String> {
    let parts = match value {
        Value::String(s) => {
            shlex::split(s).ok_or_else(|| format!("has a {key} with unbalanced quotes"))?
        }
        Value::Sequence(items) => items
            .iter()
            .map(|v| string(v, key))
            .collect::<Result<_, _>>()?,
        _ => return Err(format!("has a {key} that is neither a string nor a list")),
    };
    Ok(parts.into_iter().map(unescape).collect())
}

fn environment(value: Option<&Value>, env: &mut BTreeMap<String, String>) -> Result<(), String> {
    match value {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let key = string(k, "variable name")?;
                let value = if v.is_null() {
                    String::new()
                } else {
                    unescape(string(v, "variable value")?)
                };
                env.insert(key, value);
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = string(item, "variable")?;
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                env.insert(k.to_string(), unescape(v.to_string()));
            }
        }
        Some(_) => return Err("has an environment that is neither a mapping nor a list".into()),
    }
    // Docker takes any name without `=` (Elasticsearch reads `discovery.type`, say).
    for key in env.keys() {
        let printable = !key.is_empty()
            && key.len() <= 256
            && key.bytes().all(|b| b.is_ascii_graphic() && b != b'=');
        if !printable {
            return Err(format!(
                "environment: {key:?} is not a variable name (printable, no `=`, at most 256)"
            ));
        }
    }
    Ok(())
}

fn port_list(value: Option<&Value>, key: &str) -> Result<Vec<u16>, String> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items.iter().map(|v| container_port(v, key)).collect(),
        Some(_) => Err(format!("has {key} that is not a list")),
    }
}

/// The container side of one `ports` or `expose` entry: `80`, `"8080:80"`,
/// `"127.0.0.1:8080:80/tcp"`, `"3000-3005"` (the first of a range), or the long form's
/// `target`.
fn container_port(value: &Value, key: &str) -> Result<u16, String> {
    let text = match value {
        Value::Mapping(_) => {
            let target = value
                .get("target")
                .ok_or_else(|| format!("has a {key} entry without a target"))?;
            string(target, key)?
        }
        other => string(other, key)?,
    };
    let container = text.rsplit(':').next().unwrap_or_default();
    let container = container.split('/').next().unwrap_or_default();
    let first = container.split('-').next().unwrap_or_default();
    match first.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!(
            "has a {key} entry {text:?} whose container port is not a number from 1 to 65535"
        )),
    }
}

/// A health check; `None` when it is disabled.
fn healthcheck(value: &Value) -> Result<Option<ServiceHealth>, String> {
    let mut v = value.clone();
    if let Some(Value::String(test)) = v.get("test").cloned() {
        v["test"] = Value::Sequence(vec![Value::String("CMD-SHELL".into()), Value::String(test)]);
    }
    if v.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let mut health =
        serde_norway::from_value::<ServiceHealth>(v).map_err(|e| format!("healthcheck: {e}"))?;
    health.test = health.test.into_iter().map(unescape).collect();
    for (key, value) in [
        ("interval", &health.interval),
        ("timeout", &health.timeout),
        ("start_period", &health.start_period),
    ] {
        if let Some(value) = value {
            if capstan_core::duration::parse_duration(value).is_none() {
                return Err(format!(
                    "healthcheck.{key}: {value:?} is not a duration (e.g. 30s, 1m30s, 1.5s, 500ms)"
                ));
            }
        }
    }
    if health.test.first().map(String::as_str) == Some("NONE") {
        return Ok(None);
    }
    Ok(Some(health))
}

/// The keys that shape how the container runs, and those noted as handled by Capstan.
fn runtime_keys(service: &Value, out: &mut UserService) -> Result<(), String> {
    let get = |key: &str| service.get(key).filter(|v| !v.is_null());
    for key in ["container_name", "hostname"] {
        if get(key).is_some() {
            out.notes.push(format!(
                "`{key}` ignored: Capstan names containers; the service is reached by its name"
            ));
        }
    }
    if let Some(restart) = get("restart") {
        out.notes.push(format!(
            "`restart: {}` ignored: every container restarts unless stopped",
            string(restart, "restart")?
        ));
    }
    if get("networks").is_some() {
        out.notes.push(
            "`networks` mapped onto the app's private network, which every service joins".into(),
        );
    }
    match get("labels") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let key = string(k, "label")?;
                out.labels.insert(
                    key,
                    if v.is_null() {
                        String::new()
                    } else {
                        string(v, "label")?
                    },
                );
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = string(item, "label")?;
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                out.labels.insert(k.to_string(), v.to_string());
            }
        }
        Some(_) => return Err("has labels that are neither a mapping nor a list".into()),
    }
    let before = out.labels.len();
    out.labels.retain(|k, _| {
        !k.starts_with("traefik.") && !k.starts_with("capstan.") && !k.starts_with("io.capstan")
    });
    if out.labels.len() != before {
        out.notes.push(
            "traefik.* and capstan.* labels ignored: routing comes from the app's settings".into(),
        );
    }
    out.stop_signal = get("stop_signal")
        .map(|v| string(v, "stop_signal"))
        .transpose()?;
    if let Some(grace) = get("stop_grace_period") {
        let grace = string(grace, "stop_grace_period")?;
        if capstan_core::duration::parse_duration(&grace).is_none() {
            return Err(format!(
                "has a stop_grace_period {grace:?} that is not a duration"
            ));
        }
        out.stop_grace_period = Some(grace);
    }
    out.init = get("init").and_then(Value::as_bool);
    out.working_dir = get("working_dir")
        .map(|v| string(v, "working_dir"))
        .transpose()?;
    out.user = get("user").map(|v| string(v, "user")).transpose()?;
    if let Some(deploy) = get("deploy") {
        out.replicas = deploy
            .get("replicas")
            .and_then(Value::as_u64)
            .map(|r| r.clamp(1, 20) as u32);
        if let Some(limits) = deploy.get("resources").and_then(|r| r.get("limits")) {
            out.memory = limits
                .get("memory")
                .map(|v| string(v, "memory limit"))
                .transpose()?;
            out.cpus = limits
                .get("cpus")
                .map(|v| string(v, "cpus limit"))
                .transpose()?;
        }
    }
    Ok(())
}
fn parse_build(value: &Value) -> Result<ServiceBuild, String> {
    let (context, dockerfile, target, args) = match value {
        Value::String(context) => (context.clone(), None, None, BTreeMap::new()),
        Value::Mapping(_) => {
            let field = |key: &str| value.get(key).map(|v| string(v, key)).transpose();
            let mut args = BTreeMap::new();
            match value.get("args") {
                None | Some(Value::Null) => {}
                Some(Value::Mapping(m)) => {
                    for (k, v) in m {
                        args.insert(string(k, "build arg")?, string(v, "build arg")?);
                    }
                }
                Some(Value::Sequence(items)) => {
                    for item in items {
                        let item = string(item, "build arg")?;
                        let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                        args.insert(k.to_string(), v.to_string());
                    }
                }
                Some(_) => {
                    return Err("has build args that are neither a mapping nor a list".into())
                }
            }
            (
                field("context")?.unwrap_or_else(|| ".".into()),
                field("dockerfile")?,
                field("target")?,
                args,
            )
        }
        _ => return Err("has a build that is neither a string nor a mapping".into()),
    };
    let context = context.trim_start_matches("./").to_string();
    let context = if context.is_empty() {
        ".".to_string()
    } else {
        context
    };
    check_relative_path("build.context", &context).map_err(|e| e.to_string())?;
    let dockerfile = dockerfile.unwrap_or_else(|| "Dockerfile".into());
    check_relative_path("build.dockerfile", &dockerfile).map_err(|e| e.to_string())?;
    Ok(ServiceBuild {
        context,
        dockerfile,
        target,
        args,
    })
}
