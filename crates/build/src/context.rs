//! Packing a build context: a tar of the source tree that honours `.dockerignore`, skips
//! `.git`, keeps symlinks inside the tree as links and refuses links that point out of it,
//! and adds the files a plan generated (a Dockerfile, nixpacks' Nix files).

use crate::BuildError;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::{Component, Path, PathBuf};

/// A file a build plan wrote for the build, added to the context at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub contents: Vec<u8>,
}

/// Packs `root` into a tar for the engine's build endpoint. The Dockerfile at
/// `dockerfile` is always included, as Docker does, even if `.dockerignore` names it.
/// `generated` files are appended last and replace source files of the same path.
pub fn pack_context(
    root: &Path,
    dockerfile: &str,
    generated: &[GeneratedFile],
) -> Result<Vec<u8>, BuildError> {
    let ignore = dockerignore(root)?;
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    let skip: Vec<&str> = generated.iter().map(|g| g.path.as_str()).collect();
    let walk = Walk {
        root,
        ignore: &ignore,
        dockerfile,
        skip: &skip,
    };
    walk.add_dir(&mut builder, root)?;
    for file in generated {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, &file.path, file.contents.as_slice())?;
    }
    Ok(builder.into_inner()?)
}

/// `.dockerignore` patterns are relative to the context root (Go's filepath.Match plus
/// `**`); gitignore patterns without a slash match at any depth, so each pattern is
/// anchored to the root before it is handed to the gitignore matcher.
fn dockerignore(root: &Path) -> Result<Gitignore, BuildError> {
    let text = std::fs::read_to_string(root.join(".dockerignore")).unwrap_or_default();
    dockerignore_from(root, &text)
}

/// The matcher for a `.dockerignore` whose text is `text`, for paths relative to `root`.
pub(crate) fn dockerignore_from(root: &Path, text: &str) -> Result<Gitignore, BuildError> {
    let mut builder = GitignoreBuilder::new(root);
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
    builder
        .build()
        .map_err(|e| BuildError::Source(format!(".dockerignore: {e}")))
}

struct Walk<'a> {
    root: &'a Path,
    ignore: &'a Gitignore,
    dockerfile: &'a str,
    skip: &'a [&'a str],
}

impl Walk<'_> {
    fn add_dir(&self, builder: &mut tar::Builder<Vec<u8>>, dir: &Path) -> Result<(), BuildError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let relative = path.strip_prefix(self.root).expect("walk stays under root");
            let kind = entry.file_type()?;
            if relative == Path::new(".git") || self.skip.iter().any(|s| relative == Path::new(s)) {
                continue;
            }
            let is_dockerfile = relative == Path::new(self.dockerfile);
            let ignored = self
                .ignore
                .matched_path_or_any_parents(relative, kind.is_dir())
                .is_ignore();
            if kind.is_dir() {
                // Descend even into ignored directories: a `!` pattern may re-include a child.
                if !ignored {
                    builder.append_dir(relative, &path)?;
                }
                self.add_dir(builder, &path)?;
            } else if !ignored || is_dockerfile {
                if kind.is_symlink() {
                    check_link(relative, &std::fs::read_link(&path)?)?;
                }
                builder.append_path_with_name(&path, relative)?;
            }
        }
        Ok(())
    }
}

/// A link in the context must stay inside it: Docker copies links as links, so one that
/// points out of the tree would be dangling at best and a way to read the build host's
/// files at worst. The check is lexical (the target need not exist).
pub(crate) fn check_link(relative: &Path, target: &Path) -> Result<(), BuildError> {
    if link_escapes(relative, target) {
        return Err(BuildError::Source(format!(
            "the symlink {} points outside the build context (to {}); replace it with the \
             file itself or add it to .dockerignore",
            relative.display(),
            target.display()
        )));
    }
    Ok(())
}

/// Whether a link at `relative` (inside a tree) whose text is `target` leads out of the
/// tree when read lexically: absolute, or more `..` than it is deep.
pub(crate) fn link_escapes(relative: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut resolved = PathBuf::new();
    for component in relative
        .parent()
        .unwrap_or(Path::new(""))
        .join(target)
        .components()
    {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::ParentDir => {
                if !resolved.pop() {
                    return true;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
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
        let got = names(&pack_context(root, "Dockerfile", &[]).unwrap());
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
    fn keeps_inner_symlinks_as_links_and_refuses_links_out_of_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("../Dockerfile", dir.path().join("sub/df")).unwrap();
        let bytes = pack_context(dir.path(), "Dockerfile", &[]).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let link = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("sub/df"))
            .unwrap();
        assert_eq!(link.header().entry_type(), tar::EntryType::Symlink);
        assert_eq!(link.size(), 0, "the target's content is never packed");

        for (name, target) in [("passwd", "/etc/passwd"), ("up", "sub/../../x")] {
            std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
            let err = pack_context(dir.path(), "Dockerfile", &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains("points outside the build context"), "{err}");
            assert!(err.contains(name), "{err}");
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
    }

    #[test]
    fn generated_files_are_added_and_replace_source_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        std::fs::create_dir(dir.path().join(".capstan")).unwrap();
        std::fs::write(dir.path().join(".capstan/Dockerfile"), "stale").unwrap();
        let generated = [GeneratedFile {
            path: ".capstan/Dockerfile".into(),
            contents: b"FROM x".to_vec(),
        }];
        let bytes = pack_context(dir.path(), ".capstan/Dockerfile", &generated).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut found = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_str() == Some(".capstan/Dockerfile") {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                found.push(text);
            }
        }
        assert_eq!(found, vec!["FROM x".to_string()]);
    }
}
