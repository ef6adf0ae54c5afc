//! Checks a source tree before anything in it is read: every symlink must resolve inside
//! the tree, so no file of the host (`/etc/shadow`, the daemon's data dir) can be read
//! through the tree by planning, `capstan.toml`, `.dockerignore` or nixpacks, nor reach
//! an error message.

use crate::context::check_link;
use crate::BuildError;
use std::path::Path;

/// Refuses the tree if any symlink in it (outside `.git`) resolves outside `root`,
/// following chains (`top -> .`, `esc -> top/../..`) through the real filesystem. A link
/// that resolves to nothing (dangling, or a loop) is judged by its text alone.
pub fn check_tree_links(root: &Path) -> Result<(), BuildError> {
    let real_root = root.canonicalize()?;
    walk(&real_root, &real_root)
}

fn walk(root: &Path, dir: &Path) -> Result<(), BuildError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let relative = path.strip_prefix(root).expect("walk stays under root");
        if relative == Path::new(".git") {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            match path.canonicalize() {
                Ok(real) if real.starts_with(root) => {}
                Ok(_) => {
                    return Err(BuildError::Source(format!(
                        "the symlink {} resolves outside the source tree; replace it with the file itself",
                        relative.display()
                    )))
                }
                Err(_) => check_link(relative, &std::fs::read_link(&path)?)?,
            }
        } else if kind.is_dir() {
            walk(root, &path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_inside_pass_and_chains_out_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        symlink("../Dockerfile", root.join("sub/df")).unwrap();
        symlink(".", root.join("top")).unwrap();
        symlink("missing", root.join("dangling")).unwrap();
        check_tree_links(root).unwrap();

        for (name, target) in [
            ("esc", "top/../../etc/passwd"),
            ("chain", "top/top/top/../.."),
            ("abs", "/etc/shadow"),
            (".dockerignore", "/etc/passwd"),
        ] {
            symlink(target, root.join(name)).unwrap();
            let err = check_tree_links(root).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
            assert!(!err.contains("root:"), "no file content in errors: {err}");
            std::fs::remove_file(root.join(name)).unwrap();
        }
    }
}
