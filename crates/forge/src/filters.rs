//! Whether a push should deploy at all: skip markers in the head commit's message and
//! watch paths for monorepos (prefix of whole path segments, or a glob when the watch
//! path has glob characters).

use globset::{Glob, GlobBuilder, GlobMatcher};

/// Markers that skip a deployment, lower-case, with the marker reported for each.
const SKIP_MARKERS: [(&str, &str); 4] = [
    ("[skip deploy]", "[skip deploy]"),
    ("[deploy skip]", "[skip deploy]"),
    ("[skip ci]", "[skip ci]"),
    ("[ci skip]", "[skip ci]"),
];

/// The skip marker in a commit message, case-insensitive: `"[skip deploy]"` (also written
/// `[deploy skip]`) or `"[skip ci]"` (also `[ci skip]`).
pub fn skip_marker(message: &str) -> Option<&'static str> {
    let lower = message.to_lowercase();
    SKIP_MARKERS
        .iter()
        .find(|(written, _)| lower.contains(written))
        .map(|(_, marker)| *marker)
}

/// A watch path that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchPathError {
    #[error("watch path {path:?} is not a valid glob: {reason}")]
    Glob { path: String, reason: String },
    #[error("watch path {path:?} leaves the repository")]
    Escapes { path: String },
}

/// Checks a watch path as the settings validation should before storing it.
pub fn check_watch_path(path: &str) -> Result<(), WatchPathError> {
    let clean = clean_path(path);
    if clean.split('/').any(|segment| segment == "..") {
        return Err(WatchPathError::Escapes {
            path: path.to_owned(),
        });
    }
    if is_glob(clean) {
        glob(clean).map_err(|e| WatchPathError::Glob {
            path: path.to_owned(),
            reason: e.kind().to_string(),
        })?;
    }
    Ok(())
}

/// Whether a changed file is under (or equal to) one of the watch paths: `apps/web`
/// matches `apps/web/x.js`, not `apps/website/x`. Leading `./` and `/` are ignored. A
/// watch path with `*`, `?`, `[` or `{` is a glob (`*` stays within a segment, `**`
/// crosses them) matched against the file and each directory above it. No watch paths,
/// or one naming the whole repository (`.`, `/`), watches everything.
pub fn touches_watched(changed: &[String], watch_paths: &[String]) -> bool {
    if watch_paths.is_empty() {
        return true;
    }
    let watches: Vec<Watch> = watch_paths.iter().map(|p| Watch::new(p)).collect();
    changed.iter().any(|file| {
        let file = clean_path(file);
        watches.iter().any(|watch| watch.covers(file))
    })
}

enum Watch<'a> {
    Prefix(&'a str),
    Glob(GlobMatcher),
}

impl<'a> Watch<'a> {
    fn new(path: &'a str) -> Self {
        let clean = clean_path(path);
        if is_glob(clean) {
            if let Ok(glob) = glob(clean) {
                return Watch::Glob(glob.compile_matcher());
            }
        }
        // An unusable glob (refused by `check_watch_path` before it is stored) is read
        // literally.
        Watch::Prefix(clean)
    }

    fn covers(&self, file: &str) -> bool {
        match self {
            Watch::Prefix("") => true,
            Watch::Prefix(prefix) => {
                file == *prefix
                    || file
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            Watch::Glob(matcher) => ancestors(file).any(|path| matcher.is_match(path)),
        }
    }
}

/// The path itself, then each directory above it (`a/b/c`, `a/b`, `a`).
fn ancestors(file: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(file), |path| {
        path.rsplit_once('/').map(|(parent, _)| parent)
    })
}

/// A path without leading `./` or `/` or trailing `/`; `.` alone reads as the root.
fn clean_path(path: &str) -> &str {
    let mut path = path.trim();
    loop {
        let next = path.trim_start_matches('/');
        let next = next.strip_prefix("./").unwrap_or(next);
        if next == path {
            break;
        }
        path = next;
    }
    let path = path.trim_end_matches('/');
    if path == "." {
        ""
    } else {
        path
    }
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

fn glob(path: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(path).literal_separator(true).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    fn touches(changed: &[&str], watch: &[&str]) -> bool {
        touches_watched(&owned(changed), &owned(watch))
    }

    #[test]
    fn skip_markers_are_found_in_any_case() {
        assert_eq!(skip_marker("fix typo [skip deploy]"), Some("[skip deploy]"));
        assert_eq!(skip_marker("Docs\n\n[Deploy Skip]"), Some("[skip deploy]"));
        assert_eq!(skip_marker("[SKIP CI] readme"), Some("[skip ci]"));
        assert_eq!(skip_marker("wip [ci skip]"), Some("[skip ci]"));
        assert_eq!(skip_marker("skip deploy"), None);
        assert_eq!(skip_marker("[skip-deploy]"), None);
        assert_eq!(skip_marker(""), None);
    }

    #[test]
    fn watch_paths_match_whole_segments() {
        assert!(touches(&["apps/web/x.js"], &["apps/web"]));
        assert!(touches(&["apps/web"], &["apps/web"]));
        assert!(!touches(&["apps/website/x"], &["apps/web"]));
        assert!(!touches(
            &["apps/api/main.rs", "README.md"],
            &["apps/web", "libs/ui"]
        ));
        assert!(touches(
            &["apps/api/main.rs", "libs/ui/button.tsx"],
            &["apps/web", "libs/ui"]
        ));
        assert!(touches(&["apps/web/x.js"], &["./apps/web/"]));
        assert!(touches(&["apps/web/x.js"], &["/apps/web"]));
        assert!(touches(&["./apps/web/x.js"], &["apps/web"]));
        assert!(!touches(&[], &["apps/web"]));
    }

    #[test]
    fn no_watch_paths_or_the_root_watch_everything() {
        assert!(touches(&["anything"], &[]));
        assert!(touches(&["anything"], &["."]));
        assert!(touches(&["anything"], &["/"]));
    }

    #[test]
    fn globs_match_files_and_their_directories() {
        assert!(touches(&["apps/web/src/a.ts"], &["apps/*/src"]));
        assert!(!touches(&["apps/web/test/a.ts"], &["apps/*/src"]));
        assert!(touches(&["docs/guide/intro.md"], &["**/*.md"]));
        assert!(!touches(&["docs/guide/intro.txt"], &["**/*.md"]));
        assert!(!touches(&["a/b.md"], &["*.md"]));
        assert!(touches(&["b.md"], &["*.md"]));
        assert!(touches(&["services/api/x"], &["services/{api,worker}"]));
    }

    #[test]
    fn watch_paths_are_checked_before_storing() {
        assert_eq!(check_watch_path("apps/web"), Ok(()));
        assert_eq!(check_watch_path("apps/*/src"), Ok(()));
        assert!(matches!(
            check_watch_path("apps/[web"),
            Err(WatchPathError::Glob { .. })
        ));
        assert!(matches!(
            check_watch_path("../other"),
            Err(WatchPathError::Escapes { .. })
        ));
    }
}
