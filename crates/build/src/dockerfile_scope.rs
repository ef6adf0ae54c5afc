//! A Dockerfile made one app's own for a BuildKit build: cache mount ids scoped to the
//! app, build secrets read from their mounts, and secret-mounting steps stamped so the
//! layer cache follows the secrets. Applied at build time, when the secrets are known.

use crate::dockerfile_compat::{render, split_instructions, Compatible};
use crate::BuildError;
use std::collections::{BTreeMap, BTreeSet};

/// Prepares a Dockerfile for one app's BuildKit build:
///
/// - every `RUN --mount=type=cache` gets an id scoped to `scope` (the app): BuildKit's
///   cache mounts are shared by id across every build on the engine, so without it one
///   app's build could read or poison another's cache;
/// - build secrets are secret mounts, never build arguments (which the image's history
///   keeps). A Dockerfile that reads one as `ARG NAME` still gets its value: each
///   shell-form `RUN` after that `ARG` in the stage mounts the secret and sets `NAME` from
///   it for that command only;
/// - a shell-form `RUN` that mounts a secret starts with `: build-secrets=<stamp>;`:
///   BuildKit's layer cache does not look at secret values, so without it a step would
///   not rerun when a secret changes, and another app with the same step would get this
///   app's result. `stamp` is a digest of the app and its build secrets' values.
///
/// Returns the rewritten text and notes, or `None` when nothing needed a change.
pub fn scope_for_app(
    text: &str,
    file: &str,
    secrets: &[String],
    scope: &str,
    stamp: &str,
) -> Result<Option<Compatible>, BuildError> {
    let refuse =
        |line: usize, what: &str| BuildError::Source(format!("{file} line {line}: {what}"));
    let mut instructions = split_instructions(text, &refuse)?;
    let mut in_scope: Vec<String> = Vec::new();
    let mut read: BTreeSet<String> = BTreeSet::new();
    let mut scoped_caches = 0;
    let mut stamped = false;
    let mut notes = Vec::new();
    for inst in &mut instructions {
        match inst.keyword().as_str() {
            "FROM" => in_scope.clear(),
            "ARG" => {
                for word in inst.text.split_whitespace().skip(1) {
                    let name = word.split('=').next().unwrap_or_default();
                    if secrets.iter().any(|s| s == name) && !in_scope.iter().any(|s| s == name) {
                        in_scope.push(name.to_string());
                    }
                }
            }
            "RUN" => {
                let body = inst.text[3..].trim_start();
                let flags_end = body
                    .split(' ')
                    .take_while(|w| w.starts_with("--"))
                    .map(|w| w.len() + 1)
                    .sum::<usize>()
                    .min(body.len());
                let (flags, command) = body.split_at(flags_end);
                let flags: Vec<String> = flags
                    .split(' ')
                    .filter(|f| !f.is_empty())
                    .map(|f| match scoped_cache_mount(f, scope) {
                        Some(scoped) => {
                            scoped_caches += 1;
                            scoped
                        }
                        None => f.to_string(),
                    })
                    .collect();
                let mut text = String::from("RUN ");
                let mut prefix = String::new();
                if !in_scope.is_empty() && command.trim_start().starts_with('[') {
                    notes.push(format!(
                        "line {}: an exec-form RUN does not see the build secrets {} (write it in shell form)",
                        inst.line,
                        in_scope.join(", ")
                    ));
                } else {
                    for name in &in_scope {
                        let mounted = flags.iter().any(|f| {
                            f.starts_with("--mount=")
                                && f.contains("type=secret")
                                && f.split([',', '=']).any(|p| p == name.as_str())
                        });
                        if !mounted {
                            text.push_str(&format!("--mount=type=secret,id={name} "));
                        }
                        prefix.push_str(&format!(
                            "{name}=\"$(cat /run/secrets/{name} 2>/dev/null)\"; export {name}; "
                        ));
                        read.insert(name.clone());
                    }
                }
                for flag in &flags {
                    text.push_str(flag);
                    text.push(' ');
                }
                let mounts_secret = text.contains("type=secret");
                if mounts_secret && !command.trim_start().starts_with('[') {
                    text.push_str(&format!(": build-secrets={stamp}; "));
                    stamped = true;
                }
                text.push_str(&prefix);
                text.push_str(command.trim_start());
                inst.text = text;
            }
            _ => {}
        }
    }
    if read.is_empty() && notes.is_empty() && scoped_caches == 0 && !stamped {
        return Ok(None);
    }
    for name in &read {
        notes.push(format!(
            "build secret {name} is a BuildKit secret mount; each RUN after `ARG {name}` reads it from /run/secrets/{name}, so the image's history never holds it"
        ));
    }
    if scoped_caches > 0 {
        notes.push(format!(
            "{scoped_caches} cache mount(s) kept apart from other apps' builds (id prefixed with {scope}/)"
        ));
    }
    Ok(Some(Compatible {
        text: render(&instructions, String::new()),
        build_args: BTreeMap::new(),
        notes,
    }))
}

