//! A deployment's own copy of a local source directory. The directory is opened one
//! component at a time without following any symlink, and every file is read from a
//! descriptor opened relative to its directory's (never through a path that a symlink
//! could redirect), so what is planned and built is exactly the tree that was checked,
//! whatever is swapped on the host meanwhile. Links inside the tree are copied as links,
//! never followed; one that leads out of it is refused before anything is read.

use crate::context::{dockerignore_from, link_escapes};
use crate::BuildError;
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// What every entry costs against the size limit besides its bytes (a tar header's size),
/// so a tree of countless empty files is bounded too.
const ENTRY_COST: u64 = 512;

/// The longest `.dockerignore` read.
const MAX_DOCKERIGNORE: u64 = 1024 * 1024;

/// What a snapshot copied and left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Bytes of the files copied.
    pub bytes: u64,
    pub files: u64,
    /// Directories the source's `.dockerignore` excludes, left out (relative paths).
    pub pruned: Vec<String>,
    /// Sockets, FIFOs and devices, which a build context cannot hold, left out.
    pub skipped: Vec<String>,
}

/// A local source directory, held open: whatever happens to its path on the host, this
/// is the directory that was checked.
pub struct SourceDir(Dir);

impl SourceDir {
    /// Opens `real` (see [`open_source_dir`]).
    pub fn open(real: &Path) -> Result<Self, BuildError> {
        open_source_dir(real).map(SourceDir)
    }

    /// A path that names this very directory for as long as it is held open
    /// (`/proc/self/fd/<n>`), for a child process's working directory.
    pub fn fd_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }

    /// Copies it into `dest` (see [`snapshot`]).
    pub fn snapshot(
        &self,
        dest: &Path,
        max_bytes: u64,
        prune_ignored: bool,
    ) -> Result<Snapshot, BuildError> {
        snapshot(&self.0, dest, max_bytes, prune_ignored)
    }
}

/// Opens the directory at `real`, a canonical path, walking from `/` one component at a
/// time and refusing a symlink anywhere: a directory replaced by a link since it was
/// checked is not opened.
pub fn open_source_dir(real: &Path) -> Result<Dir, BuildError> {
    if !real.is_absolute() {
        return Err(BuildError::Source(format!(
            "{} is not an absolute path",
            real.display()
        )));
    }
    let mut dir = Dir::open_ambient_dir("/", cap_std::ambient_authority())?;
    for component in real.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => {
                dir = dir.open_dir_nofollow(part).map_err(|e| {
                    BuildError::Source(format!(
                        "the source directory {} changed since it was checked ({} is no longer a directory: {e})",
                        real.display(),
                        part.to_string_lossy()
                    ))
                })?;
            }
            _ => {
                return Err(BuildError::Source(format!(
                    "{} is not a canonical path",
                    real.display()
                )))
            }
        }
    }
    Ok(dir)
}

/// Copies the tree of `source` into `dest` (which must not exist), skipping `.git` and,
/// when `prune_ignored`, the directories the tree's own `.dockerignore` excludes (only
/// when it re-includes nothing with `!`). Past `max_bytes` the copy stops with
/// [`BuildError::SourceTooLarge`]. Blocking.
pub fn snapshot(
    source: &Dir,
    dest: &Path,
    max_bytes: u64,
    prune_ignored: bool,
) -> Result<Snapshot, BuildError> {
    std::fs::create_dir(dest)?;
    let ignore = if prune_ignored {
        read_dockerignore(source)?
            .filter(|text| !text.lines().any(|l| l.trim_start().starts_with('!')))
            .map(|text| dockerignore_from(Path::new(""), &text))
            .transpose()?
    } else {
        None
    };
    let mut copy = Copy {
        source,
        dest,
        ignore,
        max_bytes,
        used: 0,
        done: Snapshot::default(),
    };
    // Depth-first with an explicit stack: one directory open at a time, any depth.
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        copy.directory(&relative, &mut pending)?;
    }
    Ok(copy.done)
}

