//! Submodules, one level at a time, so their URLs are checked before anything is fetched
//! from them: `git submodule init` resolves each URL (a relative `../other.git` against the
//! superproject's own URL, exactly as git does) and fetches nothing; the resolved URLs are
//! read back with `git config`; `git submodule update` runs only after the caller has
//! judged every one of them.

use crate::source::{git, FetchLimits};
use crate::BuildError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A submodule of a checkout, with the URL git will fetch it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submodule {
    /// Its name in `.gitmodules` (`submodule.<name>`).
    pub name: String,
    /// The URL as `.gitmodules` spells it.
    pub declared_url: String,
    /// The URL git resolved and will fetch (relative ones made absolute).
    pub url: String,
    /// Where it is checked out, relative to the superproject.
    pub path: Option<String>,
}

/// Whether `dir` declares submodules: a `.gitmodules` that is a regular file. A symlinked
/// one (which git itself refuses to read) is an error.
pub fn declares_submodules(dir: &Path) -> Result<bool, BuildError> {
    match std::fs::symlink_metadata(dir.join(".gitmodules")) {
        Ok(meta) if meta.file_type().is_symlink() => Err(BuildError::Source(
            ".gitmodules is a symlink; replace it with the file itself".into(),
        )),
        Ok(meta) => Ok(meta.is_file()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Registers the submodules of the checkout at `dir` (`git submodule init`, no fetch) and
/// returns each with the URL git resolved for it.
pub async fn init(dir: &Path, limits: FetchLimits) -> Result<Vec<Submodule>, BuildError> {
    git(dir, "submodule init", &["submodule", "init"], limits).await?;
    let declared = config(dir, &["--file", ".gitmodules"], limits).await?;
    let resolved = config(dir, &["--local"], limits).await?;
    let mut submodules = Vec::new();
    for (key, url) in &resolved {
        let Some(name) = key
            .strip_prefix("submodule.")
            .and_then(|k| k.strip_suffix(".url"))
        else {
            continue;
        };
        let declared_key = |field: &str| format!("submodule.{name}.{field}");
        submodules.push(Submodule {
            name: name.to_string(),
            declared_url: declared
                .get(&declared_key("url"))
                .cloned()
                .unwrap_or_else(|| url.clone()),
            url: url.clone(),
            path: declared.get(&declared_key("path")).cloned(),
        });
    }
    Ok(submodules)
}

/// Fetches and checks out the registered submodules of `dir` (this level only).
/// `allow_file` lets git use its `file` transport, which it otherwise refuses for
/// submodules: only for URLs the caller has checked.
pub async fn update(dir: &Path, allow_file: bool, limits: FetchLimits) -> Result<(), BuildError> {
    let mut args = Vec::new();
    if allow_file {
        args.extend(["-c", "protocol.file.allow=always"]);
    }
    args.extend(["submodule", "update", "--progress"]);
    git(dir, "submodule update", &args, limits).await?;
    Ok(())
}

/// The checked-out directory of `submodule` in `dir`, if it is a real directory inside it.
pub fn checkout_dir(dir: &Path, submodule: &Submodule) -> Option<PathBuf> {
    let path = submodule.path.as_deref()?;
    let real_dir = dir.canonicalize().ok()?;
    let real = dir.join(path).canonicalize().ok()?;
    (real.starts_with(&real_dir) && real != real_dir && real.is_dir()).then_some(real)
}

/// `git config -z --list` of one file, as key → value (keys as git prints them).
async fn config(
    dir: &Path,
    which: &[&str],
    limits: FetchLimits,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut args = vec!["config", "-z"];
    args.extend(which);
    args.push("--list");
    let out = git(dir, "config", &args, limits).await?;
    Ok(out
        .split('\0')
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('\n') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => (entry.to_string(), String::new()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .args(["-c", "user.email=t@example.test", "-c", "user.name=t"])
            .args(["-c", "protocol.file.allow=always"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn repo(dir: &Path, file: &str) {
        std::fs::create_dir_all(dir).unwrap();
        run(dir, &["init", "-q", "-b", "main"]);
        std::fs::write(dir.join(file), "x").unwrap();
        run(dir, &["add", "-A"]);
        run(dir, &["commit", "-q", "-m", "x"]);
    }

    #[tokio::test]
    async fn relative_urls_resolve_against_the_superproject_as_git_does() {
        let base = tempfile::tempdir().unwrap();
        let base = base.path().canonicalize().unwrap();
        repo(&base.join("lib.git"), "lib.txt");
        repo(&base.join("group/app"), "app.txt");
        let app = base.join("group/app");
        run(
            &app,
            &["submodule", "add", "-q", "../../lib.git", "vendor/lib"],
        );
        run(
            &app,
            &[
                "config",
                "-f",
                ".gitmodules",
                "submodule.vendor/lib.url",
                "../../lib.git",
            ],
        );
        run(&app, &["commit", "-qam", "sub"]);
        let limits = FetchLimits::default();
        let dest = base.join("checkout");
        let url = app.to_string_lossy().into_owned();
        crate::fetch_git(&url, "main", &dest, limits).await.unwrap();
        assert!(declares_submodules(&dest).unwrap());
        let subs = init(&dest, limits).await.unwrap();
        assert_eq!(subs.len(), 1, "{subs:?}");
        assert_eq!(subs[0].name, "vendor/lib");
        assert_eq!(subs[0].declared_url, "../../lib.git");
        assert_eq!(Path::new(&subs[0].url), base.join("lib.git"));
        assert_eq!(subs[0].path.as_deref(), Some("vendor/lib"));
        assert!(
            !dest.join("vendor/lib/lib.txt").exists(),
            "init fetches nothing"
        );

        // git itself refuses the file transport for submodules unless told otherwise.
        assert!(update(&dest, false, limits).await.is_err());
        update(&dest, true, limits).await.unwrap();
        assert!(dest.join("vendor/lib/lib.txt").exists());
        assert_eq!(checkout_dir(&dest, &subs[0]), Some(dest.join("vendor/lib")));
    }
}
