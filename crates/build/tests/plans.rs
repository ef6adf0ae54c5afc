//! Plan detection on the sample repos in `tests/repos/`, one per detection path. nixpacks'
//! base images cannot be pulled on this machine, so its plans and generated Dockerfiles are
//! checked here offline; the Dockerfile, static and image paths are built for real by the
//! end-to-end tests.

use capstan_build::{pack_context, prepare, Plan};
use capstan_core::{BuildKind, BuildSpec};
use std::path::{Path, PathBuf};

fn repo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/repos")
        .join(name)
}

fn auto() -> BuildSpec {
    BuildSpec::default()
}

fn nixpacks_dockerfile(name: &str, provider: &str) -> String {
    let root = repo(name);
    let recipe = prepare(&root, &auto(), 8080).unwrap_or_else(|e| panic!("{name}: {e}"));
    match &recipe.plan {
        Plan::Nixpacks { providers } => {
            assert!(
                providers.iter().any(|p| p == provider),
                "{name}: {providers:?}"
            )
        }
        other => panic!("{name}: expected nixpacks, got {other:?}"),
    }
    assert_eq!(recipe.dockerfile, ".nixpacks/Dockerfile");
    assert!(
        recipe
            .generated
            .iter()
            .any(|f| f.path == ".nixpacks/Dockerfile"),
        "{name}: the Dockerfile travels with the context"
    );
    assert!(
        !root.join(".nixpacks").exists(),
        "{name}: planning must not write into the source tree"
    );
    // The generated files go into the same context tar a Dockerfile build uses.
    let tar = pack_context(&recipe.context_dir, &recipe.dockerfile, &recipe.generated).unwrap();
    assert!(!tar.is_empty());
    assert!(
        recipe
            .dockerfile_text
            .starts_with("FROM ghcr.io/railwayapp/nixpacks:"),
        "{name}: {}",
        recipe.dockerfile_text
    );
    recipe.dockerfile_text
}

#[test]
fn node_with_a_lockfile_installs_with_npm_ci() {
    let text = nixpacks_dockerfile("node-lockfile", "node");
    assert!(text.contains("npm ci"), "{text}");
    let recipe = prepare(&repo("node-lockfile"), &auto(), 8080).unwrap();
    assert_eq!(
        recipe.build_args.get("NODE_ENV").map(String::as_str),
        Some("production"),
        "the Dockerfile's ARGs get nixpacks' values"
    );
    assert!(
        text.contains("npm run start") || text.contains("node server.js"),
        "{text}"
    );
}

#[test]
fn node_without_a_lockfile_installs_with_npm_install_and_builds() {
    let text = nixpacks_dockerfile("node-no-lockfile", "node");
    assert!(text.contains("npm i"), "{text}");
    assert!(text.contains("npm run build"), "{text}");
}

#[test]
fn python_with_requirements_txt() {
    let text = nixpacks_dockerfile("python-requirements", "python");
    assert!(text.contains("requirements.txt"), "{text}");
    assert!(text.contains("python main.py"), "{text}");
}

#[test]
fn python_flask_without_a_start_command_gets_gunicorn_on_the_port() {
    let text = nixpacks_dockerfile("python-flask-gunicorn", "python");
    assert!(
        text.contains("gunicorn app:app --bind 0.0.0.0:${PORT:-8080}"),
        "{text}"
    );
}

#[test]
fn python_without_a_start_command_says_what_it_found_and_how_to_add_one() {
    let err = prepare(&repo("python-no-start"), &auto(), 8080)
        .unwrap_err()
        .to_string();
    assert!(err.contains("python"), "{err}");
    assert!(
        err.contains("Procfile") && err.contains("nixpacks.toml"),
        "{err}"
    );
}

#[test]
fn python_with_pyproject() {
    let text = nixpacks_dockerfile("python-pyproject", "python");
    assert!(text.contains("pip install"), "{text}");
}

#[test]
fn go_modules() {
    let text = nixpacks_dockerfile("go-modules", "go");
    assert!(text.contains("go build"), "{text}");
}

#[test]
fn rust_crate() {
    let text = nixpacks_dockerfile("rust-crate", "rust");
    assert!(text.contains("cargo build --release"), "{text}");
}

