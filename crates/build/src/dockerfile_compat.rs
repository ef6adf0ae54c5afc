//! Dockerfiles made to build on the engine's builder, or refused at once with the line
//! named rather than after minutes of building. On BuildKit (engine 20.10's own Dockerfile
//! frontend: no `# syntax=` image can be had offline) only what that frontend lacks is
//! lowered: `RUN <<EOF` heredocs, `COPY --link`, `RUN --network=default`. On the classic
//! builder, everything BuildKit-only:
//!
//! - only the stages the target needs are kept (BuildKit skips the others; the classic
//!   builder would build a failing `test` stage too);
//! - `BUILDPLATFORM`, `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH` (and the build ones) are
//!   declared and given, as BuildKit does;
//! - `RUN --mount=type=cache` runs without the cache (slower, same result);
//! - `RUN <<EOF` heredocs run as `/bin/sh -c` scripts;
//! - what cannot be done without BuildKit (secret, ssh and bind mounts, `COPY <<EOF`,
//!   `--chmod`, `--link`, heredocs with a `#!` line, ...) fails naming the line.

use crate::BuildError;
use std::collections::{BTreeMap, BTreeSet};

/// The result: the Dockerfile to build, the build arguments it needs, and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatible {
    pub text: String,
    pub build_args: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

/// One instruction: its first line number, its text (continuations joined with their
/// newlines kept), and a heredoc body if it has one.
#[derive(Debug, Clone)]
struct Instruction {
    line: usize,
    text: String,
    heredoc: Option<(String, String)>,
}

impl Instruction {
    fn keyword(&self) -> String {
        self.text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase()
    }
}

const PLATFORM_ARGS: [&str; 8] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// The engine host's platform as Docker spells it (`linux/amd64`): os and arch.
fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    };
    ("linux", arch)
}

/// The engine builder a Dockerfile is made ready for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuilderKind {
    #[default]
    BuildKit,
    Classic,
}

/// Makes `text` (the Dockerfile `file`) build on the classic builder for `target`.
pub fn for_classic_builder(
    text: &str,
    file: &str,
    target: Option<&str>,
) -> Result<Compatible, BuildError> {
    for_builder(text, file, target, BuilderKind::Classic)
}

