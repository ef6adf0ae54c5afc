//! A start command for a Python web app when nixpacks has none: the conventions a user
//! expects a PaaS to know (Heroku and Render samples rely on them), always bound to
//! `0.0.0.0:$PORT` (the app's port when `PORT` is unset).
//! - Django (`manage.py` and a `<project>/wsgi.py`): gunicorn on the WSGI application, or
//!   Django's own server when gunicorn is not a dependency;
//! - an `app.py`, `main.py`, `server.py` or `wsgi.py`/`asgi.py` defining `app`: uvicorn
//!   when it (or FastAPI) is a dependency, else gunicorn, else Flask's server.

use std::path::Path;

/// The dependencies a Python project declares (requirements.txt, pyproject.toml,
/// Pipfile), lower-cased, as one text to search.
fn dependencies(dir: &Path) -> String {
    ["requirements.txt", "pyproject.toml", "Pipfile"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_lowercase()
}

fn depends_on(deps: &str, package: &str) -> bool {
    deps.lines().any(|line| {
        let line = line.trim().trim_start_matches(['"', '\'']);
        line.starts_with(package)
            && line[package.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    })
}

/// Whether a module's source binds a top-level `app` (`app = Flask(...)`, `app: FastAPI = ...`).
fn defines_app(source: &str) -> bool {
    source.lines().any(|line| {
        let rest = line.strip_prefix("app").map(str::trim_start);
        matches!(rest, Some(r) if r.starts_with('=') && !r.starts_with("==") || r.starts_with(':'))
    })
}

/// The start command for the Python project in `dir`, if its shape says what it is.
pub fn python_start_command(dir: &Path, port: u16) -> Option<String> {
    let deps = dependencies(dir);
    let bind = format!("0.0.0.0:${{PORT:-{port}}}");
    let gunicorn = depends_on(&deps, "gunicorn");
    if dir.join("manage.py").is_file() {
        let project = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.path().join("wsgi.py").is_file())
            .and_then(|e| e.file_name().to_str().map(str::to_string));
        return Some(match (project, gunicorn) {
            (Some(project), true) => format!("gunicorn {project}.wsgi:application --bind {bind}"),
            _ => format!("python manage.py runserver {bind}"),
        });
    }
    let module = ["app", "main", "server", "wsgi", "asgi"]
        .into_iter()
        .find(|m| {
            std::fs::read_to_string(dir.join(format!("{m}.py"))).is_ok_and(|s| defines_app(&s))
        })?;
    let asgi = depends_on(&deps, "uvicorn") || depends_on(&deps, "fastapi");
    Some(if asgi {
        format!("uvicorn {module}:app --host 0.0.0.0 --port ${{PORT:-{port}}}")
    } else if gunicorn {
        format!("gunicorn {module}:app --bind {bind}")
    } else if depends_on(&deps, "flask") {
        format!("flask --app {module} run --host 0.0.0.0 --port ${{PORT:-{port}}}")
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn flask_with_gunicorn() {
        let dir = project(&[
            ("requirements.txt", "Flask==3.0\ngunicorn>=21\n"),
            ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
        ]);
        assert_eq!(
            python_start_command(dir.path(), 8080).unwrap(),
            "gunicorn app:app --bind 0.0.0.0:${PORT:-8080}"
        );
    }

    #[test]
    fn fastapi_with_uvicorn_in_main() {
        let dir = project(&[
            ("requirements.txt", "fastapi\nuvicorn[standard]\n"),
            (
                "main.py",
                "from fastapi import FastAPI\napp: FastAPI = FastAPI()\n",
            ),
        ]);
        assert_eq!(
            python_start_command(dir.path(), 5000).unwrap(),
            "uvicorn main:app --host 0.0.0.0 --port ${PORT:-5000}"
        );
    }

    #[test]
    fn django_project() {
        let files = [
            ("requirements.txt", "Django>=5\ngunicorn\n"),
            ("manage.py", "#!/usr/bin/env python\n"),
            ("mysite/wsgi.py", "application = get_wsgi_application()\n"),
        ];
        let dir = project(&files);
        assert_eq!(
            python_start_command(dir.path(), 8000).unwrap(),
            "gunicorn mysite.wsgi:application --bind 0.0.0.0:${PORT:-8000}"
        );
        let dir = project(&[files[1], files[2], ("requirements.txt", "django\n")]);
        assert_eq!(
            python_start_command(dir.path(), 8000).unwrap(),
            "python manage.py runserver 0.0.0.0:${PORT:-8000}"
        );
    }

    #[test]
    fn nothing_recognisable_gives_nothing() {
        let dir = project(&[
            ("requirements.txt", "requests\ngunicorn-extras\n"),
            ("app.py", "application = 1\nif app == 2: pass\n"),
        ]);
        assert_eq!(python_start_command(dir.path(), 8080), None);
    }
}
