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
use std::collections::BTreeMap;

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
pub(crate) struct Instruction {
    pub(crate) line: usize,
    pub(crate) text: String,
    pub(crate) heredoc: Option<(String, String)>,
}

impl Instruction {
    pub(crate) fn keyword(&self) -> String {
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
    let out = crate::dockerfile_stages::prune_stages(out, target, &mut notes)?;
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

pub(crate) fn render(instructions: &[Instruction], header: String) -> String {
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
pub(crate) fn split_instructions(
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
