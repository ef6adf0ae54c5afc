//! Repos laid out the way their authors' platforms expect, deployed unchanged: a Procfile
//! whose `web:` starts a Dockerfile app that has no `CMD` and whose `release:` runs before
//! the cutover; `capstan plan` choosing a compose file that builds the Dockerfile beside
//! other services, and naming the apps of a monorepo instead of guessing.

mod support;

use serde_json::{json, Value};
use support::SampleRepo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_procfile_starts_the_app_and_runs_its_release_command_first() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        "FROM busybox:stable\nCOPY app /app\nENV VERSION=from-procfile\n",
        "no CMD",
    );
    repo.commit_file(
        "Procfile",
        "web: exec /app\nrelease: /app task 0 \"release ran: migrations applied\"\n",
        "procfile",
    );
    daemon
        .create_app(json!({
            "name": "heroku",
            "source": {"git": {"url": repo.url(), "ref": "main"}},
            "domains": ["heroku.test"],
            "drain_secs": 1,
            "stop_grace_secs": 2
        }))
        .await;
    let d = daemon.deploy_expect("heroku", None, "live").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("setting start command = \"exec /app\" (from Procfile web:)"),
        "{log}"
    );
    assert!(log.contains("release ran: migrations applied"), "{log}");
    let release = log.find("release ran").unwrap();
    let switched = log.find("traffic switched").unwrap();
    assert!(release < switched, "release runs before the cutover: {log}");
    assert_eq!(
        daemon.via_proxy("heroku.test", "/").await,
        (200, "version: from-procfile\n".to_string())
    );

    // A failing release command stops the deploy; the live version keeps serving.
    repo.commit_file(
        "Procfile",
        "web: exec /app\nrelease: /app task 3 \"migration failed\"\n",
        "broken release",
    );
    let failed = daemon.deploy_expect("heroku", None, "failed").await;
    assert!(
        failed["error"].as_str().unwrap().contains("pre-deploy"),
        "{failed}"
    );
    assert_eq!(
        daemon.via_proxy("heroku.test", "/").await,
        (200, "version: from-procfile\n".to_string())
    );
}

/// `capstan plan DIR --json`, parsed (success expected) or the error text.
fn plan(dir: &std::path::Path) -> Result<Value, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["plan", dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn plan_prefers_a_fuller_compose_file_and_names_a_monorepos_apps() {
    let repos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/tests/repos");
    let report = plan(&repos.join("compose-beside-dockerfile")).unwrap();
    assert_eq!(report["build_type"], "compose");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("whose services build that Dockerfile and add cache"),
        "{report}"
    );
    assert_eq!(
        report["port"],
        "8000 (from compose.yaml: service web's ports)"
    );
    let err = plan(&repos.join("monorepo")).unwrap_err();
    assert!(err.contains("services/api (Dockerfile)"), "{err}");
}

/// On an engine without BuildKit (here: the classic builder chosen in the config), a
/// Dockerfile written for BuildKit is lowered, or refused before anything is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_classic_builder_a_buildkit_dockerfile_builds_or_is_refused_at_once() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("capstan.toml");
    std::fs::write(&config, "builder = \"classic\"\n").unwrap();
    let daemon = support::start_daemon_with(&["--config", config.to_str().unwrap()]).await;
    let (_, server) = daemon.call(reqwest::Method::GET, "/server", None).await;
    assert_eq!(server["engine"]["builder"], "classic", "{server}");
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        "# syntax=docker/dockerfile:1.4\n\
         FROM --platform=$BUILDPLATFORM busybox:stable AS build\n\
         ARG TARGETARCH\n\
         RUN --mount=type=cache,target=/var/cache/build <<EOF\n\
         set -e\n\
         mkdir -p /out\n\
         echo \"built for $TARGETARCH\" > /out/arch.txt\n\
         EOF\n\
         \n\
         FROM build AS test\n\
         RUN echo \"the test stage fails\" && false\n\
         \n\
         FROM scratch\n\
         COPY app /app\n\
         COPY --from=build /out/arch.txt /arch.txt\n\
         ENV VERSION=buildkit-style\n\
         ENTRYPOINT [\"/app\"]\n",
        "buildkit-style Dockerfile",
    );
    daemon
        .create_app(json!({
            "name": "bk",
            "source": {"git": {"url": repo.url(), "ref": "main"}},
            "domains": ["bk.test"],
            "drain_secs": 1,
            "stop_grace_secs": 2
        }))
        .await;
    let d = daemon.deploy_expect("bk", None, "live").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    for expected in [
        "dockerfile: stages not needed for the last stage are not built: test",
        "runs without the cache",
        "heredoc runs as a /bin/sh -c script",
        "platform arguments given as BuildKit would",
    ] {
        assert!(log.contains(expected), "{expected}: {log}");
    }
    assert!(!log.contains("the test stage fails"), "{log}");
    // The build stage's image is kept under a name (the next build's cache), not left
    // untagged where nothing could find it.
    let stage = format!("{}/bk:stage-0", daemon.instance);
    assert!(
        log.contains(&format!("kept stage 0 of the build as {stage}")),
        "{log}"
    );
    assert!(!support::docker(&["images", "-q", &stage]).trim().is_empty());
    let arch = capstan_testkit::docker_arch();
    assert_eq!(
        daemon
            .via_proxy("bk.test", "/file/read?path=/arch.txt")
            .await,
        (200, format!("built for {arch}\n"))
    );

    // A secret mount cannot be had without BuildKit: refused before anything is built.
    repo.commit_file(
        "Dockerfile",
        "FROM busybox:stable\nRUN echo step one\nRUN --mount=type=secret,id=npm cat /run/secrets/npm\n",
        "secret mount",
    );
    let failed = daemon.deploy_expect("bk", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("Dockerfile line 3: RUN --mount=type=secret needs BuildKit"),
        "{error}"
    );
    let log = daemon.log(failed["id"].as_i64().unwrap()).await;
    assert!(!log.contains("step one"), "nothing was built: {log}");
    assert_eq!(
        daemon.via_proxy("bk.test", "/").await,
        (200, "version: buildkit-style\n".to_string())
    );

    // Deleting the app removes its kept build stages too.
    let (status, _) = daemon.call(reqwest::Method::DELETE, "/apps/bk", None).await;
    assert_eq!(status, 204);
    assert!(
        support::docker(&["images", "-q", &stage]).trim().is_empty(),
        "{stage} is left"
    );
}
