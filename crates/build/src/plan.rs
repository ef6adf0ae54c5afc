//! Build plan detection: what kind of build a source tree needs, or a clear error that
//! says what was looked for.

use crate::BuildError;
use std::path::{Path, PathBuf};

/// How a source tree will be turned into an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Build the given Dockerfile (path relative to the context root).
    Dockerfile { path: String },
}

impl Plan {
    pub fn describe(&self) -> String {
        match self {
            Plan::Dockerfile { path } => format!("dockerfile ({path})"),
        }
    }
}

/// Detects the plan for the tree at `root`. `dockerfile` is the configured Dockerfile path
/// (already validated as relative); it must resolve to a file inside `root`, symlinks
/// included.
pub fn detect_plan(root: &Path, dockerfile: &str) -> Result<Plan, BuildError> {
    let candidate = root.join(dockerfile);
    if candidate.is_file() {
        ensure_inside(root, &candidate, dockerfile)?;
        return Ok(Plan::Dockerfile {
            path: dockerfile.to_string(),
        });
    }
    Err(BuildError::NoPlan(format!(
        "looked for a Dockerfile at {dockerfile:?} in the source and found none; add one, \
         or set the app's \"dockerfile\" setting to where it is"
    )))
}

fn ensure_inside(root: &Path, path: &Path, shown: &str) -> Result<PathBuf, BuildError> {
    let root = root.canonicalize()?;
    let real = path.canonicalize()?;
    if !real.starts_with(&root) {
        return Err(BuildError::Source(format!(
            "{shown:?} resolves outside the source tree"
        )));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_dockerfile_and_explains_when_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let err = detect_plan(dir.path(), "Dockerfile")
            .unwrap_err()
            .to_string();
        assert!(err.contains("looked for a Dockerfile"), "{err}");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(
            detect_plan(dir.path(), "Dockerfile").unwrap(),
            Plan::Dockerfile {
                path: "Dockerfile".into()
            }
        );
    }

    #[test]
    fn refuses_a_dockerfile_symlinked_outside_the_tree() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("Dockerfile"),
            dir.path().join("Dockerfile"),
        )
        .unwrap();
        let err = detect_plan(dir.path(), "Dockerfile")
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the source tree"), "{err}");
    }
}
