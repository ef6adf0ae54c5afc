//! The nixpacks plan, through the `nixpacks` library: which providers recognise a source,
//! and the Dockerfile plus Nix files nixpacks generates for it, captured as files to add
//! to the build context so the build runs through the same bollard path as a Dockerfile.
//!
//! Guards: the library's `create_docker_image` exits the process when it finds no plan,
//! so it is never called; a plan with no phases or no start command becomes an error here;
//! the library runs inside `catch_unwind`, so a panic in it fails the deployment, never the
//! daemon; build arguments with empty values are dropped, because nixpacks would fill
//! them from the daemon's own environment.

use crate::context::GeneratedFile;
use crate::BuildError;
use nixpacks::nixpacks::builder::docker::docker_image_builder::DockerImageBuilder;
use nixpacks::nixpacks::builder::docker::DockerBuilderOptions;
use nixpacks::nixpacks::builder::ImageBuilder;
use nixpacks::nixpacks::environment::Environment;
use nixpacks::nixpacks::logger::Logger;
use nixpacks::nixpacks::plan::generator::GeneratePlanOptions;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Where nixpacks puts its Dockerfile and supporting files, relative to its output dir.
const NIXPACKS_DIR: &str = ".nixpacks";

/// The Dockerfile nixpacks generated and the files it needs.
#[derive(Debug, Clone)]
pub struct NixpacksOutput {
    /// The plan's variables (`NODE_ENV`, ...): its Dockerfile declares them as `ARG`s, so
    /// they must be passed as build arguments.
    pub variables: BTreeMap<String, String>,
    pub dockerfile_path: String,
    pub dockerfile_text: String,
    pub files: Vec<GeneratedFile>,
}

fn env_pairs(args: &BTreeMap<String, String>) -> Vec<String> {
    args.iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, BuildError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(BuildError::NoPlan(format!("nixpacks {what}: {err}"))),
        Err(_) => Err(BuildError::NoPlan(format!(
            "nixpacks panicked while {what}; the source was not changed"
        ))),
    }
}

/// The library reports `anyhow` errors; `{:#}` prints their whole chain.
fn text<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| format!("{e:#}"))
}

fn path_str(dir: &Path) -> Result<&str, BuildError> {
    dir.to_str()
        .ok_or_else(|| BuildError::Source(format!("{} is not UTF-8", dir.display())))
}

/// The plan's start command, if it has a non-empty one.
fn start_command(plan: &nixpacks::nixpacks::plan::BuildPlan) -> Option<&str> {
    plan.start_phase
        .as_ref()
        .and_then(|s| s.cmd.as_deref())
        .filter(|c| !c.trim().is_empty())
}

/// The nixpacks providers that recognise the source at `dir` (e.g. `node`, `python`,
/// `staticfile`); empty when none does.
pub fn detect_providers(
    dir: &Path,
    args: &BTreeMap<String, String>,
) -> Result<Vec<String>, BuildError> {
    let path = path_str(dir)?;
    let envs = env_pairs(args);
    guarded("detecting providers", || {
        text(nixpacks::get_plan_providers(
            path,
            envs.iter().map(String::as_str).collect(),
            &GeneratePlanOptions::default(),
        ))
    })
}

/// Generates the build for `dir`: nixpacks' Dockerfile and its Nix files, read back from a
/// scratch output directory. The source tree itself is not written to.
pub fn generate(
    dir: &Path,
    args: &BTreeMap<String, String>,
    port: u16,
) -> Result<NixpacksOutput, BuildError> {
    let path = path_str(dir)?;
    let mut envs = env_pairs(args);
    let plan_with = |envs: &[String]| {
        let env_refs: Vec<&str> = envs.iter().map(String::as_str).collect();
        guarded("planning", || {
            text(nixpacks::generate_build_plan(
                path,
                env_refs,
                &GeneratePlanOptions::default(),
            ))
        })
    };
    let mut plan = plan_with(&envs)?;
    let providers = match plan.providers.clone().filter(|p| !p.is_empty()) {
        Some(providers) => providers,
        None => detect_providers(dir, args)?,
    };
    if start_command(&plan).is_none() && providers.iter().any(|p| p == "python") {
        if let Some(cmd) = crate::python_start::python_start_command(dir, port) {
            envs.push(format!("NIXPACKS_START_CMD={cmd}"));
            plan = plan_with(&envs)?;
        }
    }
    let env_refs: Vec<&str> = envs.iter().map(String::as_str).collect();
    // nixpacks runs a Procfile's `release:` while building; Capstan runs it as the
    // pre-deploy command instead, against the live environment (see `procfile`).
    if let Some(phases) = plan.phases.as_mut() {
        phases.remove("release");
    }
    if plan.phases.as_ref().is_none_or(|p| p.is_empty()) {
        return Err(BuildError::NoPlan(
            "nixpacks could not make a build plan for this source".into(),
        ));
    }
    if start_command(&plan).is_none() {
        let language = if providers.is_empty() {
            "this source".to_string()
        } else {
            format!("a {} app", providers.join("/"))
        };
        return Err(BuildError::NoPlan(format!(
            "nixpacks detected {language} but found no start command; add one (a Procfile \
             with a `web:` line, [start] cmd in nixpacks.toml, or a \"start\" script in \
             package.json for Node), or use a Dockerfile"
        )));
    }
    let out = tempfile::tempdir()?;
    let options = DockerBuilderOptions {
        out_dir: Some(path_str(out.path())?.to_string()),
        quiet: true,
        ..Default::default()
    };
    let environment = guarded("reading the environment", || {
        text(Environment::from_envs(env_refs.clone()))
    })?;
    guarded("writing the Dockerfile", || {
        let builder = DockerImageBuilder::new(Logger::new(), options);
        text(futures::executor::block_on(builder.create_image(
            path,
            &plan,
            &environment,
        )))
    })?;
    let variables = plan
        .variables
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let output = read_output(out.path(), variables)?;
    check_shell_lines(&output.dockerfile_text)?;
    Ok(output)
}

