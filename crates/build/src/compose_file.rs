//! A user's compose file, read into the subset Capstan deploys: per service its image or
//! build, command, entrypoint, environment, volumes, health check and dependencies. Keys
//! Capstan does not act on are refused by name rather than silently ignored (`ports` is
//! accepted and ignored: traffic reaches the app through the proxy).

use crate::BuildError;
use capstan_core::build_spec::check_relative_path;
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;

/// The compose keys a service may use.
const SERVICE_KEYS: [&str; 11] = [
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "volumes",
    "healthcheck",
    "depends_on",
    "ports",
    "expose",
    "restart",
];

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

/// A volume of a service: a named volume of the app, or a path in the source tree is
/// refused (it would not exist on the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVolume {
    pub name: String,
    pub target: String,
    pub read_only: bool,
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
}

/// One service of the user's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserService {
    pub name: String,
    pub image: Option<String>,
    pub build: Option<ServiceBuild>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub volumes: Vec<ServiceVolume>,
    pub healthcheck: Option<ServiceHealth>,
    pub depends_on: Vec<String>,
    /// Container ports of `ports` (the host side is ignored: traffic comes through the
    /// proxy), in the file's order.
    pub ports: Vec<u16>,
    /// Ports of `expose`, in the file's order.
    pub expose: Vec<u16>,
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
}

impl UserCompose {
    pub fn names(&self) -> Vec<String> {
        self.services.keys().cloned().collect()
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

/// Parses `text` (the file `file`) and checks every service.
pub fn parse_compose_file(text: &str, file: &str) -> Result<UserCompose, BuildError> {
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
    let mut out = BTreeMap::new();
    for (name, service) in services {
        let name = name
            .as_str()
            .ok_or_else(|| bad("a service name is not a string".into()))?;
        capstan_core::AppName::parse(name)
            .map_err(|e| bad(format!("service name {name:?}: {e}")))?;
        let parsed =
            parse_service(name, service).map_err(|m| bad(format!("service {name:?} {m}")))?;
        out.insert(name.to_string(), parsed);
    }
    let compose = UserCompose {
        file: file.to_string(),
        services: out,
    };
    for service in compose.services.values() {
        for dep in &service.depends_on {
            if !compose.services.contains_key(dep) {
                return Err(bad(format!(
                    "service {:?} depends on {dep:?}, which is not a service",
                    service.name
                )));
            }
        }
    }
    if compose.start_order().len() != compose.services.len() {
        return Err(bad("depends_on has a cycle".into()));
    }
    Ok(compose)
}

/// Parses the file and returns its service names (the check the plan runs).
pub fn check_compose_file(text: &str, file: &str) -> Result<Vec<String>, BuildError> {
    Ok(parse_compose_file(text, file)?.names())
}

fn string(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("has a {what} that is not a string")),
    }
}

/// Compose's escape: `$$` is a literal `$`. Capstan does no other interpolation, except
/// that an environment value of exactly `${NAME}` takes the app's secret NAME.
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

