//! A Dockerfile made one app's own for a BuildKit build: cache mount ids scoped to the
//! app, build secrets read from their mounts, and secret-mounting steps stamped so the
//! layer cache follows the secrets. Applied at build time, when the secrets are known.

use crate::dockerfile_compat::{render, run_text, split_instructions, Compatible, Instruction};
use crate::dockerfile_lines::split_keyword;
use crate::run_flags::{split_flags, Flag, Mount};
use crate::BuildError;
use std::collections::{BTreeMap, BTreeSet};

/// Prepares a Dockerfile for one app's BuildKit build:
///
/// - every `RUN --mount=type=cache` gets an id scoped to `scope` (the app): BuildKit's
///   cache mounts are shared by id across every build on the engine, so without it one
///   app's build could read or poison another's cache. Mounts are read as BuildKit reads
///   them (`run_flags`: any case, quoting, aliases; no id means the target is the id), and
///   one whose type comes from a variable is refused;
/// - build secrets are secret mounts, never build arguments (which the image's history
///   keeps). A Dockerfile that reads one as `ARG NAME` still gets its value: each
///   shell-form `RUN` after that `ARG` in the stage mounts the secret and sets `NAME` from
///   it for that command only;
/// - a shell-form `RUN` that mounts a secret starts with `: build-secrets=<stamp>;`:
///   BuildKit's layer cache does not look at secret values, so without it a step would
///   not rerun when a secret changes, and another app with the same step would get this
///   app's result. `stamp` is a keyed digest of the app and its build secrets' values. An
///   exec-form `RUN` cannot carry it, so one that mounts a secret is refused.
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
    let mut state = Scoping {
        scope,
        stamp,
        in_scope: Vec::new(),
        read: BTreeSet::new(),
        scoped_caches: 0,
        notes: Vec::new(),
    };
    let mut changed = false;
    for inst in &mut instructions {
        match inst.keyword().as_str() {
            "FROM" => state.in_scope.clear(),
            "ARG" => {
                let logical = inst.logical();
                for word in split_keyword(&logical).1.split_whitespace() {
                    let name = word.split('=').next().unwrap_or_default();
                    if secrets.iter().any(|s| s == name)
                        && !state.in_scope.iter().any(|s| s == name)
                    {
                        state.in_scope.push(name.to_string());
                    }
                }
            }
            "RUN" => changed |= state.scope_run(inst, &refuse)?,
            "ONBUILD" => changed |= state.scope_onbuild(inst, &refuse)?,
            _ => {}
        }
    }
    if !changed && state.notes.is_empty() {
        return Ok(None);
    }
    let mut notes = state.notes;
    for name in &state.read {
        notes.push(format!(
            "build secret {name} is a BuildKit secret mount; each RUN after `ARG {name}` reads it from /run/secrets/{name}, so the image's history never holds it"
        ));
    }
    if state.scoped_caches > 0 {
        notes.push(format!(
            "{} cache mount(s) kept apart from other apps' builds (id prefixed with {scope}/)",
            state.scoped_caches
        ));
    }
    Ok(Some(Compatible {
        text: render(&instructions, String::new()),
        build_args: BTreeMap::new(),
        notes,
    }))
}

/// What scoping has found so far in the Dockerfile.
struct Scoping<'a> {
    scope: &'a str,
    stamp: &'a str,
    /// Build secrets declared by `ARG` in the current stage.
    in_scope: Vec<String>,
    /// Build secrets some step reads from their mount.
    read: BTreeSet<String>,
    scoped_caches: usize,
    notes: Vec<String>,
}

type Refuse<'r> = &'r dyn Fn(usize, &str) -> BuildError;

/// A `RUN`'s flags with its cache mounts scoped: whether any was, and its secret mounts.
struct ScopedMounts {
    kept: Vec<Flag>,
    scoped: bool,
    secret_mounts: Vec<(String, String)>,
}