#[test]
fn static_site_at_the_root_or_in_a_build_output_dir() {
    for (name, dir) in [("static-root", "."), ("static-dist", "dist")] {
        let recipe = prepare(&repo(name), &auto(), 8080).unwrap();
        assert_eq!(
            recipe.plan,
            Plan::Static {
                publish_dir: dir.into(),
                image: capstan_core::build_spec::DEFAULT_STATIC_IMAGE.into()
            },
            "{name}"
        );
        assert!(recipe.dockerfile_text.contains("\"-p\", \"8080\""));
        assert_eq!(recipe.dockerfile, ".capstan/Dockerfile");
    }
    // nixpacks would take a plain index.html too; asked for explicitly it still works.
    let explicit = BuildSpec {
        kind: BuildKind::Nixpacks,
        ..auto()
    };
    let recipe = prepare(&repo("static-root"), &explicit, 8080).unwrap();
    assert!(matches!(recipe.plan, Plan::Nixpacks { .. }));
}

#[test]
fn dockerfile_with_a_stage_and_a_monorepo_base_dir() {
    let staged = BuildSpec {
        target: Some("runtime".into()),
        ..auto()
    };
    let recipe = prepare(&repo("dockerfile-stages"), &staged, 8080).unwrap();
    assert_eq!(
        recipe.plan,
        Plan::Dockerfile {
            path: "Dockerfile".into(),
            target: Some("runtime".into())
        }
    );
    assert!(recipe.dockerfile_text.contains("AS runtime"));

    let api = BuildSpec {
        base_dir: "services/api".into(),
        ..auto()
    };
    let recipe = prepare(&repo("monorepo"), &api, 8080).unwrap();
    assert!(recipe.context_dir.ends_with("monorepo/services/api"));
    assert!(matches!(recipe.plan, Plan::Dockerfile { .. }));
    let web = BuildSpec {
        base_dir: "web".into(),
        ..auto()
    };
    let recipe = prepare(&repo("monorepo"), &web, 8080).unwrap();
    assert!(matches!(recipe.plan, Plan::Static { .. }));
}

#[test]
fn compose_files_are_found_and_checked() {
    let recipe = prepare(&repo("compose-app"), &auto(), 8080).unwrap();
    assert_eq!(
        recipe.plan,
        Plan::Compose {
            file: "compose.yaml".into(),
            services: vec!["cache".into(), "web".into()],
            web: "web".into()
        }
    );
    assert!(recipe.builds(), "web's build is the recipe");
    assert_eq!(recipe.dockerfile, "Dockerfile");
    let (compose, _) = recipe.compose.as_ref().unwrap();
    assert_eq!(compose.services["cache"].image.as_deref(), Some("redis:7"));
    let unknown = BuildSpec {
        compose_service: Some("api".into()),
        ..auto()
    };
    let err = prepare(&repo("compose-app"), &unknown, 8080)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"api\", but the services are cache, web"),
        "{err}"
    );
    let err = prepare(&repo("compose-missing-build"), &auto(), 8080)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("docker-compose.yml") && err.contains("\"worker\""),
        "{err}"
    );
}

#[test]
fn nothing_known_explains_what_was_looked_for() {
    let err = prepare(&repo("nothing-known"), &auto(), 8080)
        .unwrap_err()
        .to_string();
    for expected in [
        "Dockerfile",
        "compose.yaml",
        "package.json",
        "index.html",
        "build.type",
    ] {
        assert!(err.contains(expected), "{expected} missing from: {err}");
    }
    for (kind, expected) in [
        (BuildKind::Dockerfile, "no Dockerfile"),
        (BuildKind::Static, "no index.html"),
        (BuildKind::Nixpacks, "no nixpacks provider"),
        (BuildKind::Compose, "no compose.yaml"),
    ] {
        let spec = BuildSpec { kind, ..auto() };
        let err = prepare(&repo("nothing-known"), &spec, 8080)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{kind:?}: {err}");
    }
}

#[test]
fn base_dirs_and_dockerfiles_that_leave_the_tree_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let tree = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), tree.path().join("linked")).unwrap();
    let spec = BuildSpec {
        base_dir: "linked".into(),
        ..auto()
    };
    let err = prepare(tree.path(), &spec, 8080).unwrap_err().to_string();
    assert!(err.contains("outside the source tree"), "{err}");
    std::os::unix::fs::symlink(
        outside.path().join("Dockerfile"),
        tree.path().join("Dockerfile"),
    )
    .unwrap();
    let err = prepare(tree.path(), &auto(), 8080).unwrap_err().to_string();
    assert!(err.contains("outside the source tree"), "{err}");
    let missing = BuildSpec {
        base_dir: "nope".into(),
        ..auto()
    };
    let err = prepare(tree.path(), &missing, 8080)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nope\" does not exist"), "{err}");
}

