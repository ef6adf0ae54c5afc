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

use crate::dockerfile_lines::split_keyword;
use crate::run_flags::{split_flags, Flag, Mount};
use crate::BuildError;
use std::collections::BTreeMap;

/// The result: the Dockerfile to build, the build arguments it needs, and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatible {
    pub text: String,
    pub build_args: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

pub(crate) use crate::dockerfile_lines::{render, split_instructions, Instruction};

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

/// `RUN` flags and heredocs, lowered or refused. Flags and mount options are read as
/// BuildKit reads them (`run_flags`), whatever their spelling.
fn lower_run(
    inst: &mut Instruction,
    builder: BuilderKind,
    notes: &mut Vec<String>,
    refuse: &dyn Fn(usize, &str) -> BuildError,
) -> Result<(), BuildError> {
    let logical = inst.logical();
    let (_, args) = split_keyword(&logical);
    let (flags, command) =
        split_flags(args).map_err(|e| refuse(inst.line, &format!("RUN flags ({e})")))?;
    let flag_count = flags.len();
    let mut kept_flags = Vec::new();
    for flag in flags {
        let name = flag.name.to_ascii_lowercase();
        let value = flag.value.clone().unwrap_or_default();
        if name == "mount" {
            let kind = Mount::parse(&value)
                .map_err(|e| refuse(inst.line, &format!("RUN --mount={value} ({e})")))?
                .kind();
            if kind == "ssh" && builder == BuilderKind::BuildKit {
                return Err(BuildError::Source(format!(
                    "Dockerfile line {}: RUN --mount=type=ssh needs an SSH agent, which \
                     Capstan's builds do not forward; fetch private code with a build \
                     secret (RUN --mount=type=secret) instead",
                    inst.line
                )));
            }
            if builder == BuilderKind::BuildKit {
                kept_flags.push(flag);
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
        if name == "network" && value == "default" && builder == BuilderKind::BuildKit {
            notes.push(format!(
                "line {}: RUN --network=default is the default; the flag is dropped",
                inst.line
            ));
            continue;
        }
        if name == "network" || name == "security" {
            return Err(refuse(inst.line, &format!("RUN {flag}")));
        }
        kept_flags.push(flag);
    }
    let command = command.trim_start();
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
        inst.text = run_text(&kept_flags, &json);
        return Ok(());
    }
    if kept_flags.len() != flag_count {
        inst.text = run_text(&kept_flags, command);
    }
    Ok(())
}

/// `RUN <flags> <command>` on one line, each flag quoted as BuildKit reads it back.
pub(crate) fn run_text(flags: &[Flag], command: &str) -> String {
    let mut text = String::from("RUN");
    for flag in flags {
        text.push(' ');
        text.push_str(&flag.to_string());
    }
    text.push(' ');
    text.push_str(command);
    text
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
