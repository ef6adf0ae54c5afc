//! Packing a build context: a tar of the source tree that honours `.dockerignore`, skips
//! `.git`, and keeps symlinks as links (never following them out of the tree).

use crate::BuildError;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::Path;

/// Packs `root` into a tar for the engine's build endpoint. The Dockerfile at
/// `dockerfile` is always included, as Docker does, even if `.dockerignore` names it.
pub fn pack_context(root: &Path, dockerfile: &str) -> Result<Vec<u8>, BuildError> {
    let ignore = dockerignore(root)?;
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    add_dir(&mut builder, root, root, &ignore, dockerfile)?;
    Ok(builder.into_inner()?)
}

/// `.dockerignore` patterns are relative to the context root (Go's filepath.Match plus
/// `**`); gitignore patterns without a slash match at any depth, so each pattern is
/// anchored to the root before it is handed to the gitignore matcher.
fn dockerignore(root: &Path) -> Result<Gitignore, BuildError> {
    let mut builder = GitignoreBuilder::new(root);
    if let Ok(text) = std::fs::read_to_string(root.join(".dockerignore")) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, pattern) = match line.strip_prefix('!') {
                Some(rest) => ("!", rest.trim()),
                None => ("", line),
            };
            let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
            builder
                .add_line(None, &format!("{negate}/{pattern}"))
                .map_err(|e| BuildError::Source(format!(".dockerignore: {e}")))?;
        }
    }
    builder
        .build()
        .map_err(|e| BuildError::Source(format!(".dockerignore: {e}")))
}

fn add_dir(
    builder: &mut tar::Builder<Vec<u8>>,
    root: &Path,
    dir: &Path,
    ignore: &Gitignore,
    dockerfile: &str,
) -> Result<(), BuildError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let relative = path.strip_prefix(root).expect("walk stays under root");
        let kind = entry.file_type()?;
        if relative == Path::new(".git") {
            continue;
        }
        let is_dockerfile = relative == Path::new(dockerfile);
        let ignored = ignore
            .matched_path_or_any_parents(relative, kind.is_dir())
            .is_ignore();
        if kind.is_dir() {
            // Descend even into ignored directories: a `!` pattern may re-include a child.
            if !ignored {
                builder.append_dir(relative, &path)?;
            }
            add_dir(builder, root, &path, ignore, dockerfile)?;
        } else if !ignored || is_dockerfile {
            builder.append_path_with_name(&path, relative)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names(tar_bytes: &[u8]) -> BTreeSet<String> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn honours_dockerignore_anchored_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "Dockerfile",
            "app.log",
            "src/main.rs",
            "src/debug.log",
            "secret.env",
            "keep.env",
            ".git/HEAD",
            "node_modules/x/y.js",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::fs::write(
            root.join(".dockerignore"),
            "# comment\n*.log\n*.env\n!keep.env\nnode_modules\nDockerfile\n",
        )
        .unwrap();
        let got = names(&pack_context(root, "Dockerfile").unwrap());
        assert!(got.contains("Dockerfile"), "the Dockerfile is always sent");
        assert!(got.contains("src/main.rs"));
        assert!(got.contains("keep.env"));
        assert!(
            got.contains("src/debug.log"),
            "*.log is anchored at the root, as in Docker"
        );
        for gone in ["app.log", "secret.env", ".git/HEAD", "node_modules/x/y.js"] {
            assert!(!got.contains(gone), "{gone} must be left out: {got:?}");
        }
    }

    #[test]
    fn keeps_symlinks_as_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let bytes = pack_context(dir.path(), "Dockerfile").unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let link = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("passwd"))
            .unwrap();
        assert_eq!(link.header().entry_type(), tar::EntryType::Symlink);
        assert_eq!(link.size(), 0, "the target's content is never packed");
    }
}
