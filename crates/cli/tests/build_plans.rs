//! Build plans built and run for real: a static site served from busybox's httpd, a
//! Dockerfile stage in a monorepo base directory, the repo's `capstan.toml` (applied, and
//! refused with a clear message when malformed), and `capstan plan` for a directory and
//! for an app.

mod support;

use serde_json::{json, Value};
use support::SampleRepo;

fn git_app(name: &str, repo: &SampleRepo, host: &str, extra: Value) -> Value {
    let mut app = json!({
        "name": name,
        "source": {"git": {"url": repo.url(), "ref": "main"}},
        "port": 8080,
        "domains": [host],
        "health": {"path": "/", "interval_secs": 0.5, "timeout_secs": 2, "retries": 3, "deadline_secs": 30},
        "drain_secs": 1,
        "stop_grace_secs": 2
    });
    for (k, v) in extra.as_object().unwrap() {
        app[k] = v.clone();
    }
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_site_is_detected_built_and_served() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "dist/index.html",
        "<!doctype html><h1>static v1</h1>\n",
        "site",
    );
    repo.commit_file("src/README.md", "the site's source\n", "source");
    daemon
        .create_app(git_app("site", &repo, "site.test", json!({})))
        .await;
    let d = daemon.deploy_expect("site", None, "live").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("build plan: static site (dist/ served by httpd from busybox:stable)"),
        "{log}"
    );
    let (status, body) = daemon.via_proxy("site.test", "/").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "<!doctype html><h1>static v1</h1>\n")
    );
    let (status, _) = daemon.via_proxy("site.test", "/README.md").await;
    assert_eq!(status, 404, "only the publish dir is served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dockerfile_stage_in_a_base_dir_with_the_repos_capstan_toml() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    std::fs::create_dir_all(repo.path().join("svc")).unwrap();
    std::fs::rename(repo.path().join("app"), repo.path().join("svc/app")).unwrap();
    repo.commit_file(
        "svc/Dockerfile",
        "FROM scratch AS good\nCOPY app /app\nENV VERSION=stage-good\nENTRYPOINT [\"/app\"]\n\n\
         FROM scratch AS last\nCOPY app /app\nENV VERSION=stage-last\nENTRYPOINT [\"/app\"]\n",
        "stages",
    );
    repo.commit_file(
        "svc/capstan.toml",
        "[build]\ntarget = \"good\"\n\n[health]\npath = \"/health\"\ninterval_secs = 0.5\n\n[env]\nGREETING = \"from-file\"\n",
        "config",
    );
    daemon
        .create_app(git_app(
            "mono",
            &repo,
            "mono.test",
            json!({"build": {"base_dir": "svc"}, "env": {"MODE": "panel"}}),
        ))
        .await;
    let first = daemon.deploy_expect("mono", None, "live").await;
    let log = daemon.log(first["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("setting build.target = \"good\" (from svc/capstan.toml)"),
        "{log}"
    );
    assert!(
        log.contains("build plan: dockerfile (Dockerfile, stage good)"),
        "{log}"
    );
    assert_eq!(
        daemon.via_proxy("mono.test", "/").await.1,
        "version: stage-good\n"
    );
    assert_eq!(
        daemon.via_proxy("mono.test", "/env/GREETING").await.1,
        "from-file\n"
    );
    assert_eq!(
        daemon.via_proxy("mono.test", "/env/MODE").await.1,
        "panel\n"
    );

    // A restart has no source, but keeps the release's capstan.toml settings.
    let (status, body) = daemon
        .call(reqwest::Method::POST, "/apps/mono/restart", None)
        .await;
    assert_eq!(status, 202, "{body}");
    let restarted = daemon.wait(body["id"].as_i64().unwrap()).await;
    assert_eq!(restarted["state"], "live", "{restarted}");
    assert_eq!(
        daemon.via_proxy("mono.test", "/env/GREETING").await.1,
        "from-file\n"
    );

    // Broken files fail the deployment with the file and key named; v1 keeps serving.
    for (text, expected) in [
        ("prot = 1\n", "unknown field `prot`"),
        ("[build\n", "svc/capstan.toml"),
        (
            "[build]\ndockerfile = \"../../etc/passwd\"\n",
            "build.dockerfile",
        ),
    ] {
        repo.commit_file("svc/capstan.toml", text, "broken config");
        let failed = daemon.deploy_expect("mono", None, "failed").await;
        let error = failed["error"].as_str().unwrap();
        assert!(
            error.contains("svc/capstan.toml") && error.contains(expected),
            "{text}: {error}"
        );
        assert_eq!(
            daemon.via_proxy("mono.test", "/").await.1,
            "version: stage-good\n"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capstan_plan_shows_a_directory_and_an_app_without_deploying() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    repo.commit_file("capstan.toml", "port = 8080\n", "config");
    daemon
        .create_app(support::sample_app(
            "planned",
            &repo,
            "main",
            "planned.test",
        ))
        .await;
    let repos = concat!(env!("CARGO_MANIFEST_DIR"), "/../build/tests/repos");
    let report = plan_json(&[&format!("{repos}/static-dist")]);
    assert_eq!(report["build_type"], "static");
    let dockerfile = report["dockerfile"].as_str().unwrap();
    assert!(dockerfile.contains("FROM busybox:stable"), "{dockerfile}");
    let compose = report["compose_spec"].as_str().unwrap();
    assert!(compose.contains("services:"), "{compose}");

    let (ok, text, stderr) = capstan(&["plan", &format!("{repos}/node-lockfile")]);
    assert!(ok, "{stderr}");
    assert!(text.contains("build plan: nixpacks (node)"), "{text}");
    assert!(
        text.contains("--- Dockerfile (.nixpacks/Dockerfile) ---"),
        "{text}"
    );

    let report = plan_json(&["planned", "--url", &daemon.api, "--token", &daemon.token]);
    assert_eq!(report["build_type"], "dockerfile");
    assert_eq!(
        report["settings_from_file"],
        json!(["port = 8080 (from capstan.toml)"])
    );
    let dockerfile = report["dockerfile"].as_str().unwrap();
    assert!(dockerfile.contains("ENV VERSION=v1"), "{dockerfile}");
    let (_, deployments) = daemon
        .call(reqwest::Method::GET, "/apps/planned/deployments", None)
        .await;
    assert_eq!(deployments, json!([]), "planning deploys nothing");

    let (ok, _, stderr) = capstan(&[
        "plan",
        "nosuchapp",
        "--url",
        &daemon.api,
        "--token",
        &daemon.token,
    ]);
    assert!(!ok && stderr.contains("404"), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = capstan(&["plan", empty.path().to_str().unwrap()]);
    assert!(!ok && stderr.contains("looked for"), "{stderr}");
}

/// Runs the `capstan` binary: (success, stdout, stderr).
fn capstan(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `capstan plan <args> --json`, parsed; fails the test if the command fails.
fn plan_json(args: &[&str]) -> Value {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    all.push("--json");
    let (ok, stdout, stderr) = capstan(&all);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