/// Fails on a `RUN` line whose shell would read a version constraint as a redirection
/// (`pip install flask>=2.0` writes a file named `=2.0` and installs any flask), naming the
/// line, instead of building something else than was asked.
fn check_shell_lines(dockerfile: &str) -> Result<(), BuildError> {
    for (index, line) in dockerfile.lines().enumerate() {
        let trimmed = line.trim_start();
        let Some(command) = trimmed.strip_prefix("RUN ") else {
            continue;
        };
        if command.trim_start().starts_with('[') {
            continue; // exec form: no shell
        }
        if let Some(word) = unquoted_constraint(command) {
            return Err(BuildError::NoPlan(format!(
                "the generated Dockerfile's line {} runs {:?}: the shell reads the `>`/`<` in \
                 {word:?} as a redirection; quote the version constraint (e.g. \"{word}\") \
                 where the command is set (nixpacks.toml, package scripts or NIXPACKS_* \
                 variables)",
                index + 1,
                command.trim()
            )));
        }
    }
    Ok(())
}

/// The first word like `name>=1.0` or `name<2` outside quotes.
fn unquoted_constraint(command: &str) -> Option<String> {
    let mut quote: Option<char> = None;
    let chars: Vec<char> = command.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '>' | '<') if i > 0 => {
                let before = chars[i - 1];
                let after = chars.get(i + 1).copied().unwrap_or(' ');
                if before.is_ascii_alphabetic() && (after == '=' || after.is_ascii_digit()) {
                    let start = chars[..i]
                        .iter()
                        .rposition(|c| c.is_whitespace())
                        .map_or(0, |p| p + 1);
                    let end = chars[i..]
                        .iter()
                        .position(|c| c.is_whitespace())
                        .map_or(chars.len(), |p| p + i);
                    return Some(chars[start..end].iter().collect());
                }
            }
            _ => {}
        }
    }
    None
}

fn read_output(
    out: &Path,
    variables: BTreeMap<String, String>,
) -> Result<NixpacksOutput, BuildError> {
    let mut files = Vec::new();
    let mut stack = vec![out.join(NIXPACKS_DIR)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(out)
                .expect("walk stays under the output dir")
                .to_string_lossy()
                .into_owned();
            // build.sh is nixpacks' `docker build` command line: not part of the build.
            if relative == format!("{NIXPACKS_DIR}/build.sh") {
                continue;
            }
            files.push(GeneratedFile {
                path: relative,
                contents: std::fs::read(&path)?,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let dockerfile_path = format!("{NIXPACKS_DIR}/Dockerfile");
    let dockerfile = files
        .iter()
        .find(|f| f.path == dockerfile_path)
        .ok_or_else(|| BuildError::NoPlan("nixpacks wrote no Dockerfile".into()))?;
    Ok(NixpacksOutput {
        variables,
        dockerfile_text: String::from_utf8_lossy(&dockerfile.contents).into_owned(),
        dockerfile_path,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unquoted_version_constraint_in_a_run_line_is_named() {
        assert_eq!(
            unquoted_constraint("pip install flask>=2.0 gunicorn").as_deref(),
            Some("flask>=2.0")
        );
        assert_eq!(unquoted_constraint("pip install 'flask>=2.0'"), None);
        assert_eq!(unquoted_constraint("make 2>&1 > /dev/null"), None);
        assert_eq!(unquoted_constraint("echo a>/tmp/x"), None);
        let err = check_shell_lines("FROM x\nRUN  pip install django<5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("django<5"), "{err}");
    }
}