/// Makes `text` (the Dockerfile `file`) build on `builder` for `target`.
pub fn for_builder(
    text: &str,
    file: &str,
    target: Option<&str>,
    builder: BuilderKind,
) -> Result<Compatible, BuildError> {
    let refuse = |line: usize, what: &str| {
        BuildError::Source(match builder {
            BuilderKind::Classic => format!(
                "{file} line {line}: {what} needs BuildKit, which this engine does not offer to \
                 Capstan's builds; write it without, or build the image elsewhere and deploy the image"
            ),
            BuilderKind::BuildKit => format!(
                "{file} line {line}: {what} is not supported by the engine's BuildKit \
                 Dockerfile frontend (and a `# syntax=` frontend image cannot be used); write \
                 it without, or build the image elsewhere and deploy the image"
            ),
        })
    };
    let instructions = split_instructions(text, &refuse)?;
    let mut notes = Vec::new();
    if text.lines().next().is_some_and(|l| {
        let l = l.trim_start_matches('#').trim().to_ascii_lowercase();
        text.starts_with('#') && l.starts_with("syntax")
    }) {
        notes.push(
            "the `# syntax=` line is not used: the engine's own Dockerfile frontend builds".into(),
        );
    }
    let mut out: Vec<Instruction> = Vec::new();
    for mut inst in instructions {
        match inst.keyword().as_str() {
            "RUN" => lower_run(&mut inst, builder, &mut notes, &refuse)?,
            "COPY" | "ADD" => check_copy(&mut inst, builder, &mut notes, &refuse)?,
            _ => {}
        }
        out.push(inst);
    }
    if builder == BuilderKind::BuildKit {
        // BuildKit skips unneeded stages and sets the platform arguments itself.
        return Ok(Compatible {
            text: render(&out, String::new()),
            build_args: BTreeMap::new(),
            notes,
        });
    }
    let out = prune_stages(out, target, &mut notes)?;
    // Platform arguments: declared at the top (for FROM lines) and given as build args.
    let used: Vec<&str> = PLATFORM_ARGS
        .into_iter()
        .filter(|a| {
            out.iter()
                .any(|i| i.text.contains(&format!("${a}")) || i.text.contains(&format!("${{{a}")))
        })
        .collect();
    let (os, arch) = host_platform();
    let values = BTreeMap::from([
        ("BUILDPLATFORM".to_string(), format!("{os}/{arch}")),
        ("BUILDOS".to_string(), os.to_string()),
        ("BUILDARCH".to_string(), arch.to_string()),
        ("BUILDVARIANT".to_string(), String::new()),
        ("TARGETPLATFORM".to_string(), format!("{os}/{arch}")),
        ("TARGETOS".to_string(), os.to_string()),
        ("TARGETARCH".to_string(), arch.to_string()),
        ("TARGETVARIANT".to_string(), String::new()),
    ]);
    let mut build_args = BTreeMap::new();
    let mut header = String::new();
    if !used.is_empty() {
        for arg in &used {
            header.push_str(&format!("ARG {arg}={}\n", values[*arg]));
            build_args.insert(arg.to_string(), values[*arg].clone());
        }
        notes.push(format!(
            "platform arguments given as BuildKit would: {}",
            used.iter()
                .map(|a| format!("{a}={}", values[*a]))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Compatible {
        text: render(&out, header),
        build_args,
        notes,
    })
}

fn render(instructions: &[Instruction], header: String) -> String {
    let mut rendered = header;
    for inst in instructions {
        rendered.push_str(&inst.text);
        rendered.push('\n');
        if let Some((marker, body)) = &inst.heredoc {
            rendered.push_str(body);
            rendered.push_str(marker);
            rendered.push('\n');
        }
    }
    rendered
}

/// Splits the file into instructions, joining `\` continuations and collecting heredoc
/// bodies; comments and blank lines are dropped (the classic builder ignores them too).
fn split_instructions(
    text: &str,
    refuse: &dyn Fn(usize, &str) -> BuildError,
) -> Result<Vec<Instruction>, BuildError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = lines[i].trim_end().to_string();
        while joined.ends_with('\\') && i + 1 < lines.len() {
            i += 1;
            let next = lines[i];
            if next.trim_start().starts_with('#') {
                continue; // comments inside continuations are dropped, as Docker does
            }
            joined.push('\n');
            joined.push_str(next.trim_end());
        }
        let mut heredoc = None;
        if let Some(marker) = heredoc_marker(&joined) {
            let (name, strip_tabs) = marker;
            let mut body = String::new();
            loop {
                i += 1;
                let Some(line) = lines.get(i) else {
                    return Err(refuse(
                        start + 1,
                        &format!("an unterminated heredoc <<{name}"),
                    ));
                };
                let candidate = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if candidate == name {
                    break;
                }
                body.push_str(candidate);
                body.push('\n');
            }
            heredoc = Some((name, body));
        }
        out.push(Instruction {
            line: start + 1,
            text: joined,
            heredoc,
        });
        i += 1;
    }
    Ok(out)
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` in an instruction: the end marker and whether tabs are
/// stripped.
fn heredoc_marker(text: &str) -> Option<(String, bool)> {
    let keyword = text.split_whitespace().next()?.to_ascii_uppercase();
    if !matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        return None;
    }
    let at = text.find("<<")?;
    let rest = &text[at + 2..];
    let (rest, strip) = match rest.strip_prefix('-') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let name: String = rest
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some((name, strip))
}

/// `RUN` flags and heredocs, lowered or refused.
fn lower_run(
    inst: &mut Instruction,
    builder: BuilderKind,
    notes: &mut Vec<String>,
    refuse: &dyn Fn(usize, &str) -> BuildError,
) -> Result<(), BuildError> {
    let body = inst.text[3..].trim_start().to_string();
    let mut words = body.split(' ').peekable();
    let mut kept_flags = Vec::new();
    let mut rest = Vec::new();
    let mut in_flags = true;
    for word in words.by_ref() {
        if in_flags && word.starts_with("--") {
            let flag = word.to_ascii_lowercase();
            if let Some(mount) = flag.strip_prefix("--mount=") {
                let kind = mount
                    .split(',')
                    .find_map(|p| p.strip_prefix("type="))
                    .unwrap_or("bind");
                if kind == "ssh" && builder == BuilderKind::BuildKit {
                    return Err(BuildError::Source(format!(
                        "Dockerfile line {}: RUN --mount=type=ssh needs an SSH agent, which \
                         Capstan's builds do not forward; fetch private code with a build \
                         secret (RUN --mount=type=secret) instead",
                        inst.line
                    )));
                }
                if builder == BuilderKind::BuildKit {
                    kept_flags.push(word.to_string());
                    continue;
                }
                if kind == "cache" {
                    notes.push(format!(
                        "line {}: RUN --mount=type=cache runs without the cache",
                        inst.line
                    ));
                    continue;
                }
                return Err(refuse(inst.line, &format!("RUN --mount=type={kind}")));
            }
            if flag == "--network=default" && builder == BuilderKind::BuildKit {
                notes.push(format!(
                    "line {}: RUN --network=default is the default; the flag is dropped",
                    inst.line
                ));
                continue;
            }
            if flag.starts_with("--network") || flag.starts_with("--security") {
                return Err(refuse(inst.line, &format!("RUN {word}")));
            }
            kept_flags.push(word.to_string());
            continue;
        }
        if !word.is_empty() {
            in_flags = false;
        }
        rest.push(word);
    }
    let command = rest.join(" ");
    if let Some((marker, script)) = inst.heredoc.take() {
        if script.starts_with("#!") {
            return Err(refuse(inst.line, "a RUN heredoc with a #! line"));
        }
        let before = command.split("<<").next().unwrap_or_default().trim();
        if !before.is_empty() {
            return Err(refuse(
                inst.line,
                &format!("a RUN heredoc fed to a command ({before} <<{marker})"),
            ));
        }
        let json = serde_json::to_string(&["/bin/sh", "-c", script.as_str()])
            .map_err(|e| BuildError::Source(e.to_string()))?;
        notes.push(format!(
            "line {}: the RUN <<{marker} heredoc runs as a /bin/sh -c script",
            inst.line
        ));
        let mut text = String::from("RUN ");
        for flag in &kept_flags {
            text.push_str(flag);
            text.push(' ');
        }
        text.push_str(&json);
        inst.text = text;
        return Ok(());
    }
    let mut text = String::from("RUN");
    for flag in kept_flags {
        text.push(' ');
        text.push_str(&flag);
    }
    text.push(' ');
    text.push_str(&command);
    inst.text = text;
    Ok(())
}

/// `COPY`/`ADD` flags the builder does not have, and heredocs. `--link` only changes how
/// layers are cached, so on BuildKit it is dropped.
fn check_copy(
    inst: &mut Instruction,
    builder: BuilderKind,
    notes: &mut Vec<String>,
    refuse: &dyn Fn(usize, &str) -> BuildError,
) -> Result<(), BuildError> {
    let keyword = inst.keyword();
    if inst.heredoc.is_some() {
        return Err(refuse(inst.line, &format!("{keyword} <<EOF (a heredoc)")));
    }
    let mut dropped = false;
    for word in inst.text.split_whitespace().skip(1) {
        if !word.starts_with("--") {
            break;
        }
        let flag = word
            .split('=')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let known = match builder {
            BuilderKind::Classic => matches!(flag.as_str(), "--from" | "--chown"),
            BuilderKind::BuildKit => {
                dropped |= flag == "--link";
                matches!(flag.as_str(), "--from" | "--chown" | "--chmod" | "--link")
            }
        };
        if !known {
            return Err(refuse(inst.line, &format!("{keyword} {flag}")));
        }
    }
    if dropped {
        inst.text = inst
            .text
            .split(' ')
            .filter(|w| {
                !w.eq_ignore_ascii_case("--link") && !w.to_ascii_lowercase().starts_with("--link=")
            })
            .collect::<Vec<_>>()
            .join(" ");
        notes.push(format!(
            "line {}: {keyword} --link only changes layer caching; the flag is dropped",
            inst.line
        ));
    }
    Ok(())
}

/// A stage: its instructions' range, its name, and the stages it reads from.
struct Stage {
    name: Option<String>,
    range: std::ops::Range<usize>,
    uses: Vec<String>,
}

/// Keeps the global `ARG`s and the stages the target needs; rewrites numeric `--from`
/// references to the kept stages' new numbers.
fn prune_stages(
    instructions: Vec<Instruction>,
    target: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Vec<Instruction>, BuildError> {
    let mut stages: Vec<Stage> = Vec::new();
    for (index, inst) in instructions.iter().enumerate() {
        let keyword = inst.keyword();
        if keyword == "FROM" {
            if let Some(last) = stages.last_mut() {
                last.range.end = index;
            }
            let words: Vec<&str> = inst
                .text
                .split_whitespace()
                .skip(1)
                .filter(|w| !w.starts_with("--"))
                .collect();
            let name = match words.as_slice() {
                [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            };
            stages.push(Stage {
                name,
                range: index..instructions.len(),
                uses: words
                    .first()
                    .map(|b| vec![b.to_ascii_lowercase()])
                    .unwrap_or_default(),
            });
        } else if let Some(stage) = stages.last_mut() {
            for word in inst.text.split_whitespace() {
                if let Some(from) = word.to_ascii_lowercase().strip_prefix("--from=") {
                    stage.uses.push(from.to_string());
                }
            }
        }
    }
    if stages.len() < 2 {
        return Ok(instructions);
    }
    let find = |reference: &str| -> Option<usize> {
        stages
            .iter()
            .position(|s| s.name.as_deref() == Some(reference))
            .or_else(|| {
                reference
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < stages.len())
            })
    };
    let wanted = match target {
        Some(target) => find(&target.to_ascii_lowercase()).ok_or_else(|| {
            BuildError::Source(format!("the Dockerfile has no stage named {target:?}"))
        })?,
        None => stages.len() - 1,
    };
    let mut needed = BTreeSet::from([wanted]);
    let mut queue = vec![wanted];
    while let Some(index) = queue.pop() {
        for reference in &stages[index].uses {
            if let Some(dep) = find(reference).filter(|d| *d < index) {
                if needed.insert(dep) {
                    queue.push(dep);
                }
            }
        }
    }
    let skipped: Vec<String> = (0..stages.len())
        .filter(|i| !needed.contains(i))
        .map(|i| stages[i].name.clone().unwrap_or_else(|| format!("#{i}")))
        .collect();
    if skipped.is_empty() {
        return Ok(instructions);
    }
    let renumber: BTreeMap<usize, usize> = needed
        .iter()
        .enumerate()
        .map(|(new, old)| (*old, new))
        .collect();
    let mut out: Vec<Instruction> = instructions[..stages[0].range.start].to_vec();
    for index in &needed {
        for inst in &instructions[stages[*index].range.clone()] {
            let mut inst = inst.clone();
            let rewritten: Vec<String> = inst
                .text
                .split(' ')
                .map(
                    |word| match word.strip_prefix("--from=").map(str::parse::<usize>) {
                        Some(Ok(old)) => format!("--from={}", renumber.get(&old).unwrap_or(&old)),
                        _ => word.to_string(),
                    },
                )
                .collect();
            inst.text = rewritten.join(" ");
            out.push(inst);
        }
    }
    notes.push(format!(
        "stages not needed for the {} stage are not built: {}",
        stages[wanted]
            .name
            .clone()
            .unwrap_or_else(|| "last".to_string()),
        skipped.join(", ")
    ));
    Ok(out)
}

/// Applies [`for_builder`] to a recipe: the built Dockerfile becomes the compatible
/// one (as a generated file at the same path), its platform arguments join the recipe's,
/// and its notes go to the recipe's. A Dockerfile that needs no change is left as it is.
pub fn make_compatible(
    mut recipe: crate::Recipe,
    builder: BuilderKind,
) -> Result<crate::Recipe, BuildError> {
    if recipe.dockerfile.is_empty() {
        return Ok(recipe);
    }
    let compat = for_builder(
        &recipe.dockerfile_text,
        &recipe.dockerfile,
        recipe.target.as_deref(),
        builder,
    )?;
    if compat.notes.is_empty() && compat.build_args.is_empty() {
        return Ok(recipe);
    }
    recipe.generated.retain(|g| g.path != recipe.dockerfile);
    recipe.generated.push(crate::GeneratedFile {
        path: recipe.dockerfile.clone(),
        contents: compat.text.clone().into_bytes(),
    });
    recipe.dockerfile_text = compat.text;
    for (key, value) in compat.build_args {
        recipe.build_args.entry(key).or_insert(value);
    }
    recipe.notes.extend(compat.notes);
    Ok(recipe)
}

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
