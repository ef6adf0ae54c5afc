//! The validation rules for app settings: what each field may hold and the message that
//! says why not. Kept apart from the types so both stay short.

use crate::app::{HealthSpec, HookCommand, Limits, VolumeSpec};
use crate::name::check_dns_label;
use crate::ValidationError;

/// Caps on what the API stores, so no field can grow the database or a log without bound.
pub mod limits {
    pub const URL: usize = 2048;
    pub const GIT_REF: usize = 255;
    pub const PATH: usize = 4096;
    pub const ENV_KEY: usize = 255;
    pub const ENV_VALUE: usize = 32 * 1024;
    pub const ENV_ENTRIES: usize = 1000;
    pub const DOMAINS: usize = 100;
    pub const VOLUMES: usize = 100;
    pub const ARGV_ITEMS: usize = 256;
    pub const ARGV_BYTES: usize = 64 * 1024;
    pub const WATCH_PATHS: usize = 100;
}

/// `value` is at most `max` bytes long.
pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes long; at most {max} are allowed", value.len()),
        ));
    }
    Ok(())
}

/// `count` items at most `max`.
pub(crate) fn check_count(field: &str, count: usize, max: usize) -> Result<(), ValidationError> {
    if count > max {
        return Err(ValidationError::new(
            field,
            format!("has {count} entries; at most {max} are allowed"),
        ));
    }
    Ok(())
}

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
    check_len(field, url, limits::URL)?;
    check_no_control(field, url)?;
    if url.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if url.starts_with('-') {
        return Err(ValidationError::new(
            field,
            format!(
                "{:?} must not start with '-'",
                crate::redact::redact_url(url)
            ),
        ));
    }
    let allowed = ["https://", "http://", "ssh://", "git://", "file://", "/"];
    if !(allowed.iter().any(|p| url.starts_with(p)) || is_scp_like(url)) {
        return Err(ValidationError::new(
            field,
            format!(
                "{:?} must be an https, http, ssh, git or file URL, or an absolute path",
                crate::redact::redact_url(url)
            ),
        ));
    }
    Ok(())
}

/// Real scp-like syntax, `[user@]host:path`: a user of `[A-Za-z0-9._-]`, a host name, a
/// path that is not empty and cannot be read as an option. Never git's
/// `transport::address` remote-helper form (`ext::…`, `fd::…`).
fn is_scp_like(url: &str) -> bool {
    let Some((authority, path)) = url.split_once(':') else {
        return false;
    };
    let (user, host) = match authority.split_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let user_ok = user.is_none_or(|u| {
        !u.is_empty()
            && u.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    });
    let host_ok = !host.is_empty()
        && !host.starts_with(['-', '.'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
    let path_ok = !path.is_empty()
        && !path.starts_with([':', '-'])
        && !path.contains("::")
        && !path.chars().any(char::is_whitespace);
    user.is_some() && user_ok && host_ok && path_ok
}

/// Branch, tag or commit names: what `git check-ref-format` would refuse, plus anything
/// that could be read as an option.
pub fn check_git_ref(reference: &str) -> Result<(), ValidationError> {
    let field = "ref";
    check_len(field, reference, limits::GIT_REF)?;
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
    check_len("health.path", &health.path, limits::PATH)?;
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
    for (field, value) in [
        ("health.interval_secs", health.interval_secs),
        ("health.timeout_secs", health.timeout_secs),
    ] {
        if !in_range(value, 0.1) {
            return Err(ValidationError::new(
                field,
                "must be between 0.1 and 3600 seconds",
            ));
        }
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
    check_count("volumes", volumes.len(), limits::VOLUMES)?;
    let mut targets = std::collections::HashSet::new();
    for volume in volumes {
        check_len("volumes.source", &volume.source, limits::PATH)?;
        check_len("volumes.target", &volume.target, limits::PATH)?;
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
    check_argv(field, &hook.command)?;
    if hook.timeout_secs == 0 || hook.timeout_secs > 3600 {
        return Err(ValidationError::new(
            field,
            "timeout_secs must be between 1 and 3600",
        ));
    }
    Ok(())
}

/// A command as argv: a program, bounded in size, no NUL bytes.
pub(crate) fn check_argv(field: &str, argv: &[String]) -> Result<(), ValidationError> {
    if argv.first().is_none_or(String::is_empty) {
        return Err(ValidationError::new(
            field,
            "command must name a program (argv, no shell string)",
        ));
    }
    check_count(field, argv.len(), limits::ARGV_ITEMS)?;
    let bytes: usize = argv.iter().map(String::len).sum();
    if bytes > limits::ARGV_BYTES {
        return Err(ValidationError::new(
            field,
            format!(
                "command is {bytes} bytes long; at most {} are allowed",
                limits::ARGV_BYTES
            ),
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(ValidationError::new(
            field,
            "command must not contain NUL bytes",
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
    check_len("env", key, limits::ENV_KEY)?;
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ValidationError::new(
            "env",
            format!(
                "{key:?} is not a variable name: use letters, digits and _, and do not start with a digit"
            ),
        ));
    }
    Ok(())
}

/// A path inside the source tree: relative, and never climbing out of it.
pub fn check_relative_path(field: &str, path: &str) -> Result<(), ValidationError> {
    check_len(field, path, limits::PATH)?;
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

/// A host path with `.`, `..` and repeated `/` resolved lexically (`/./..` and `//` are
/// `/`). Symlinks are the caller's to resolve (this is pure).
pub fn normalize_host_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether `a` is `b` or a directory above or below it (both normalized).
fn overlaps(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        inner == outer || outer == "/" || inner.starts_with(&format!("{outer}/"))
    };
    within(a, b) || within(b, a)
}

/// A host path an app may mount: never `/` in any spelling, and never one of `protected`
/// (the daemon's data dir, the Docker socket, ...), a directory inside one, or a directory
/// that contains one. `field` names the setting in the error.
pub fn check_host_path(
    field: &str,
    path: &str,
    protected: &[String],
) -> Result<(), ValidationError> {
    let normalized = normalize_host_path(path);
    if normalized == "/" {
        return Err(ValidationError::new(
            field,
            format!("{path:?} is the host's root directory, which is never mounted"),
        ));
    }
    for guarded in protected {
        let guarded = normalize_host_path(guarded);
        if overlaps(&normalized, &guarded) {
            return Err(ValidationError::new(
                field,
                format!("{path:?} overlaps {guarded}, which Capstan never mounts into an app"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod host_path_tests {
    use super::*;

    #[test]
    fn root_in_any_spelling_is_refused() {
        for root in ["/", "/.", "//", "/./..", "/../../", "/a/..", "///./"] {
            assert!(
                check_host_path("volumes.source", root, &[]).is_err(),
                "{root}"
            );
        }
    }

    #[test]
    fn protected_paths_their_parents_and_children_are_refused() {
        let protected = vec![
            "/var/lib/capstan".to_string(),
            "/var/run/docker.sock".into(),
        ];
        for bad in [
            "/var/lib/capstan",
            "/var/lib/capstan/",
            "/var/lib/./capstan/secret.key",
            "/var/lib",
            "/var",
            "/var/run/docker.sock",
            "/var/run//docker.sock",
            "/var/run",
            "/srv/../var/lib/capstan",
        ] {
            let err = check_host_path("volumes.source", bad, &protected).unwrap_err();
            assert_eq!(err.field, "volumes.source", "{bad}");
        }
        for ok in ["/srv/data", "/var/lib/capstan-other", "/var/runx"] {
            assert!(
                check_host_path("volumes.source", ok, &protected).is_ok(),
                "{ok}"
            );
        }
    }
}