/// The source's `.dockerignore`, if it is a regular file (a link is not followed).
fn read_dockerignore(source: &Dir) -> Result<Option<String>, BuildError> {
    let mut options = OpenOptions::new();
    options.read(true).follow(FollowSymlinks::No);
    let Ok(file) = source.open_with(".dockerignore", &options) else {
        return Ok(None);
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut text = String::new();
    file.take(MAX_DOCKERIGNORE).read_to_string(&mut text)?;
    Ok(Some(text))
}

struct Copy<'a> {
    source: &'a Dir,
    dest: &'a Path,
    ignore: Option<ignore::gitignore::Gitignore>,
    max_bytes: u64,
    used: u64,
    done: Snapshot,
}

impl Copy<'_> {
    /// Copies the entries of the directory at `relative`, queueing its subdirectories.
    fn directory(&mut self, relative: &Path, pending: &mut Vec<PathBuf>) -> Result<(), BuildError> {
        let dir = if relative.as_os_str().is_empty() {
            self.source.try_clone()?
        } else {
            // cap-std keeps every lookup inside `source`; the last step follows no link.
            self.source.open_dir_nofollow(relative)?
        };
        for entry in dir.entries()? {
            let entry = entry?;
            let name = entry.file_name();
            let path = relative.join(&name);
            if path == Path::new(".git") {
                continue;
            }
            self.charge(ENTRY_COST)?;
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                self.link(&dir, &name, &path)?;
            } else if kind.is_dir() {
                let ignored = self
                    .ignore
                    .as_ref()
                    .is_some_and(|i| i.matched(&path, true).is_ignore());
                if ignored {
                    self.done.pruned.push(path.to_string_lossy().into_owned());
                    continue;
                }
                std::fs::create_dir(self.dest.join(&path))?;
                pending.push(path);
            } else if kind.is_file() {
                self.file(&dir, &name, &path)?;
            } else {
                self.done.skipped.push(path.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }

    /// A link is copied as a link; one whose text leads out of the tree is refused.
    fn link(&mut self, dir: &Dir, name: &std::ffi::OsStr, path: &Path) -> Result<(), BuildError> {
        let target = dir.read_link_contents(name)?;
        if link_escapes(path, &target) {
            return Err(BuildError::Source(format!(
                "the symlink {} points outside the source directory (to {}); replace it with the file itself",
                path.display(),
                target.display()
            )));
        }
        std::os::unix::fs::symlink(&target, self.dest.join(path))?;
        Ok(())
    }

    /// A regular file, read from a descriptor opened without following links and checked
    /// to be a regular file (a FIFO swapped in is not waited on).
    fn file(&mut self, dir: &Dir, name: &std::ffi::OsStr, path: &Path) -> Result<(), BuildError> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .follow(FollowSymlinks::No)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = dir.open_with(name, &options)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            self.done.skipped.push(path.to_string_lossy().into_owned());
            return Ok(());
        }
        let room = self.max_bytes.saturating_sub(self.used);
        let mut out = std::fs::File::create(self.dest.join(path))?;
        let copied = std::io::copy(&mut file.take(room.saturating_add(1)), &mut out)?;
        self.charge(copied)?;
        let mode = cap_std::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777;
        out.set_permissions(std::fs::Permissions::from_mode(mode | 0o600))?;
        self.done.bytes += copied;
        self.done.files += 1;
        Ok(())
    }

    fn charge(&mut self, bytes: u64) -> Result<(), BuildError> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.max_bytes {
            return Err(BuildError::SourceTooLarge {
                limit_mib: self.max_bytes / (1024 * 1024),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(root.join("src/deep/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join("src/deep/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("node_modules/x/big.js"), "x".repeat(4096)).unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        symlink("../Dockerfile", root.join("src/df")).unwrap();
        dir
    }

    fn open(dir: &Path) -> Dir {
        open_source_dir(&dir.canonicalize().unwrap()).unwrap()
    }

    #[test]
    fn copies_files_modes_and_inner_links_without_git_or_ignored_dirs() {
        let source = tree();
        std::fs::write(source.path().join(".dockerignore"), "node_modules\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("src");
        let done = snapshot(&open(source.path()), &dest, 1 << 20, true).unwrap();
        assert_eq!(done.pruned, vec!["node_modules".to_string()]);
        assert_eq!(
            std::fs::read(dest.join("Dockerfile")).unwrap(),
            b"FROM scratch\n"
        );
        let mode = std::fs::metadata(dest.join("src/deep/run.sh"))
            .unwrap()
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o755, "the exec bit is kept");
        assert_eq!(
            std::fs::read_link(dest.join("src/df")).unwrap(),
            Path::new("../Dockerfile")
        );
        assert!(!dest.join(".git").exists() && !dest.join("node_modules").exists());

        // With a re-include, or when asked, nothing is pruned.
        std::fs::write(
            source.path().join(".dockerignore"),
            "node_modules\n!node_modules/x/big.js\n",
        )
        .unwrap();
        let dest = out.path().join("again");
        let done = snapshot(&open(source.path()), &dest, 1 << 20, true).unwrap();
        assert!(done.pruned.is_empty(), "{done:?}");
        assert!(dest.join("node_modules/x/big.js").exists());
    }

    #[test]
    fn links_out_of_the_tree_are_refused_and_never_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("marker"), "OUTSIDE-CONTENT").unwrap();
        for (name, target) in [
            ("abs", outside.path().to_path_buf()),
            ("up", PathBuf::from("src/../../x")),
            ("chain", PathBuf::from("src/deep/../../../etc/passwd")),
        ] {
            let source = tree();
            symlink(&target, source.path().join(name)).unwrap();
            let out = tempfile::tempdir().unwrap();
            let err = snapshot(&open(source.path()), &out.path().join("s"), 1 << 20, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains("outside"), "{err}");
            assert!(!err.contains("OUTSIDE-CONTENT"), "{err}");
        }
    }

    #[test]
    fn a_directory_swapped_for_a_link_is_not_opened_and_an_open_one_stays_put() {
        let parent = tempfile::tempdir().unwrap();
        let app = parent.path().join("app");
        std::fs::create_dir(&app).unwrap();
        std::fs::write(app.join("Dockerfile"), "FROM scratch\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("marker"), "OUTSIDE").unwrap();
        let real = app.canonicalize().unwrap();

        // Opened first, swapped after: the copy is of the directory that was opened.
        let opened = open_source_dir(&real).unwrap();
        std::fs::rename(&app, parent.path().join("moved")).unwrap();
        symlink(outside.path(), &app).unwrap();
        let out = tempfile::tempdir().unwrap();
        snapshot(&opened, &out.path().join("s"), 1 << 20, false).unwrap();
        assert!(out.path().join("s/Dockerfile").exists());
        assert!(!out.path().join("s/marker").exists());

        // Swapped before it is opened: refused, naming the change.
        let err = open_source_dir(&real).unwrap_err().to_string();
        assert!(err.contains("changed since it was checked"), "{err}");
    }

    #[tokio::test]
    async fn git_reads_the_open_directory_through_its_fd_path() {
        let parent = tempfile::tempdir().unwrap();
        let app = parent.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.email=t@example.test", "-c", "user.name=t"])
                .args(args)
                .current_dir(&app)
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["commit", "-q", "--allow-empty", "-m", "x"]);
        let head = git(&["rev-parse", "HEAD"]);
        let opened = SourceDir::open(&app.canonicalize().unwrap()).unwrap();
        std::fs::rename(&app, parent.path().join("moved")).unwrap();
        std::fs::create_dir(&app).unwrap();
        assert_eq!(
            crate::local_commit(&opened.fd_path()).await.as_deref(),
            Some(head.as_str())
        );
    }

    #[test]
    fn fifos_are_skipped_and_the_size_limit_is_named() {
        let source = tree();
        let fifo = std::ffi::CString::new(source.path().join("pipe").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo only creates a node at a path we own.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let out = tempfile::tempdir().unwrap();
        let done = snapshot(&open(source.path()), &out.path().join("s"), 1 << 20, false).unwrap();
        assert_eq!(done.skipped, vec!["pipe".to_string()]);

        let err = snapshot(&open(source.path()), &out.path().join("t"), 2048, false).unwrap_err();
        assert!(matches!(err, BuildError::SourceTooLarge { .. }), "{err}");
    }
}
