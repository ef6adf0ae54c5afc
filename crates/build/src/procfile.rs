//! A Heroku-style `Procfile` in the app's base directory: its `web:` line is the start
//! command when the build plan has none, and its `release:` line the pre-deploy command
//! when the app has none. Both run through `/bin/sh -c`, as on Heroku.

use crate::plan::{Plan, Recipe};
use crate::BuildError;
use capstan_core::{AppSpec, HookCommand};
use std::collections::BTreeMap;
use std::path::Path;

pub const PROCFILE: &str = "Procfile";

/// Process types and their commands.
pub type Processes = BTreeMap<String, String>;

/// Parses `name: command` lines; blank lines and `#` comments are skipped.
pub fn parse_procfile(text: &str) -> Result<Processes, BuildError> {
    let mut processes = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| {
            BuildError::Source(format!("{PROCFILE} line {}: {what}: {line:?}", index + 1))
        };
        let (name, command) = line
            .split_once(':')
            .ok_or_else(|| bad("not `name: command`"))?;
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(bad("a process type is letters, digits, `_` and `-`"));
        }
        let command = command.trim();
        if command.is_empty() {
            return Err(bad("the command is empty"));
        }
        processes.insert(name.to_string(), command.to_string());
    }
    Ok(processes)
}

/// Whether the final stage of a Dockerfile (or `target`) sets `CMD` or `ENTRYPOINT`,
/// following `FROM <earlier stage>` back through the file.
pub fn dockerfile_has_start(text: &str, target: Option<&str>) -> bool {
    struct Stage {
        name: Option<String>,
        base: String,
        starts: bool,
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next().map(str::to_ascii_uppercase) else {
            continue;
        };
        match instruction.as_str() {
            "FROM" => {
                let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                let name = match rest.as_slice() {
                    [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
                        Some(name.to_ascii_lowercase())
                    }
                    _ => None,
                };
                stages.push(Stage {
                    name,
                    base: rest.first().unwrap_or(&"").to_ascii_lowercase(),
                    starts: false,
                });
            }
            "CMD" | "ENTRYPOINT" => {
                if let Some(stage) = stages.last_mut() {
                    stage.starts = true;
                }
            }
            _ => {}
        }
    }
    let find = |name: &str| {
        stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&name.to_ascii_lowercase()))
    };
    let mut current = match target {
        Some(target) => find(target),
        None => stages.len().checked_sub(1),
    };
    let mut hops = 0;
    while let Some(index) = current {
        let stage = &stages[index];
        if stage.starts {
            return true;
        }
        hops += 1;
        current = find(&stage.base).filter(|i| *i < index && hops < stages.len());
    }
    false
}

/// Whether the recipe's image will have a start command of its own.
fn plan_has_start(recipe: &Recipe) -> bool {
    match &recipe.plan {
        Plan::Nixpacks { .. } | Plan::Static { .. } => true,
        Plan::Compose { web, .. } => {
            let declared = recipe
                .compose
                .as_ref()
                .and_then(|(compose, _)| compose.services.get(web))
                .is_some_and(|s| s.command.is_some() || s.image.is_some() && s.build.is_none());
            declared || dockerfile_has_start(&recipe.dockerfile_text, recipe.target.as_deref())
        }
        Plan::Dockerfile { .. } => {
            dockerfile_has_start(&recipe.dockerfile_text, recipe.target.as_deref())
        }
    }
}

/// Applies the Procfile in `dir` (if any) to `spec`; returns a line for each setting it
/// supplied, for the deployment log.
pub fn apply_procfile(
    dir: &Path,
    recipe: &Recipe,
    spec: &mut AppSpec,
) -> Result<Vec<String>, BuildError> {
    let path = dir.join(PROCFILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BuildError::Source(format!("cannot read {PROCFILE}: {e}")))?;
    let processes = parse_procfile(&text)?;
    let shell = |command: &str| vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()];
    let mut applied = Vec::new();
    if let Some(web) = processes.get("web") {
        if spec.command.is_none() && !plan_has_start(recipe) {
            spec.command = Some(shell(web));
            applied.push(format!("start command = {web:?} (from {PROCFILE} web:)"));
        }
    }
    if let Some(release) = processes.get("release") {
        if spec.pre_deploy.is_none() {
            spec.pre_deploy = Some(HookCommand {
                command: shell(release),
                timeout_secs: 300,
            });
            applied.push(format!(
                "pre_deploy = {release:?} (from {PROCFILE} release:, run before the cutover)"
            ));
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfile_lines_are_read_and_bad_ones_named() {
        let p = parse_procfile("# comment\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\n\nrelease: python manage.py migrate\n").unwrap();
        assert_eq!(p["web"], "gunicorn app:app --bind 0.0.0.0:$PORT");
        assert_eq!(p["release"], "python manage.py migrate");
        let err = parse_procfile("web: ok\nworker\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = parse_procfile("we b: x\n").unwrap_err().to_string();
        assert!(err.contains("process type"), "{err}");
    }

    #[test]
    fn a_start_command_is_found_in_the_stage_that_runs() {
        assert!(dockerfile_has_start("FROM x\nCMD [\"a\"]\n", None));
        assert!(!dockerfile_has_start(
            "FROM x AS a\nCMD [\"a\"]\nFROM y\nCOPY . .\n",
            None
        ));
        assert!(dockerfile_has_start(
            "FROM x AS base\nENTRYPOINT [\"a\"]\nFROM base\nCOPY . .\n",
            None
        ));
        assert!(dockerfile_has_start(
            "FROM x AS a\nCMD a\nFROM y AS b\n",
            Some("a")
        ));
        assert!(!dockerfile_has_start(
            "FROM --platform=$BUILDPLATFORM x AS a\nRUN b\n",
            None
        ));
    }
}
