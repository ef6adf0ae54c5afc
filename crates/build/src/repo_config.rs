//! Reading the repo's `capstan.toml` from the build's base directory and merging it into
//! the app's settings (the rules live in `capstan_core::repo_config`).

use crate::plan::context_dir;
use crate::BuildError;
use capstan_core::{AppSpec, RepoConfig, REPO_CONFIG_FILE};
use std::path::Path;

/// The settings a build runs with: the app's, with the repo's file applied.
#[derive(Debug, Clone)]
pub struct RepoSettings {
    pub spec: AppSpec,
    /// One line per setting the file supplied.
    pub applied: Vec<String>,
    /// The file as found: its name (relative to the source root) and its text.
    pub file: Option<(String, String)>,
}

/// Reads `<base_dir>/capstan.toml` when there is one and applies it to `spec`.
pub fn load_repo_config(root: &Path, spec: &AppSpec) -> Result<RepoSettings, BuildError> {
    let dir = context_dir(root, &spec.build)?;
    let path = dir.join(REPO_CONFIG_FILE);
    let unchanged = RepoSettings {
        spec: spec.clone(),
        applied: Vec::new(),
        file: None,
    };
    if !path.is_file() {
        return Ok(unchanged);
    }
    let shown = if spec.build.base_dir == "." {
        REPO_CONFIG_FILE.to_string()
    } else {
        format!(
            "{}/{REPO_CONFIG_FILE}",
            spec.build.base_dir.trim_end_matches('/')
        )
    };
    if !path.canonicalize()?.starts_with(&dir) {
        return Err(BuildError::Source(format!(
            "{shown} resolves outside the source tree"
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BuildError::Source(format!("cannot read {shown}: {e}")))?;
    let (merged, applied) = apply_repo_config(spec, &shown, &text)?;
    Ok(RepoSettings {
        spec: merged,
        applied,
        file: Some((shown, text)),
    })
}

/// Applies a stored `capstan.toml` text to `spec` (used by restarts, which have no source).
pub fn apply_repo_config(
    spec: &AppSpec,
    file: &str,
    text: &str,
) -> Result<(AppSpec, Vec<String>), BuildError> {
    let config = RepoConfig::parse(text, file)?;
    Ok(config.apply(spec, file)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_file_in_the_base_dir_and_names_it_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("api")).unwrap();
        std::fs::write(dir.path().join("api/capstan.toml"), "port = 3000\n").unwrap();
        let mut spec: AppSpec =
            serde_json::from_str(r#"{"source":{"path":"/x"},"build":{"base_dir":"api"}}"#).unwrap();
        let got = load_repo_config(dir.path(), &spec).unwrap();
        assert_eq!(got.spec.port, Some(3000));
        assert_eq!(got.file.unwrap().0, "api/capstan.toml");
        std::fs::write(dir.path().join("api/capstan.toml"), "[build]\nkind = 1\n").unwrap();
        let err = load_repo_config(dir.path(), &spec).unwrap_err().to_string();
        assert!(
            err.contains("api/capstan.toml") && err.contains("kind"),
            "{err}"
        );
        spec.build.base_dir = ".".into();
        assert!(load_repo_config(dir.path(), &spec).unwrap().file.is_none());

        // A root file may point the build into the monorepo.
        std::fs::write(
            dir.path().join("capstan.toml"),
            "[build]\nbase_dir = \"api\"\n",
        )
        .unwrap();
        let got = load_repo_config(dir.path(), &spec).unwrap();
        assert_eq!(got.spec.build.base_dir, "api");
        std::fs::write(
            dir.path().join("capstan.toml"),
            "[build]\nbase_dir = \"../elsewhere\"\n",
        )
        .unwrap();
        let err = load_repo_config(dir.path(), &spec).unwrap_err().to_string();
        assert!(err.contains("build.base_dir"), "{err}");
    }
}