#[test]
fn a_compose_file_that_builds_the_dockerfile_beside_other_services_wins() {
    let recipe = prepare(&repo("compose-beside-dockerfile"), &auto(), 8080).unwrap();
    match &recipe.plan {
        Plan::Compose { web, services, .. } => {
            assert_eq!(web, "web");
            assert_eq!(services, &vec!["cache".to_string(), "web".to_string()]);
        }
        other => panic!("expected compose, got {other:?}"),
    }
    assert!(
        recipe
            .reason
            .contains("found a Dockerfile at Dockerfile and compose.yaml")
            && recipe.reason.contains("add cache"),
        "{}",
        recipe.reason
    );
    // Asked for the Dockerfile alone, it is the Dockerfile.
    let only = BuildSpec {
        kind: BuildKind::Dockerfile,
        ..auto()
    };
    let recipe = prepare(&repo("compose-beside-dockerfile"), &only, 8080).unwrap();
    assert!(matches!(recipe.plan, Plan::Dockerfile { .. }));
}

#[test]
fn the_service_that_publishes_ports_serves_the_app() {
    let recipe = prepare(&repo("compose-ports"), &auto(), 8080).unwrap();
    match &recipe.plan {
        Plan::Compose { web, .. } => assert_eq!(web, "frontend"),
        other => panic!("expected compose, got {other:?}"),
    }
    let (compose, _) = recipe.compose.as_ref().unwrap();
    assert_eq!(
        compose.services["api"].declared_port(),
        Some((5000, "expose"))
    );
    assert_eq!(
        compose.services["frontend"].declared_port(),
        Some((80, "ports"))
    );
}

#[test]
fn a_root_without_an_app_but_apps_below_is_refused_with_the_candidates() {
    let err = prepare(&repo("monorepo"), &auto(), 8080)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no app at the root") && err.contains("services/api (Dockerfile)"),
        "{err}"
    );
    assert!(err.contains("build.base_dir"), "{err}");
}

#[test]
fn a_procfile_gives_the_start_and_release_commands_a_dockerfile_lacks() {
    use capstan_build::procfile::apply_procfile;
    let root = repo("procfile-release");
    let recipe = prepare(&root, &auto(), 8080).unwrap();
    let mut spec: capstan_core::AppSpec =
        serde_json::from_str(r#"{"source":{"path":"/x"}}"#).unwrap();
    let applied = apply_procfile(&root, &recipe, &mut spec).unwrap();
    assert_eq!(
        spec.command,
        Some(vec!["/bin/sh".into(), "-c".into(), "exec /app".into()])
    );
    assert_eq!(
        spec.pre_deploy.as_ref().unwrap().command[2],
        "/app task 0 \"release ran: migrations applied\""
    );
    assert_eq!(applied.len(), 2, "{applied:?}");
    // The app's own settings win; a Dockerfile with a CMD keeps it.
    let mut own: capstan_core::AppSpec =
        serde_json::from_str(r#"{"source":{"path":"/x"},"command":["/app","serve"]}"#).unwrap();
    apply_procfile(&root, &recipe, &mut own).unwrap();
    assert_eq!(own.command, Some(vec!["/app".into(), "serve".into()]));
    let with_cmd = prepare(
        &repo("compose-beside-dockerfile"),
        &BuildSpec {
            kind: BuildKind::Dockerfile,
            ..auto()
        },
        8080,
    )
    .unwrap();
    let mut spec: capstan_core::AppSpec =
        serde_json::from_str(r#"{"source":{"path":"/x"}}"#).unwrap();
    assert!(apply_procfile(&root, &with_cmd, &mut spec).unwrap().len() == 1);
    assert_eq!(
        spec.command, None,
        "the Dockerfile's ENTRYPOINT is the start"
    );
}

#[test]
fn of_several_services_publishing_ports_the_front_one_or_the_first_serves() {
    let plan_web = |compose: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
        for sub in ["proxy", "api"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("Dockerfile"), "FROM scratch\n").unwrap();
        }
        let recipe = prepare(dir.path(), &auto(), 8080).unwrap();
        let (compose, _) = recipe.compose.clone().unwrap();
        match recipe.plan {
            Plan::Compose { web, .. } => (web, compose.notes.join("\n")),
            other => panic!("{other:?}"),
        }
    };
    // Both built and published: the one nothing depends on is the front.
    let (web, _) = plan_web(
        "services:\n  api:\n    build: api\n    ports: ['8000:8000']\n  proxy:\n    build: proxy\n    ports: ['80:80']\n    depends_on: [api]\n",
    );
    assert_eq!(web, "proxy");
    // Two independent UIs: the first in the file, with a note on how to choose.
    let (web, notes) = plan_web(
        "services:\n  zeta:\n    image: busybox\n    ports: ['9090:9090']\n  alpha:\n    image: busybox\n    ports: ['3000:3000']\n",
    );
    assert_eq!(web, "zeta");
    assert!(notes.contains("build.compose_service"), "{notes}");
}
