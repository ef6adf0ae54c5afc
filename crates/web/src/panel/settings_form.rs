//! The app settings form: its fields as text (what the page shows and posts back), how the
//! current settings fill it, and how a post becomes one JSON merge patch. Every field that
//! does not parse is reported next to itself, and nothing is saved while any is wrong.

use crate::panel::session::FormFields;
use capstan_core::{AppSpec, Source};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The settings as the form's text fields.
#[derive(Debug, Clone, Default)]
pub struct SettingsForm {
    /// `git`, `image` or `path` (path only when set by an admin through the API).
    pub source_kind: String,
    pub git_url: String,
    pub git_ref: String,
    pub image: String,
    pub path: String,
    pub port: String,
    /// One per line.
    pub domains: String,
    pub tls: bool,
    pub health_path: String,
    pub health_interval: String,
    pub health_timeout: String,
    pub health_retries: String,
    pub health_start_period: String,
    pub health_deadline: String,
    /// `KEY=value`, one per line.
    pub env: String,
    /// `source:/target[:ro]`, one per line.
    pub volumes: String,
    /// Shell-like words (split into argv, never run through a shell).
    pub command: String,
    pub pre_deploy: String,
    pub post_deploy: String,
    pub memory_mb: String,
    pub cpus: String,
    pub replicas: String,
    pub build_type: String,
    pub base_dir: String,
    pub dockerfile: String,
}

/// Problems per field name; `settings` for those not tied to one field.
pub type FieldErrors = BTreeMap<String, String>;

