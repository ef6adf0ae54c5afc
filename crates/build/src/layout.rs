//! What a source tree's layout says about its apps: whether a directory holds an app of its
//! own (judged from its own files only, never from files deeper down), and, when the root
//! holds none, the subdirectories that each hold one (a monorepo, a samples collection), so
//! the plan names them instead of building whatever a detector finds somewhere inside.

use crate::BuildError;
use std::path::{Path, PathBuf};

/// Files that mark a directory as an app's root: each names what Capstan or a nixpacks
/// provider builds from that directory.
const APP_MARKERS: [&str; 33] = [
    "Dockerfile",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "package.json",
    "requirements.txt",
    "pyproject.toml",
    "Pipfile",
    "main.py",
    "go.mod",
    "main.go",
    "Cargo.toml",
    "Gemfile",
    "composer.json",
    "index.php",
    "pom.xml",
    "gradlew",
    "build.sbt",
    "mix.exs",
    "deno.json",
    "deno.jsonc",
    "shard.yml",
    "pubspec.yaml",
    "Package.swift",
    "gleam.toml",
    "project.clj",
    "build.clj",
    "haunt.scm",
    "Staticfile",
    "Procfile",
    "index.html",
    "package.yaml",
];

/// Extensions of files that mark a directory as an app's root when one sits in it (nixpacks
/// looks for these anywhere below, which is why its own detection is not asked here).
const MARKER_EXTENSIONS: [&str; 4] = ["csproj", "fsproj", "zig", "cbl"];

/// Directories below an app's root where a static site's `index.html` is looked for.
const SITE_DIRS: [&str; 5] = ["dist", "build", "public", "_site", "out"];

/// Directories never taken for an app.
const SKIPPED: [&str; 5] = ["node_modules", "vendor", "target", "dist", "build"];

/// Script extensions a Deno app's entry file may have.
const DENO_SCRIPTS: [&str; 4] = ["ts", "tsx", "js", "jsx"];

/// How much of a script is read to tell whether it imports from deno.land.
const DENO_SNIFF_BYTES: u64 = 64 * 1024;

/// What in `dir` itself marks it as an app's root (a file name, or `dist/index.html`), if
/// anything. Only `dir`'s own files count.
pub fn app_marker(dir: &Path) -> Option<String> {
    if let Some(marker) = APP_MARKERS.into_iter().find(|m| dir.join(m).is_file()) {
        return Some(marker.to_string());
    }
    let files = files_in(dir);
    let by_extension = files.iter().find(|name| {
        Path::new(name)
            .extension()
            .is_some_and(|e| MARKER_EXTENSIONS.iter().any(|m| e == *m))
    });
    if let Some(name) = by_extension {
        return Some(name.clone());
    }
    let deno = files.iter().find(|name| {
        let is_script = Path::new(name)
            .extension()
            .is_some_and(|e| DENO_SCRIPTS.iter().any(|m| e == *m));
        is_script && imports_from_deno_land(&dir.join(name))
    });
    if let Some(name) = deno {
        return Some(name.clone());
    }
    SITE_DIRS
        .into_iter()
        .map(|d| format!("{d}/index.html"))
        .find(|site| dir.join(site).is_file())
}

/// Subdirectories (one or two levels down) that hold an app, as `(base_dir, marker)`,
/// sorted. Hidden and dependency directories are skipped; a directory that holds an app
/// is not searched further.
pub fn app_subdirectories(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for child in subdirectories(root) {
        let name = child.file_name().unwrap_or_default().to_string_lossy();
        if let Some(marker) = app_marker(&child) {
            found.push((name.to_string(), marker));
            continue;
        }
        for grandchild in subdirectories(&child) {
            if let Some(marker) = app_marker(&grandchild) {
                let inner = grandchild.file_name().unwrap_or_default().to_string_lossy();
                found.push((format!("{name}/{inner}"), marker));
            }
        }
    }
    found.sort();
    found
}