impl Scoping<'_> {
    /// Scopes one `RUN` (see [`scope_for_app`]); whether its text changed.
    fn scope_run(&mut self, inst: &mut Instruction, refuse: Refuse) -> Result<bool, BuildError> {
        let line = inst.line;
        if inst.heredoc.is_some() {
            return Err(refuse(
                line,
                "a RUN heredoc the engine's BuildKit cannot run",
            ));
        }
        let logical = inst.logical();
        let (flags, command) = split_flags(split_keyword(&logical).1)
            .map_err(|e| refuse(line, &format!("RUN flags ({e})")))?;
        let command = command.trim_start();
        let exec_form = serde_json::from_str::<Vec<String>>(command).is_ok();
        let ScopedMounts {
            kept,
            scoped,
            mut secret_mounts,
        } = self.scope_mounts(flags, line, refuse)?;
        let mut added: Vec<Flag> = Vec::new();
        let mut prefix = String::new();
        if !self.in_scope.is_empty() && exec_form {
            self.notes.push(format!(
                "line {line}: an exec-form RUN does not see the build secrets {} (write it in shell form)",
                self.in_scope.join(", ")
            ));
        } else {
            for name in &self.in_scope {
                let target = format!("/run/secrets/{name}");
                if !secret_mounts
                    .iter()
                    .any(|(id, t)| id == name && *t == target)
                {
                    added.push(Mount::secret_flag(name));
                    secret_mounts.push((name.clone(), target));
                }
                prefix.push_str(&format!(
                    "{name}=\"$(cat /run/secrets/{name} 2>/dev/null)\"; export {name}; "
                ));
                self.read.insert(name.clone());
            }
        }
        let stamped = !secret_mounts.is_empty();
        if stamped && exec_form {
            return Err(refuse(
                line,
                "an exec-form RUN that mounts a build secret: BuildKit's layer cache would not \
                 follow the secret's value (write it in shell form)",
            ));
        }
        if !scoped && !stamped {
            return Ok(false);
        }
        added.extend(kept);
        let mut command_text = String::new();
        if stamped {
            command_text.push_str(&format!(": build-secrets={}; ", self.stamp));
        }
        command_text.push_str(&prefix);
        command_text.push_str(command);
        inst.text = run_text(&added, &command_text);
        Ok(true)
    }

    /// Scopes the cache mounts among a `RUN`'s flags and collects its secret mounts (id,
    /// target); a mount whose type comes from a variable is refused.
    fn scope_mounts(
        &mut self,
        flags: Vec<Flag>,
        line: usize,
        refuse: Refuse,
    ) -> Result<ScopedMounts, BuildError> {
        let mut scoped = false;
        let mut secret_mounts: Vec<(String, String)> = Vec::new();
        let mut kept: Vec<Flag> = Vec::with_capacity(flags.len());
        for flag in flags {
            if flag.name != "mount" {
                kept.push(flag);
                continue;
            }
            let value = flag.value.clone().unwrap_or_default();
            let mount = Mount::parse(&value)
                .map_err(|e| refuse(line, &format!("RUN --mount={value} ({e})")))?;
            match mount.kind().as_str() {
                kind if kind.contains('$') => {
                    return Err(refuse(
                        line,
                        &format!("RUN --mount={value}: a mount type taken from a variable"),
                    ));
                }
                "cache" => {
                    // BuildKit's own default id is the target.
                    let id = mount.id().filter(|id| !id.is_empty()).or(mount.target());
                    let id = id.unwrap_or_default().trim_start_matches('/');
                    kept.push(mount.with_id(&format!("{}/{id}", self.scope)).flag());
                    self.scoped_caches += 1;
                    scoped = true;
                }
                "secret" => {
                    secret_mounts.extend(mount.secret());
                    kept.push(flag);
                }
                _ => kept.push(flag),
            }
        }
        Ok(ScopedMounts {
            kept,
            scoped,
            secret_mounts,
        })
    }

    /// `ONBUILD RUN ...` runs in a build that starts from this stage or image: its mounts
    /// are scoped the same way (no build secret is read into it).
    fn scope_onbuild(
        &mut self,
        inst: &mut Instruction,
        refuse: Refuse,
    ) -> Result<bool, BuildError> {
        let logical = inst.logical();
        let mut inner = Instruction {
            line: inst.line,
            text: split_keyword(&logical).1.to_string(),
            heredoc: None,
            escape: inst.escape,
        };
        if inner.keyword() != "RUN" {
            return Ok(false);
        }
        let in_scope = std::mem::take(&mut self.in_scope);
        let changed = self.scope_run(&mut inner, refuse);
        self.in_scope = in_scope;
        if changed? {
            inst.text = format!("ONBUILD {}", inner.text);
            return Ok(true);
        }
        Ok(false)
    }
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
/// [`is_foreign_image`]): in `FROM`, `COPY --from=`, `RUN --mount=...,from=` (flags and
/// mount options read as BuildKit reads them, in any spelling), in `ARG` defaults (which
/// `FROM ${BASE}` may use) and in `ONBUILD` triggers. Quotes and escapes, which BuildKit
/// removes before it resolves a name, are removed before the check.
pub fn refuse_foreign_images(text: &str, file: &str, scope: &str) -> Result<(), BuildError> {
    refuse_foreign_images_with_args(text, file, scope, &BTreeMap::new())
}