fn words(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

fn number(value: f64) -> String {
    let text = format!("{value}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

impl SettingsForm {
    pub fn from_spec(spec: &AppSpec) -> Self {
        let mut form = SettingsForm::default();
        match &spec.source {
            Source::Git { url, reference } => {
                form.source_kind = "git".into();
                form.git_url = capstan_core::redact::redact_url(url);
                form.git_ref = reference.clone();
            }
            Source::Image(image) => {
                form.source_kind = "image".into();
                form.image = image.clone();
            }
            Source::Path(path) => {
                form.source_kind = "path".into();
                form.path = path.clone();
            }
        }
        form.port = spec.port.map(|p| p.to_string()).unwrap_or_default();
        form.domains = spec.domains.join("\n");
        form.tls = spec.tls;
        form.health_path = spec.health.path.clone();
        form.health_interval = number(spec.health.interval_secs);
        form.health_timeout = number(spec.health.timeout_secs);
        form.health_retries = spec.health.retries.to_string();
        form.health_start_period = number(spec.health.start_period_secs);
        form.health_deadline = spec.health.deadline_secs.to_string();
        form.env = spec
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n");
        form.volumes = spec
            .volumes
            .iter()
            .map(|v| {
                let ro = if v.read_only { ":ro" } else { "" };
                format!("{}:{}{ro}", v.source, v.target)
            })
            .collect::<Vec<_>>()
            .join("\n");
        form.command = spec.command.as_deref().map(words).unwrap_or_default();
        form.pre_deploy = spec
            .pre_deploy
            .as_ref()
            .map(|h| words(&h.command))
            .unwrap_or_default();
        form.post_deploy = spec
            .post_deploy
            .as_ref()
            .map(|h| words(&h.command))
            .unwrap_or_default();
        form.memory_mb = spec
            .limits
            .memory_mb
            .map(|m| m.to_string())
            .unwrap_or_default();
        form.cpus = spec.limits.cpus.map(number).unwrap_or_default();
        form.replicas = spec.replicas.to_string();
        form.build_type = spec.build.kind.as_str().into();
        form.base_dir = spec.build.base_dir.clone();
        form.dockerfile = spec.build.dockerfile.clone();
        form
    }

    /// The posted fields, as text (checkbox `tls` as present or not).
    pub fn from_fields(fields: &FormFields) -> Self {
        let text = |name: &str| fields.get(name).to_string();
        SettingsForm {
            source_kind: text("source_kind"),
            git_url: text("git_url"),
            git_ref: text("git_ref"),
            image: text("image"),
            path: text("path"),
            port: text("port"),
            domains: text("domains"),
            tls: fields.checked("tls"),
            health_path: text("health_path"),
            health_interval: text("health_interval"),
            health_timeout: text("health_timeout"),
            health_retries: text("health_retries"),
            health_start_period: text("health_start_period"),
            health_deadline: text("health_deadline"),
            env: text("env"),
            volumes: text("volumes"),
            command: text("command"),
            pre_deploy: text("pre_deploy"),
            post_deploy: text("post_deploy"),
            memory_mb: text("memory_mb"),
            cpus: text("cpus"),
            replicas: text("replicas"),
            build_type: text("build_type"),
            base_dir: text("base_dir"),
            dockerfile: text("dockerfile"),
        }
    }

    /// The JSON merge patch this form asks for, or every field that does not parse.
    /// `current` supplies what the form shows redacted (a git URL's credentials).
    pub fn to_patch(&self, current: Option<&AppSpec>) -> Result<Value, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut patch = Map::new();
        match self.source_kind.as_str() {
            "git" => {
                let url = match current.map(|c| &c.source) {
                    // The page shows `****` for credentials; unchanged means keep them.
                    Some(Source::Git { url, .. })
                        if capstan_core::redact::redact_url(url) == self.git_url.trim() =>
                    {
                        url.clone()
                    }
                    _ => self.git_url.trim().to_string(),
                };
                let reference = Some(self.git_ref.trim())
                    .filter(|r| !r.is_empty())
                    .unwrap_or("main");
                patch.insert(
                    "source".into(),
                    json!({ "git": { "url": url, "ref": reference } }),
                );
            }
            "image" => {
                patch.insert("source".into(), json!({ "image": self.image.trim() }));
            }
            "path" => {
                patch.insert("source".into(), json!({ "path": self.path.trim() }));
            }
            other => {
                errors.insert(
                    "source".into(),
                    format!("{other:?} is not a source kind (git or image)"),
                );
            }
        }
        patch.insert(
            "port".into(),
            optional_number::<u16>(&self.port, "port", "a port from 1 to 65535", &mut errors),
        );
        patch.insert("domains".into(), json!(lines(&self.domains)));
        patch.insert("tls".into(), json!(self.tls));
        let health = json!({
            "path": self.health_path.trim(),
            "interval_secs": required_number::<f64>(&self.health_interval, "health_interval", &mut errors),
            "timeout_secs": required_number::<f64>(&self.health_timeout, "health_timeout", &mut errors),
            "retries": required_number::<u32>(&self.health_retries, "health_retries", &mut errors),
            "start_period_secs": required_number::<f64>(&self.health_start_period, "health_start_period", &mut errors),
            "deadline_secs": required_number::<u32>(&self.health_deadline, "health_deadline", &mut errors),
        });
        patch.insert("health".into(), health);
        let mut env = env_lines(&self.env, &mut errors);
        // A merge patch merges objects: a variable taken out of the form is removed by
        // naming it with null.
        if let (Some(current), Some(map)) = (current, env.as_object_mut()) {
            for key in current.env.keys() {
                map.entry(key.clone()).or_insert(Value::Null);
            }
        }
        patch.insert("env".into(), env);
        patch.insert("volumes".into(), volume_lines(&self.volumes, &mut errors));
        patch.insert(
            "command".into(),
            argv(&self.command, "command", &mut errors),
        );
        for (key, text) in [
            ("pre_deploy", &self.pre_deploy),
            ("post_deploy", &self.post_deploy),
        ] {
            let command = argv(text, key, &mut errors);
            let hook = if command.is_null() {
                Value::Null
            } else {
                json!({ "command": command })
            };
            patch.insert(key.into(), hook);
        }
        patch.insert(
            "limits".into(),
            json!({
                "memory_mb": optional_number::<u64>(&self.memory_mb, "memory_mb", "a whole number of MiB", &mut errors),
                "cpus": optional_number::<f64>(&self.cpus, "cpus", "a number of cores such as 0.5", &mut errors),
            }),
        );
        patch.insert(
            "replicas".into(),
            required_number::<u32>(&self.replicas, "replicas", &mut errors),
        );
        patch.insert(
            "build".into(),
            json!({
                "type": self.build_type.trim(),
                "base_dir": non_empty(&self.base_dir, "."),
                "dockerfile": non_empty(&self.dockerfile, "Dockerfile"),
            }),
        );
        if errors.is_empty() {
            Ok(Value::Object(patch))
        } else {
            Err(errors)
        }
    }
}

/// The form field a validation message (`health.path: ...`, `env.KEY: ...`) belongs to.
pub fn field_of(message: &str) -> String {
    let field = message.split(':').next().unwrap_or("").trim();
    let known = [
        ("source.git.url", "git_url"),
        ("source.git.ref", "git_ref"),
        ("source.image", "image"),
        ("ref", "git_ref"),
        ("source", "source"),
        ("port", "port"),
        ("domains", "domains"),
        ("tls", "domains"),
        ("health.path", "health_path"),
        ("health.interval", "health_interval"),
        ("health.timeout", "health_timeout"),
        ("health.retries", "health_retries"),
        ("health.start_period", "health_start_period"),
        ("health.deadline", "health_deadline"),
        ("health", "health_path"),
        ("env", "env"),
        ("volumes", "volumes"),
        ("command", "command"),
        ("pre_deploy", "pre_deploy"),
        ("post_deploy", "post_deploy"),
        ("limits.memory", "memory_mb"),
        ("limits.cpus", "cpus"),
        ("limits", "memory_mb"),
        ("replicas", "replicas"),
        ("build.base_dir", "base_dir"),
        ("build.dockerfile", "dockerfile"),
        ("build", "build_type"),
    ];
    known
        .iter()
        .find(|(prefix, _)| field.starts_with(prefix))
        .map_or_else(|| "settings".to_string(), |(_, name)| name.to_string())
}

fn non_empty<'a>(text: &'a str, default: &'a str) -> &'a str {
    Some(text.trim())
        .filter(|t| !t.is_empty())
        .unwrap_or(default)
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn optional_number<T: std::str::FromStr + serde::Serialize>(
    text: &str,
    field: &str,
    what: &str,
    errors: &mut FieldErrors,
) -> Value {
    let text = text.trim();
    if text.is_empty() {
        return Value::Null;
    }
    match text.parse::<T>() {
        Ok(value) => json!(value),
        Err(_) => {
            errors.insert(field.into(), format!("{text:?} is not {what}"));
            Value::Null
        }
    }
}

fn required_number<T: std::str::FromStr + serde::Serialize>(
    text: &str,
    field: &str,
    errors: &mut FieldErrors,
) -> Value {
    match text.trim().parse::<T>() {
        Ok(value) => json!(value),
        Err(_) => {
            errors.insert(field.into(), format!("{:?} is not a number", text.trim()));
            Value::Null
        }
    }
}

fn env_lines(text: &str, errors: &mut FieldErrors) -> Value {
    let mut env = Map::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                env.insert(key.trim().to_string(), json!(value));
            }
            _ => {
                errors.insert(
                    "env".into(),
                    format!("line {}: expected KEY=value, got {line:?}", number + 1),
                );
            }
        }
    }
    Value::Object(env)
}