/// A root with no app of its own but apps in subdirectories is a tree of apps: refused
/// with the candidates, rather than built as whatever a detector finds somewhere inside.
pub fn refuse_a_tree_of_apps(context: &Path) -> Result<(), BuildError> {
    if app_marker(context).is_some() {
        return Ok(());
    }
    match subdirectory_apps(context) {
        Some(listed) => Err(BuildError::NoPlan(format!(
            "there is no app at the root of the source, but {listed}; set build.base_dir to \
             the one to deploy (one Capstan app per directory)"
        ))),
        None => Ok(()),
    }
}

/// "there is one in a subdirectory: api (Dockerfile)" or "there are several in
/// subdirectories: ...", when subdirectories of `context` hold apps.
pub fn subdirectory_apps(context: &Path) -> Option<String> {
    let candidates = app_subdirectories(context);
    let listed: Vec<String> = candidates
        .iter()
        .map(|(dir, marker)| format!("{dir} ({marker})"))
        .collect();
    match listed.as_slice() {
        [] => None,
        [only] => Some(format!("there is one in a subdirectory: {only}")),
        _ => Some(format!(
            "there are several in subdirectories: {}",
            listed.join(", ")
        )),
    }
}

fn imports_from_deno_land(path: &Path) -> bool {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = Vec::new();
    if file.take(DENO_SNIFF_BYTES).read_to_end(&mut head).is_err() {
        return false;
    }
    String::from_utf8_lossy(&head).contains("https://deno.land/")
}

/// The names of the regular files directly in `dir`.
fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            !name.starts_with('.') && !SKIPPED.contains(&name.as_str())
        })
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn apps_in_subdirectories_are_listed() {
        let dir = tree(&[
            ("api/Dockerfile", "x"),
            ("apps/web/package.json", "x"),
            ("apps/web/node_modules/x/package.json", "x"),
            ("node_modules/y/package.json", "x"),
            (".github/workflows/Dockerfile", "x"),
            ("docs/README.md", "x"),
            ("site/index.html", "x"),
            ("dotnet/Hello.csproj", "x"),
        ]);
        assert_eq!(app_marker(dir.path()), None);
        let found = app_subdirectories(dir.path());
        let found: Vec<(&str, &str)> = found
            .iter()
            .map(|(d, m)| (d.as_str(), m.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("api", "Dockerfile"),
                ("apps/web", "package.json"),
                ("dotnet", "Hello.csproj"),
                ("site", "index.html"),
            ]
        );
    }

    #[test]
    fn only_a_directorys_own_files_make_it_an_app() {
        // nixpacks finds Deno, .NET or Zig anywhere below; here only the root counts.
        let collection = tree(&[
            ("README.md", "samples"),
            (
                "deno-hello/main.ts",
                "import { serve } from \"https://deno.land/std/http/server.ts\";\n",
            ),
            ("dotnet-hello/Hello.csproj", "<Project/>"),
            ("flask-hello/requirements.txt", "flask\n"),
        ]);
        assert_eq!(app_marker(collection.path()), None);
        let err = refuse_a_tree_of_apps(collection.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "there are several in subdirectories: deno-hello (main.ts), dotnet-hello \
                 (Hello.csproj), flask-hello (requirements.txt)"
            ),
            "{err}"
        );
        assert!(err.contains("build.base_dir"), "{err}");
        // A root with its own app is planned as one, whatever lies below it.
        for (file, text) in [
            ("main.py", "print(1)"),
            ("App.csproj", "<Project/>"),
            (
                "server.ts",
                "import x from 'https://deno.land/x/oak/mod.ts';",
            ),
            ("dist/index.html", "<p>"),
        ] {
            let root = tree(&[(file, text), ("api/Dockerfile", "FROM scratch")]);
            assert!(app_marker(root.path()).is_some(), "{file}");
            assert!(refuse_a_tree_of_apps(root.path()).is_ok(), "{file}");
        }
        // A TypeScript file that is no Deno app is not a marker.
        let plain = tree(&[("eslint.config.js", "export default [];")]);
        assert_eq!(app_marker(plain.path()), None);
    }
}