/// [`refuse_foreign_images`] for a build given `args`: no argument's value may name
/// another app's image, and a `FROM` that names its image through arguments
/// (`FROM ${REGISTRY}${NAME}`) is checked with the values it would get (the build's
/// arguments, else the `ARG` defaults).
pub fn refuse_foreign_images_with_args(
    text: &str,
    file: &str,
    scope: &str,
    args: &BTreeMap<String, String>,
) -> Result<(), BuildError> {
    if let Some((name, value)) = args.iter().find(|(_, v)| is_foreign_image(v, scope)) {
        return Err(BuildError::Source(format!(
            "build argument {name}: {value} is another app's image; a build may use public \
             images, its own stages and its own app's images only"
        )));
    }
    let refuse =
        |line: usize, what: &str| BuildError::Source(format!("{file} line {line}: {what}"));
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for inst in split_instructions(text, &refuse)? {
        let logical = inst.logical();
        let mut references =
            image_references(&logical).map_err(|e| refuse(inst.line, &format!("flags ({e})")))?;
        let (keyword, rest) = split_keyword(&logical);
        match keyword.to_ascii_uppercase().as_str() {
            "ARG" => {
                for word in rest.split_whitespace() {
                    let (name, default) = word.split_once('=').unwrap_or((word, ""));
                    let value = match args.get(name) {
                        Some(given) => given.clone(),
                        None => expand(default.trim_matches(['"', '\'']), &values),
                    };
                    references.push(value.clone());
                    values.insert(name.to_string(), value);
                }
            }
            "FROM" => {
                references = references.iter().map(|r| expand(r, &values)).collect();
            }
            _ => {}
        }
        let unquoted = |r: &str| r.replace(['"', '\'', '\\', inst.escape], "");
        if let Some(reference) = references
            .iter()
            .map(|r| unquoted(r))
            .find(|r| is_foreign_image(r, scope))
        {
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

/// `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}` in
/// `word` replaced as BuildKit's shell lexer would, with `values` (an unknown name is
/// empty).
fn expand(word: &str, values: &BTreeMap<String, String>) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                out.push_str(&rest[at..]);
                return out;
            };
            let inner = &braced[..end];
            let name_end = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
            let (name, modifier) = inner.split_at(name_end);
            let value = values.get(name).map(String::as_str);
            let chosen = match (modifier.chars().next(), modifier.get(1..)) {
                (Some(':'), Some(m)) if m.starts_with('-') => value
                    .filter(|v| !v.is_empty())
                    .map_or_else(|| expand(&m[1..], values), str::to_string),
                (Some(':'), Some(m)) if m.starts_with('+') => value
                    .filter(|v| !v.is_empty())
                    .map_or(String::new(), |_| expand(&m[1..], values)),
                (Some('-'), Some(m)) => value.map_or_else(|| expand(m, values), str::to_string),
                (Some('+'), Some(m)) => value.map_or(String::new(), |_| expand(m, values)),
                _ => value.unwrap_or_default().to_string(),
            };
            out.push_str(&chosen);
            rest = &braced[end + 1..];
        } else {
            let name_end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            out.push_str(values.get(&after[..name_end]).map_or("", String::as_str));
            rest = &after[name_end..];
        }
    }
    out.push_str(rest);
    out
}

/// Every image (or stage) name an instruction's logical line may use.
fn image_references(logical: &str) -> Result<Vec<String>, crate::run_flags::FlagError> {
    let (keyword, args) = split_keyword(logical);
    let (flags, rest) = split_flags(args)?;
    let mut references: Vec<String> = Vec::new();
    match keyword.to_ascii_uppercase().as_str() {
        "FROM" => references.extend(rest.split_whitespace().next().map(str::to_string)),
        "ONBUILD" => references.extend(image_references(rest.trim())?),
        _ => {}
    }
    for flag in flags {
        let value = flag.value.unwrap_or_default();
        if flag.name.eq_ignore_ascii_case("from") {
            references.push(value);
        } else if flag.name.eq_ignore_ascii_case("mount") {
            references.extend(Mount::parse(&value)?.from().map(str::to_string));
        }
    }
    Ok(references)
}