fn volume_lines(text: &str, errors: &mut FieldErrors) -> Value {
    let mut volumes = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (rest, read_only) = match line.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        match rest.split_once(':') {
            Some((source, target)) if !source.is_empty() && !target.is_empty() => {
                volumes.push(json!({ "source": source, "target": target, "read_only": read_only }));
            }
            _ => {
                errors.insert(
                    "volumes".into(),
                    format!(
                        "line {}: expected name:/path/in/container (add :ro for read-only), got {line:?}",
                        number + 1
                    ),
                );
            }
        }
    }
    Value::Array(volumes)
}

/// Shell-like words into argv; they are never run through a shell.
fn argv(text: &str, field: &str, errors: &mut FieldErrors) -> Value {
    let text = text.trim();
    if text.is_empty() {
        return Value::Null;
    }
    match shlex::split(text) {
        Some(words) if !words.is_empty() => json!(words),
        _ => {
            errors.insert(field.into(), "unbalanced quotes".into());
            Value::Null
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_settings_round_trip_through_the_form() {
        let spec: AppSpec = serde_json::from_value(json!({
            "source": { "git": { "url": "https://u:p@example.com/r.git", "ref": "main" } },
            "port": 5000,
            "domains": ["a.example.com", "b.example.com"],
            "env": { "MODE": "prod", "EMPTY": "" },
            "volumes": [{ "source": "data", "target": "/data", "read_only": true }],
            "command": ["gunicorn", "app:app", "--bind", "0.0.0.0:5000"],
            "pre_deploy": { "command": ["sh", "-c", "echo migrate && true"] },
            "limits": { "memory_mb": 256, "cpus": 0.5 },
            "replicas": 2
        }))
        .unwrap();
        spec.validate().unwrap();
        let form = SettingsForm::from_spec(&spec);
        assert!(
            form.git_url.contains("****"),
            "credentials never reach the page"
        );
        let patch = form.to_patch(Some(&spec)).unwrap();
        let next = spec.merge_patch(&patch).unwrap();
        assert_eq!(next, spec, "an unchanged form changes nothing");
        let mut fewer = form.clone();
        fewer.env = "MODE=dev".into();
        let next = spec
            .merge_patch(&fewer.to_patch(Some(&spec)).unwrap())
            .unwrap();
        assert_eq!(
            next.env.len(),
            1,
            "a removed variable is gone: {:?}",
            next.env
        );
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let form = SettingsForm {
            source_kind: "image".into(),
            image: "busybox:stable".into(),
            port: "http".into(),
            health_interval: "1".into(),
            health_timeout: "x".into(),
            health_retries: "3".into(),
            health_start_period: "0".into(),
            health_deadline: "60".into(),
            env: "GOOD=1\nbad line".into(),
            volumes: "nocolon".into(),
            command: "sh -c 'unclosed".into(),
            replicas: "1".into(),
            build_type: "auto".into(),
            ..SettingsForm::default()
        };
        let errors = form.to_patch(None).unwrap_err();
        let names: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["command", "env", "health_timeout", "port", "volumes"],
            "{errors:?}"
        );
        assert!(errors["env"].contains("line 2"));
    }

    #[test]
    fn validation_messages_find_their_field() {
        assert_eq!(field_of("health.path: must start with /"), "health_path");
        assert_eq!(field_of("env.lower: not a variable name"), "env");
        assert_eq!(field_of("tls: needs at least one domain"), "domains");
        assert_eq!(field_of("something else"), "settings");
    }
}