fn parse_service(name: &str, service: &Value) -> Result<UserService, String> {
    let map = service
        .as_mapping()
        .ok_or_else(|| "is not a mapping".to_string())?;
    for key in map.keys() {
        let key = key.as_str().unwrap_or("?");
        if !SERVICE_KEYS.contains(&key) {
            return Err(format!(
                "uses `{key}`, which Capstan's compose deploys do not support (supported: {})",
                SERVICE_KEYS.join(", ")
            ));
        }
    }
    let get = |key: &str| service.get(key).filter(|v| !v.is_null());
    let image = get("image").map(|v| string(v, "image")).transpose()?;
    let build = get("build").map(parse_build).transpose()?;
    if image.is_none() && build.is_none() {
        return Err("has neither an image nor a build section; give it one".into());
    }
    if let Some(image) = &image {
        let ok = !image.is_empty()
            && !image.starts_with('-')
            && image
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
        if !ok {
            return Err(format!("has an invalid image reference {image:?}"));
        }
    }
    let mut environment = BTreeMap::new();
    match get("environment") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let key = string(k, "variable name")?;
                let value = if v.is_null() {
                    String::new()
                } else {
                    unescape(string(v, "variable value")?)
                };
                environment.insert(key, value);
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = string(item, "variable")?;
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                environment.insert(k.to_string(), unescape(v.to_string()));
            }
        }
        Some(_) => return Err("has an environment that is neither a mapping nor a list".into()),
    }
    for key in environment.keys() {
        capstan_core::app::check_env_key(key).map_err(|e| format!("environment: {}", e.reason))?;
    }
    let volumes = match get("volumes") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items.iter().map(parse_volume).collect::<Result<_, _>>()?,
        Some(_) => return Err("has volumes that are not a list".into()),
    };
    let depends_on = match get("depends_on") {
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
    let healthcheck = get("healthcheck")
        .map(|v| {
            let mut v = v.clone();
            if let Some(Value::String(test)) = v.get("test").cloned() {
                v["test"] =
                    Value::Sequence(vec![Value::String("CMD-SHELL".into()), Value::String(test)]);
            }
            let health = serde_norway::from_value::<ServiceHealth>(v)
                .map_err(|e| format!("healthcheck: {e}"))?;
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
            Ok(health)
        })
        .transpose()?;
    let ports = match get("ports") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| container_port(v, "ports"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("has ports that are not a list".into()),
    };
    let expose = match get("expose") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| container_port(v, "expose"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("has expose that is not a list".into()),
    };
    Ok(UserService {
        name: name.to_string(),
        image,
        build,
        command: get("command").map(|v| argv(v, "command")).transpose()?,
        entrypoint: get("entrypoint")
            .map(|v| argv(v, "entrypoint"))
            .transpose()?,
        environment,
        volumes,
        healthcheck,
        depends_on,
        ports,
        expose,
    })
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

fn parse_volume(value: &Value) -> Result<ServiceVolume, String> {
    let (source, target, read_only) = match value {
        Value::String(short) => {
            let parts: Vec<&str> = short.split(':').collect();
            match parts.as_slice() {
                [source, target] => (source.to_string(), target.to_string(), false),
                [source, target, mode] => (source.to_string(), target.to_string(), *mode == "ro"),
                _ => {
                    return Err(format!(
                        "has a volume {short:?} that is not source:target[:ro]"
                    ))
                }
            }
        }
        Value::Mapping(_) => (
            value
                .get("source")
                .map(|v| string(v, "volume source"))
                .transpose()?
                .unwrap_or_default(),
            value
                .get("target")
                .map(|v| string(v, "volume target"))
                .transpose()?
                .unwrap_or_default(),
            value
                .get("read_only")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        _ => return Err("has a volume that is neither a string nor a mapping".into()),
    };
    if capstan_core::AppName::parse(&source).is_err() {
        return Err(format!(
            "mounts {source:?}: only named volumes (DNS labels) are supported; host paths \
             from a repo would not exist on the server"
        ));
    }
    if !target.starts_with('/') {
        return Err(format!(
            "mounts to {target:?}, which is not an absolute path"
        ));
    }
    Ok(ServiceVolume {
        name: source,
        target,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_services_in_their_many_spellings() {
        let text = r#"
services:
  web:
    build:
      context: ./app
      target: runtime
      args: [MODE=prod]
    command: node server.js --port "8080" --cost "$$5"
    environment:
      - DB_HOST=db
      - EMPTY
    volumes: ["uploads:/srv/uploads"]
    ports: ["127.0.0.1:9000:8080/tcp", {target: 81, published: 8081}]
    expose: [3000]
    depends_on: [db]
  db:
    image: postgres:16
    environment: {POSTGRES_PASSWORD: example, PORT: 5432}
    volumes:
      - {type: volume, source: pgdata, target: /var/lib/postgresql/data}
    healthcheck:
      test: pg_isready
      interval: 1m30s
      timeout: 1.5s
      start_period: 500ms
"#;
        let compose = parse_compose_file(text, "compose.yaml").unwrap();
        let web = &compose.services["web"];
        let build = web.build.as_ref().unwrap();
        assert_eq!(build.context, "app");
        assert_eq!(build.target.as_deref(), Some("runtime"));
        assert_eq!(build.args["MODE"], "prod");
        assert_eq!(
            web.command.clone().unwrap(),
            vec!["node", "server.js", "--port", "8080", "--cost", "$5"]
        );
        assert_eq!(web.environment["DB_HOST"], "db");
        assert_eq!(web.volumes[0].name, "uploads");
        assert_eq!(web.ports, vec![8080, 81]);
        assert_eq!(web.declared_port(), Some((8080, "ports")));
        let db = &compose.services["db"];
        assert_eq!(db.environment["PORT"], "5432");
        assert_eq!(
            db.healthcheck.as_ref().unwrap().test,
            vec!["CMD-SHELL", "pg_isready"]
        );
        let order: Vec<_> = compose
            .start_order()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(order, vec!["db", "web"]);
    }

    #[test]
    fn names_what_is_wrong() {
        for (text, expect) in [
            ("services: [\n", "not valid YAML"),
            ("version: '3'\n", "no services"),
            ("services: {}\n", "no services"),
            ("services:\n  web:\n    image: x\n  worker:\n    command: run\n", "\"worker\" has neither an image nor a build"),
            ("services:\n  web:\n    build:\n      context: ../../etc\n", "build.context"),
            ("services:\n  web:\n    image: x\n    privileged: true\n", "`privileged`"),
            ("services:\n  web:\n    image: x\n    volumes: [\"./data:/data\"]\n", "only named volumes"),
            ("services:\n  web:\n    image: x\n    depends_on: [db]\n", "\"db\", which is not a service"),
            ("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n", "cycle"),
            ("services:\n  Web_1:\n    image: x\n", "service name"),
            ("services:\n  web:\n    image: x\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: \"10\"\n", "healthcheck.interval"),
            ("services:\n  web:\n    image: x\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      timeout: 1x\n", "healthcheck.timeout"),
        ] {
            let err = parse_compose_file(text, "compose.yaml").unwrap_err().to_string();
            assert!(err.starts_with("source: compose.yaml:"), "{text}: {err}");
            assert!(err.contains(expect), "{text}: {err}");
        }
    }
}
