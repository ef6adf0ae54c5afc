//! The validation rules for app settings: what each field may hold and the message that
//! says why not. Kept apart from the types so both stay short.

use crate::app::{HealthSpec, HookCommand, Limits, VolumeSpec};
use crate::name::check_dns_label;
use crate::ValidationError;

pub(crate) fn check_no_control(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Git URLs Capstan will hand to `git clone`: network schemes, `file://` and absolute
/// paths. Never anything git could read as an option or as the `ext::` transport.
pub(crate) fn check_git_url(url: &str) -> Result<(), ValidationError> {
    let field = "source.git.url";
    check_no_control(field, url)?;
    if url.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if url.starts_with('-') {
        return Err(ValidationError::new(
            field,
            format!("{url:?} must not start with '-'"),
        ));
    }
    let allowed = ["https://", "http://", "ssh://", "git://", "file://", "/"];
    let scp_like = url.contains('@') && url.contains(':') && !url.contains("://");
    if !(allowed.iter().any(|p| url.starts_with(p)) || scp_like) {
        return Err(ValidationError::new(
            field,
            format!("{url:?} must be an https, http, ssh, git or file URL, or an absolute path"),
        ));
    }
    Ok(())
}

/// Branch, tag or commit names: what `git check-ref-format` would refuse, plus anything
/// that could be read as an option.
pub fn check_git_ref(reference: &str) -> Result<(), ValidationError> {
    let field = "ref";
    let bad = reference.is_empty()
        || reference.starts_with('-')
        || reference.contains("..")
        || reference.ends_with('/')
        || reference.ends_with(".lock")
        || reference
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        return Err(ValidationError::new(
            field,
            format!("{reference:?} is not a valid branch, tag or commit name"),
        ));
    }
    Ok(())
}

pub(crate) fn check_image_ref(image: &str) -> Result<(), ValidationError> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && !image.starts_with('-')
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
    if !ok {
        return Err(ValidationError::new(
            "source.image",
            format!("{image:?} is not a valid image reference"),
        ));
    }
    Ok(())
}

/// A host name for a Traefik `Host()` rule: dot-separated DNS labels, nothing that could
/// break out of the rule (backticks, parentheses, spaces).
pub(crate) fn check_domain(domain: &str) -> Result<(), ValidationError> {
    if domain.is_empty() || domain.len() > 253 {
        return Err(ValidationError::new(
            "domains",
            format!("{domain:?} is not a valid host name"),
        ));
    }
    for label in domain.split('.') {
        check_dns_label("domains", &label.to_ascii_lowercase()).map_err(|_| {
            ValidationError::new("domains", format!("{domain:?} is not a valid host name"))
        })?;
    }
    Ok(())
}

pub(crate) fn check_health(health: &HealthSpec) -> Result<(), ValidationError> {
    if !health.path.starts_with('/')
        || health
            .path
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ValidationError::new(
            "health.path",
            format!(
                "{:?} must start with '/' and contain no spaces",
                health.path
            ),
        ));
    }
    let in_range = |v: f64, min: f64| v.is_finite() && (min..=3600.0).contains(&v);
    if !in_range(health.interval_secs, 0.1) || !in_range(health.timeout_secs, 0.1) {
        return Err(ValidationError::new(
            "health",
            "interval_secs and timeout_secs must be between 0.1 and 3600",
        ));
    }
    if !in_range(health.start_period_secs, 0.0) {
        return Err(ValidationError::new(
            "health.start_period_secs",
            "must be between 0 and 3600",
        ));
    }
    if health.retries == 0 {
        return Err(ValidationError::new("health.retries", "must be at least 1"));
    }
    if health.deadline_secs == 0 || health.deadline_secs > 3600 {
        return Err(ValidationError::new(
            "health.deadline_secs",
            "must be between 1 and 3600",
        ));
    }
    Ok(())
}

pub(crate) fn check_volumes(volumes: &[VolumeSpec]) -> Result<(), ValidationError> {
    let mut targets = std::collections::HashSet::new();
    for volume in volumes {
        let bad_path = |p: &str| {
            !p.starts_with('/')
                || p.split('/').any(|part| part == "..")
                || p.chars().any(|c| c.is_control() || c == ':' || c == ',')
        };
        if bad_path(&volume.target)
            || volume.target == "/"
            || volume.target.starts_with("/.capstan")
        {
            return Err(ValidationError::new(
                "volumes.target",
                format!(
                    "{:?} must be an absolute path inside the container (not / or /.capstan)",
                    volume.target
                ),
            ));
        }
        if volume.is_host_path() {
            if bad_path(&volume.source) || volume.source == "/" {
                return Err(ValidationError::new(
                    "volumes.source",
                    format!("{:?} is not a usable host path", volume.source),
                ));
            }
        } else {
            check_dns_label("volumes.source", &volume.source)?;
        }
        if !targets.insert(volume.target.as_str()) {
            return Err(ValidationError::new(
                "volumes.target",
                format!("{:?} is mounted twice", volume.target),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_hook(field: &str, hook: &HookCommand) -> Result<(), ValidationError> {
    if hook.command.is_empty() || hook.command[0].is_empty() {
        return Err(ValidationError::new(
            field,
            "command must name a program (argv, no shell string)",
        ));
    }
    if hook.command.iter().any(|a| a.contains('\0')) {
        return Err(ValidationError::new(
            field,
            "command must not contain NUL bytes",
        ));
    }
    if hook.timeout_secs == 0 || hook.timeout_secs > 3600 {
        return Err(ValidationError::new(
            field,
            "timeout_secs must be between 1 and 3600",
        ));
    }
    Ok(())
}

pub(crate) fn check_limits(limits: &Limits) -> Result<(), ValidationError> {
    if let Some(memory) = limits.memory_mb {
        if !(6..=1_048_576).contains(&memory) {
            return Err(ValidationError::new(
                "limits.memory_mb",
                "must be between 6 and 1048576 MiB",
            ));
        }
    }
    if let Some(cpus) = limits.cpus {
        if !(cpus.is_finite() && (0.01..=1024.0).contains(&cpus)) {
            return Err(ValidationError::new(
                "limits.cpus",
                "must be between 0.01 and 1024 cores",
            ));
        }
    }
    Ok(())
}

pub fn check_env_key(key: &str) -> Result<(), ValidationError> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ValidationError::new(
            "env",
            format!("{key:?} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"),
        ));
    }
    Ok(())
}

/// A path inside the source tree: relative, and never climbing out of it.
pub fn check_relative_path(field: &str, path: &str) -> Result<(), ValidationError> {
    check_no_control(field, path)?;
    let escapes = path.starts_with('/')
        || path.is_empty()
        || path.split(['/', '\\']).any(|part| part == "..");
    if escapes {
        return Err(ValidationError::new(
            field,
            format!("{path:?} must be a relative path inside the source"),
        ));
    }
    Ok(())
}
