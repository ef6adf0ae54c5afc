//! What a source tree's layout says about its apps: the subdirectories that each hold an
//! app when the root holds none (a monorepo), so the plan can name them instead of
//! guessing.

use std::path::Path;

/// Files that mark a directory as an app's root, with how they are described.
const APP_MARKERS: [&str; 14] = [
    "Dockerfile",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "package.json",
    "requirements.txt",
    "pyproject.toml",
    "go.mod",
    "Cargo.toml",
    "Gemfile",
    "composer.json",
    "pom.xml",
    "Procfile",
];

/// Directories never taken for an app.
const SKIPPED: [&str; 5] = ["node_modules", "vendor", "target", "dist", "build"];

/// The first marker in `dir`, if any.
pub fn app_marker(dir: &Path) -> Option<&'static str> {
    APP_MARKERS.into_iter().find(|m| dir.join(m).is_file())
}

/// Subdirectories (one or two levels down) that hold an app, as `(base_dir, marker)`,
/// sorted. Hidden and dependency directories are skipped; a directory that holds an app
/// is not searched further.
pub fn app_subdirectories(root: &Path) -> Vec<(String, &'static str)> {
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

fn subdirectories(dir: &Path) -> Vec<std::path::PathBuf> {
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

    #[test]
    fn apps_in_subdirectories_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        };
        write("api/Dockerfile");
        write("apps/web/package.json");
        write("apps/web/node_modules/x/package.json");
        write("node_modules/y/package.json");
        write(".github/workflows/Dockerfile");
        write("docs/README.md");
        assert_eq!(app_marker(dir.path()), None);
        assert_eq!(
            app_subdirectories(dir.path()),
            vec![
                ("api".to_string(), "Dockerfile"),
                ("apps/web".to_string(), "package.json")
            ]
        );
    }
}