/// `--mount=type=cache,...` with its id (the target when it has none) prefixed by `scope`.
fn scoped_cache_mount(flag: &str, scope: &str) -> Option<String> {
    let spec = flag.strip_prefix("--mount=")?;
    let parts: Vec<&str> = spec.split(',').collect();
    if !parts.contains(&"type=cache") {
        return None;
    }
    let value = |key: &str| {
        parts
            .iter()
            .find_map(|p| p.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let id = value("id")
        .or_else(|| value("target"))
        .or_else(|| value("dst"))?;
    let mut out: Vec<String> = parts
        .iter()
        .filter(|p| !p.starts_with("id="))
        .map(|p| p.to_string())
        .collect();
    out.push(format!("id={scope}/{}", id.trim_start_matches('/')));
    Some(format!("--mount={}", out.join(",")))
}

/// Whether `reference` names an image of this Capstan instance (`<instance>/...`) that
/// is not the app's own (`<instance>/<app>` and its companions): a build or a compose
/// service of one app must not read another app's image. `scope` is `<instance>/<app>`.
pub fn is_foreign_image(reference: &str, scope: &str) -> bool {
    let reference = reference.trim().to_ascii_lowercase();
    let reference = ["docker.io/", "index.docker.io/"]
        .iter()
        .find_map(|p| reference.strip_prefix(p))
        .unwrap_or(&reference)
        .to_string();
    let scope = scope.to_ascii_lowercase();
    let Some((instance, _)) = scope.split_once('/') else {
        return false;
    };
    let repository = reference
        .split('@')
        .next()
        .unwrap_or_default()
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(reference.as_str(), |(repo, _)| repo)
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string();
    repository.starts_with(&format!("{instance}/"))
        && repository != scope
        && !repository.starts_with(&format!("{scope}/"))
}

/// Refuses a Dockerfile that builds from, copies from or mounts another app's image (see
/// [`is_foreign_image`]): in `FROM`, `COPY --from=`, `RUN --mount=...,from=` and in `ARG`
/// defaults (which `FROM ${BASE}` may use).
pub fn refuse_foreign_images(text: &str, file: &str, scope: &str) -> Result<(), BuildError> {
    let refuse =
        |line: usize, what: &str| BuildError::Source(format!("{file} line {line}: {what}"));
    for inst in split_instructions(text, &refuse)? {
        let keyword = inst.keyword();
        let mut references: Vec<String> = Vec::new();
        let words: Vec<&str> = inst.text.split_whitespace().skip(1).collect();
        match keyword.as_str() {
            "FROM" => references.extend(
                words
                    .iter()
                    .find(|w| !w.starts_with("--"))
                    .map(|w| w.to_string()),
            ),
            "ARG" => references.extend(words.iter().filter_map(|w| {
                w.split_once('=')
                    .map(|(_, v)| v.trim_matches('"').to_string())
            })),
            _ => {}
        }
        for word in words.iter().take_while(|w| w.starts_with("--")) {
            let lower = word.to_ascii_lowercase();
            if let Some(from) = lower.strip_prefix("--from=") {
                references.push(from.to_string());
            }
            if let Some(mount) = lower.strip_prefix("--mount=") {
                references.extend(
                    mount
                        .split(',')
                        .filter_map(|p| p.strip_prefix("from="))
                        .map(str::to_string),
                );
            }
        }
        if let Some(reference) = references.iter().find(|r| is_foreign_image(r, scope)) {
            return Err(refuse(
                inst.line,
                &format!(
                    "{reference} is another app's image; a build may use public images, its \
                     own stages and its own app's images only"
                ),
            ));
        }
    }
    Ok(())
}
