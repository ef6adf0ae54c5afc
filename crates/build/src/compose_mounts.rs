//! What a compose service mounts and reads from the repository: named volumes, the
//! repo's own files (baked in from the checkout, or a named volume for a data path the repo
//! lacks), secrets as files, and `env_file`s. Host paths are refused: a repository may not
//! reach outside itself.

use crate::compose_file::{
    capstan_secret_name, RepoMount, ServiceSecret, ServiceVolume, UserService,
};
use crate::compose_service::string;
use capstan_core::build_spec::check_relative_path;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// `env_file`: files inside the repo, read in order; `environment` entries win.
pub(crate) fn env_files(
    value: Option<&Value>,
    dir: &Path,
    env: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let files: Vec<(String, bool)> = match value {
        None => return Ok(()),
        Some(Value::String(s)) => vec![(s.clone(), true)],
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| match v {
                Value::Mapping(_) => Ok((
                    v.get("path")
                        .map(|p| string(p, "env_file path"))
                        .transpose()?
                        .unwrap_or_default(),
                    v.get("required").and_then(Value::as_bool).unwrap_or(true),
                )),
                other => Ok((string(other, "env_file")?, true)),
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("has an env_file that is neither a string nor a list".into()),
    };
    for (file, required) in files {
        let relative = file.trim_start_matches("./");
        check_relative_path("env_file", relative).map_err(|e| e.to_string())?;
        let path = dir.join(relative);
        let inside = path
            .canonicalize()
            .ok()
            .zip(dir.canonicalize().ok())
            .is_some_and(|(p, d)| p.starts_with(d));
        match std::fs::read_to_string(&path) {
            Ok(text) if inside => env.extend(crate::compose_vars::parse_dotenv(&text)),
            Ok(_) => return Err(format!("env_file {file:?} resolves outside the repository")),
            Err(_) if !required => {}
            Err(e) => {
                return Err(format!(
                    "env_file {file:?} cannot be read from the repository: {e}"
                ))
            }
        }
    }
    Ok(())
}

pub(crate) fn volumes(
    value: Option<&Value>,
    dir: &Path,
    out: &mut UserService,
) -> Result<(), String> {
    let items = match value {
        None => return Ok(()),
        Some(Value::Sequence(items)) => items,
        Some(_) => return Err("has volumes that are not a list".into()),
    };
    for item in items {
        let (kind, source, target, read_only) = match item {
            Value::String(short) => {
                let parts: Vec<&str> = short.split(':').collect();
                match parts.as_slice() {
                    [target] => ("anonymous", String::new(), target.to_string(), false),
                    [source, target] => ("", source.to_string(), target.to_string(), false),
                    [source, target, mode] => (
                        "",
                        source.to_string(),
                        target.to_string(),
                        mode.split(',').any(|m| m == "ro"),
                    ),
                    _ => {
                        return Err(format!(
                            "has a volume {short:?} that is not source:target[:ro]"
                        ))
                    }
                }
            }
            Value::Mapping(_) => {
                let field = |key: &str| item.get(key).map(|v| string(v, key)).transpose();
                let kind = field("type")?.unwrap_or_else(|| "volume".into());
                let kind = match kind.as_str() {
                    "volume" => "",
                    "bind" => "bind",
                    "tmpfs" => "tmpfs",
                    other => {
                        return Err(format!(
                            "has a volume of type {other:?}, which Capstan does not mount"
                        ))
                    }
                };
                (
                    kind,
                    field("source")?.unwrap_or_default(),
                    field("target")?.unwrap_or_default(),
                    item.get("read_only")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                )
            }
            _ => return Err("has a volume that is neither a string nor a mapping".into()),
        };
        if !target.starts_with('/') {
            return Err(format!(
                "mounts to {target:?}, which is not an absolute path"
            ));
        }
        if kind == "anonymous" || kind == "tmpfs" || (kind.is_empty() && source.is_empty()) {
            out.notes.push(format!(
                "the anonymous volume at {target} is not created: the image's files are used"
            ));
            continue;
        }
        let repo_path = source == "." || source.starts_with("./") || source.starts_with("../");
        if source.starts_with('/') || source.starts_with('~') || (kind == "bind" && !repo_path) {
            return Err(format!(
                "mounts the host path {source:?}: a repository may only mount its own files \
                 (./path) and named volumes"
            ));
        }
        if repo_path {
            repo_mount(dir, &source, &target, out)?;
            continue;
        }
        check_volume_name(&source)?;
        out.volumes.push(ServiceVolume {
            name: source,
            target,
            read_only,
        });
    }
    Ok(())
}

/// A mount of the repo's own files: baked read-only from the checkout when they exist; a
/// path the repo does not have is a data directory, kept as a named volume.
fn repo_mount(dir: &Path, source: &str, target: &str, out: &mut UserService) -> Result<(), String> {
    let relative = normalise(source)
        .ok_or_else(|| format!("mounts {source:?}, which leaves the repository"))?;
    let path = dir.join(&relative);
    if path.exists() {
        let inside = path
            .canonicalize()
            .ok()
            .zip(dir.canonicalize().ok())
            .is_some_and(|(p, d)| p.starts_with(d));
        if !inside {
            return Err(format!(
                "mounts {source:?}, which resolves outside the repository"
            ));
        }
        out.notes.push(format!(
            "{source} is the repository's copy, baked into the image at {target} (changes in the container are not kept)"
        ));
        out.repo_mounts.push(RepoMount {
            source: relative,
            target: target.to_string(),
        });
        return Ok(());
    }
    let name: String = relative
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    check_volume_name(&name)?;
    out.notes.push(format!(
        "{source} is not in the repository: it is the app's named volume {name:?}, kept across deploys"
    ));
    out.volumes.push(ServiceVolume {
        name,
        target: target.to_string(),
        read_only: false,
    });
    Ok(())
}

/// `./a/../b/` as `b`; `None` when it climbs out.
fn normalise(source: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(source).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => return None,
        }
    }
    Some(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn check_volume_name(name: &str) -> Result<(), String> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mounts the volume {name:?}: a volume name is letters, digits, `_`, `.` and `-`"
        ))
    }
}

pub(crate) fn service_secrets(
    value: Option<&Value>,
    declared: &BTreeMap<String, String>,
    out: &mut Vec<ServiceSecret>,
) -> Result<(), String> {
    let items = match value {
        None => return Ok(()),
        Some(Value::Sequence(items)) => items,
        Some(_) => return Err("has secrets that are not a list".into()),
    };
    for item in items {
        let (source, target) = match item {
            Value::Mapping(_) => {
                let source = item
                    .get("source")
                    .map(|v| string(v, "secret source"))
                    .transpose()?
                    .unwrap_or_default();
                let target = item
                    .get("target")
                    .map(|v| string(v, "secret target"))
                    .transpose()?
                    .unwrap_or_else(|| source.clone());
                (source, target)
            }
            other => {
                let name = string(other, "secret")?;
                (name.clone(), name)
            }
        };
        let capstan_name = declared
            .get(&source)
            .cloned()
            .unwrap_or_else(|| capstan_secret_name(&source));
        let plain_file = !target.is_empty()
            && !target.contains('/')
            && target != "."
            && target != ".."
            && target.bytes().all(|b| b.is_ascii_graphic());
        if !plain_file {
            return Err(format!(
                "mounts the secret {source:?} as {target:?}; a secret is a file name in /run/secrets"
            ));
        }
        out.push(ServiceSecret {
            capstan_name,
            target,
        });
    }
    Ok(())
}
